//! shopmesh-codegen turns the contracts in `schema/` into Rust.
//!
//! | contract | generator | output crate |
//! |---|---|---|
//! | `schema/openapi/*.yaml` | [`openapi`] | `openapi/` (models, server trait, poem adapter, typed client) |
//! | `schema/graphql/*.graphql` | [`graphql`] | `graphql/` (async-graphql types, resolver trait) |
//! | `schema/proto/**/*.proto` | [`proto`] | `proto/` (prost messages, tonic server traits and clients, descriptors) |
//!
//! [`generate_all`] produces every file in memory; [`write_files`] writes them and
//! [`stale_files`] reports which committed files differ, for `cargo xtask gen --check`.

pub mod contract;
pub mod error;
pub mod evolution;
pub mod graphql;
pub mod openapi;
pub mod proto;
mod rust;
pub mod typescript;

use std::path::{Path, PathBuf};

pub use error::{CodegenError, Result};

/// One file the generator produces, with its path relative to the workspace root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratedFile {
    /// Path relative to the workspace root.
    pub path: PathBuf,
    /// Full contents.
    pub contents: Vec<u8>,
}

impl GeneratedFile {
    /// A text file.
    pub fn text(path: impl Into<PathBuf>, contents: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            contents: contents.into().into_bytes(),
        }
    }
}

/// Where the contracts live and where generated crates go, relative to the workspace root.
pub mod layout {
    /// OpenAPI contracts.
    pub const OPENAPI_DIR: &str = "schema/openapi";
    /// GraphQL contracts.
    pub const GRAPHQL_DIR: &str = "schema/graphql";
    /// Protobuf contracts (the include root).
    pub const PROTO_DIR: &str = "schema/proto";
    /// Generated REST crate sources.
    pub const OPENAPI_OUT: &str = "openapi/src";
    /// Generated GraphQL crate sources.
    pub const GRAPHQL_OUT: &str = "graphql/src";
    /// Generated gRPC crate sources.
    pub const PROTO_OUT: &str = "proto/src";
}

/// Generates every output from the contracts under `root`.
pub fn generate_all(root: &Path) -> Result<Vec<GeneratedFile>> {
    let mut files = openapi::generate_crate(root)?;
    files.extend(graphql::generate_crate(root)?);
    files.extend(proto::generate_crate(root)?);
    files.push(typescript::generate(root)?);
    Ok(files)
}

/// Writes `files` under `root`, creating folders, and removes generated files that no contract
/// produces any more. Returns the paths that changed.
pub fn write_files(root: &Path, files: &[GeneratedFile]) -> Result<Vec<PathBuf>> {
    let mut changed = Vec::new();
    for file in files {
        let path = root.join(&file.path);
        if std::fs::read(&path).ok().as_deref() == Some(file.contents.as_slice()) {
            continue;
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| CodegenError::io(dir, e))?;
        }
        std::fs::write(&path, &file.contents).map_err(|e| CodegenError::io(&path, e))?;
        changed.push(file.path.clone());
    }
    for orphan in orphans(root, files)? {
        let path = root.join(&orphan);
        std::fs::remove_file(&path).map_err(|e| CodegenError::io(&path, e))?;
        changed.push(orphan);
    }
    Ok(changed)
}

/// How one committed file differs from what the contracts generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleFile {
    /// Path relative to the workspace root.
    pub path: PathBuf,
    /// One line saying how it differs, e.g. `+3 -1 lines` or `missing`.
    pub summary: String,
}

/// Lists committed files that differ from `files`, plus generated files no contract produces.
pub fn stale_files(root: &Path, files: &[GeneratedFile]) -> Result<Vec<StaleFile>> {
    let mut stale = Vec::new();
    for file in files {
        let path = root.join(&file.path);
        let summary = match std::fs::read(&path) {
            Err(_) => Some("missing".to_owned()),
            Ok(current) if current == file.contents => None,
            Ok(current) => Some(diff_summary(&current, &file.contents)),
        };
        if let Some(summary) = summary {
            stale.push(StaleFile {
                path: file.path.clone(),
                summary,
            });
        }
    }
    for orphan in orphans(root, files)? {
        stale.push(StaleFile {
            path: orphan,
            summary: "no contract generates this file any more".to_owned(),
        });
    }
    Ok(stale)
}

fn diff_summary(current: &[u8], wanted: &[u8]) -> String {
    let (Ok(current), Ok(wanted)) = (std::str::from_utf8(current), std::str::from_utf8(wanted))
    else {
        return format!(
            "binary content differs ({} -> {} bytes)",
            current.len(),
            wanted.len()
        );
    };
    let diff = similar::TextDiff::from_lines(current, wanted);
    let (mut added, mut removed) = (0, 0);
    let mut first = None;
    for change in diff.iter_all_changes() {
        match change.tag() {
            similar::ChangeTag::Insert => added += 1,
            similar::ChangeTag::Delete => removed += 1,
            similar::ChangeTag::Equal => continue,
        }
        if first.is_none() {
            first = Some(format!(
                "first difference near line {}: {}{}",
                change.old_index().or(change.new_index()).unwrap_or(0) + 1,
                change.tag(),
                change.value().trim_end()
            ));
        }
    }
    format!("+{added} -{removed} lines; {}", first.unwrap_or_default())
}

/// Files in the generated folders carrying the generated header that `files` does not contain.
fn orphans(root: &Path, files: &[GeneratedFile]) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for dir in [layout::OPENAPI_OUT, layout::GRAPHQL_OUT, layout::PROTO_OUT] {
        collect_generated(root, Path::new(dir), &mut found)?;
    }
    found.retain(|p| !files.iter().any(|f| &f.path == p));
    found.sort();
    Ok(found)
}

fn collect_generated(root: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let dir = root.join(rel);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry.map_err(|e| CodegenError::io(&dir, e))?;
        let rel_path = rel.join(entry.file_name());
        let path = entry.path();
        if path.is_dir() {
            collect_generated(root, &rel_path, out)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if text.contains(GENERATED_MARKER) {
                out.push(rel_path);
            }
        }
    }
    Ok(())
}

/// Text every generated Rust file carries in its first lines.
pub const GENERATED_MARKER: &str = "@generated by shopmesh-codegen";

/// The header of a generated file: what made it, from which contract, and how to change it.
pub fn header(source: &str) -> String {
    format!(
        "// {GENERATED_MARKER} from {source}.\n\
         // Do not edit by hand: change the contract and run `cargo xtask gen`.\n\n"
    )
}

/// Reads a contract file, mapping a failure to a [`CodegenError`].
pub(crate) fn read_contract(root: &Path, rel: &Path) -> Result<String> {
    let path = root.join(rel);
    std::fs::read_to_string(&path).map_err(|e| CodegenError::io(rel, e))
}

/// Contract files with `ext` directly in `root/dir`, sorted, as paths relative to `root`.
pub(crate) fn contracts_in(root: &Path, dir: &str, ext: &str) -> Result<Vec<PathBuf>> {
    let full = root.join(dir);
    let entries = std::fs::read_dir(&full).map_err(|e| CodegenError::io(&full, e))?;
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| CodegenError::io(&full, e))?;
        let name = entry.file_name();
        if Path::new(&name).extension().is_some_and(|e| e == ext) {
            found.push(Path::new(dir).join(name));
        }
    }
    found.sort();
    Ok(found)
}
