//! Protobuf contracts -> prost messages and tonic server traits/clients (via tonic-prost-build
//! and a vendored protoc, so a new machine needs nothing installed), plus the file descriptor
//! set that gRPC reflection serves.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::{CodegenError, GeneratedFile, Result, layout};

/// Every `.proto` file below `root/schema/proto`, relative to that folder, sorted.
fn proto_files(root: &Path) -> Result<Vec<PathBuf>> {
    fn walk(base: &Path, rel: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
        let dir = base.join(rel);
        let entries = std::fs::read_dir(&dir).map_err(|e| CodegenError::io(&dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| CodegenError::io(&dir, e))?;
            let rel_path = rel.join(entry.file_name());
            if entry.path().is_dir() {
                walk(base, &rel_path, out)?;
            } else if rel_path.extension().is_some_and(|e| e == "proto") {
                out.push(rel_path);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(&root.join(layout::PROTO_DIR), Path::new(""), &mut out)?;
    out.sort();
    Ok(out)
}

/// Turns protoc's `path/file.proto:12:3: message` into a [`CodegenError::Schema`] whose file is
/// shown relative to the workspace root.
fn protoc_error(proto_root: &Path, message: &str) -> CodegenError {
    for line in message.lines() {
        let Some(idx) = line.find(".proto:") else {
            continue;
        };
        let file = &line[..idx + ".proto".len()];
        let file = file.rsplit(' ').next().unwrap_or(file);
        let mut rest = line[idx + ".proto:".len()..].splitn(3, ':');
        if let (Some(l), Some(c), Some(problem)) = (rest.next(), rest.next(), rest.next())
            && l.trim().parse::<u32>().is_ok()
            && c.trim().parse::<u32>().is_ok()
        {
            let rel = Path::new(file)
                .strip_prefix(proto_root)
                .unwrap_or(Path::new(file));
            return CodegenError::schema(
                Path::new(layout::PROTO_DIR).join(rel),
                format!("line {} column {}", l.trim(), c.trim()),
                problem.trim(),
            );
        }
    }
    CodegenError::schema(layout::PROTO_DIR, "protoc", message.trim())
}

/// Compiles the protos under `proto_root` into a fresh temporary folder and returns
/// `(generated rust files by name, descriptor set bytes)`.
pub fn compile(
    proto_root: &Path,
    protos: &[PathBuf],
) -> Result<(BTreeMap<String, String>, Vec<u8>)> {
    let tmp = std::env::temp_dir().join(format!(
        "shopmesh-codegen-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    std::fs::create_dir_all(&tmp).map_err(|e| CodegenError::io(&tmp, e))?;
    let result = compile_into(proto_root, protos, &tmp);
    let _ = std::fs::remove_dir_all(&tmp);
    result
}

fn compile_into(
    proto_root: &Path,
    protos: &[PathBuf],
    tmp: &Path,
) -> Result<(BTreeMap<String, String>, Vec<u8>)> {
    let protoc = protoc_bin_vendored::protoc_bin_path().map_err(|e| {
        CodegenError::schema(
            layout::PROTO_DIR,
            "protoc",
            format!("vendored protoc unavailable: {e}"),
        )
    })?;
    let wkt = protoc_bin_vendored::include_path().map_err(|e| {
        CodegenError::schema(
            layout::PROTO_DIR,
            "protoc",
            format!("vendored includes unavailable: {e}"),
        )
    })?;
    let descriptor = tmp.join("descriptor.bin");
    let mut config = tonic_prost_build::Config::new();
    config.protoc_executable(protoc);
    let files: Vec<PathBuf> = protos.iter().map(|p| proto_root.join(p)).collect();
    tonic_prost_build::configure()
        .out_dir(tmp)
        .file_descriptor_set_path(&descriptor)
        .emit_rerun_if_changed(false)
        .build_client(true)
        .build_server(true)
        .compile_with_config(config, &files, &[proto_root.to_path_buf(), wkt])
        .map_err(|e| protoc_error(proto_root, &e.to_string()))?;
    let mut generated = BTreeMap::new();
    for entry in std::fs::read_dir(tmp).map_err(|e| CodegenError::io(tmp, e))? {
        let entry = entry.map_err(|e| CodegenError::io(tmp, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".rs") {
            let text = std::fs::read_to_string(entry.path())
                .map_err(|e| CodegenError::io(entry.path(), e))?;
            generated.insert(name, text);
        }
    }
    let bytes = std::fs::read(&descriptor).map_err(|e| CodegenError::io(&descriptor, e))?;
    Ok((generated, bytes))
}

/// Generates the `proto` crate's sources from every `.proto` under `schema/proto`.
pub fn generate_crate(root: &Path) -> Result<Vec<GeneratedFile>> {
    let protos = proto_files(root)?;
    if protos.is_empty() {
        return Err(CodegenError::schema(
            layout::PROTO_DIR,
            "folder",
            "no .proto files",
        ));
    }
    let (generated, descriptor) = compile(&root.join(layout::PROTO_DIR), &protos)?;
    let out = Path::new(layout::PROTO_OUT);
    let sources = protos
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let mut files = Vec::new();
    let mut tree: BTreeMap<Vec<String>, String> = BTreeMap::new();
    for (name, text) in &generated {
        let package = name.trim_end_matches(".rs");
        tree.insert(
            package.split('.').map(str::to_owned).collect(),
            name.clone(),
        );
        files.push(GeneratedFile::text(
            out.join("gen").join(name),
            format!(
                "{}{text}",
                crate::header(&format!("{} ({sources})", layout::PROTO_DIR))
            ),
        ));
    }
    files.push(GeneratedFile {
        path: out.join("gen").join("descriptor.bin"),
        contents: descriptor,
    });
    let mut lib = crate::header(&format!("{} ({sources})", layout::PROTO_DIR));
    lib.push_str("//! Generated gRPC contracts: prost messages, tonic servers and clients, one module per\n//! protobuf package, and the file descriptor set for server reflection.\n\n");
    lib.push_str("/// Encoded `FileDescriptorSet` of every contract, for tonic-reflection.\n");
    lib.push_str(
        "pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(\"gen/descriptor.bin\");\n",
    );
    for (path, file) in &tree {
        lib.push('\n');
        for (depth, segment) in path.iter().enumerate() {
            lib.push_str(&format!("{}pub mod {segment} {{\n", "    ".repeat(depth)));
        }
        lib.push_str(&format!(
            "{}include!(\"gen/{file}\");\n",
            "    ".repeat(path.len())
        ));
        for depth in (0..path.len()).rev() {
            lib.push_str(&format!("{}}}\n", "    ".repeat(depth)));
        }
    }
    files.push(GeneratedFile::text(out.join("lib.rs"), lib));
    Ok(files)
}
