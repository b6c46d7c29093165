//! The contract evolution gate of `cargo xtask lint`: every contract in `schema/` compared with
//! its version at a git ref (the previous commit unless `--against REF`), failing on a change
//! that breaks clients unless this change's `BREAKING.md` names it.
//!
//! | contract | how it is compared |
//! |---|---|
//! | `schema/openapi/*.yaml` | [`shopmesh_codegen::evolution::openapi`] |
//! | `schema/events/*.json` | [`shopmesh_codegen::evolution::events`] |
//! | `schema/graphql/gateway.graphql` | graphql-inspector's diff (`xtask/node`) |
//! | `schema/proto` | `buf breaking` (its `FILE` rules, stricter than `WIRE_JSON`) |

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use shopmesh_codegen::contract::load;
use shopmesh_codegen::evolution::{self, Finding, Overrides, Severity};

use crate::{run, tools};

/// The GraphQL contract graphql-inspector compares.
const GRAPHQL_CONTRACT: &str = "schema/graphql/gateway.graphql";
/// Where each intentional break is declared.
const BREAKING_MD: &str = "BREAKING.md";

/// `git show REF:PATH`, or `None` when the path does not exist at that ref.
fn at_ref(root: &Path, reference: &str, path: &str) -> Result<Option<String>> {
    let out = Command::new("git")
        .args(["show", &format!("{reference}:{path}")])
        .current_dir(root)
        .output()
        .context("running git")?;
    Ok(out
        .status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned()))
}

/// The files directly under `dir` at `reference` whose names end in `ext`.
fn files_at_ref(root: &Path, reference: &str, dir: &str, ext: &str) -> Result<Vec<String>> {
    let out = Command::new("git")
        .args(["ls-tree", "--name-only", reference, &format!("{dir}/")])
        .current_dir(root)
        .output()
        .context("running git")?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|p| p.ends_with(ext))
        .map(str::to_owned)
        .collect())
}

/// `node xtask/node/graphql-contract.mjs ARGS`, parsed, after installing its packages.
pub fn graphql_tool<T: for<'de> Deserialize<'de>>(root: &Path, args: &[&Path]) -> Result<T> {
    let dir = root.join("xtask/node");
    tools::node_packages(&dir)?;
    let out = Command::new("node")
        .arg(dir.join("graphql-contract.mjs"))
        .args(args)
        .current_dir(root)
        .output()
        .context("running node (the GraphQL contract checks need Node.js)")?;
    if !out.status.success() {
        bail!(
            "graphql-contract.mjs failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    serde_json::from_slice(&out.stdout).context("graphql-contract.mjs printed no JSON")
}

/// Breaking changes and deprecations between two GraphQL schema files; dangerous changes
/// are printed.
pub fn graphql_diff(root: &Path, contract: &str, old: &Path, new: &Path) -> Result<Vec<Finding>> {
    let changes = graphql_tool(root, &[Path::new("diff"), old, new])?;
    let (findings, dangerous) = evolution::graphql::findings(contract, changes);
    for d in dangerous {
        println!("  dangerous: {d}");
    }
    Ok(findings)
}

/// Every breaking change and deprecation in `schema/` since `reference`.
fn findings(root: &Path, reference: &str) -> Result<Vec<Finding>> {
    let mut all = Vec::new();
    for (dir, ext) in [("schema/openapi", ".yaml"), ("schema/events", ".json")] {
        for path in files_at_ref(root, reference, dir, ext)? {
            let old = at_ref(root, reference, &path)?.unwrap_or_default();
            let Ok(new) = std::fs::read_to_string(root.join(&path)) else {
                all.push(Finding {
                    contract: path.clone(),
                    location: String::new(),
                    severity: Severity::Breaking,
                    message: "the contract was removed".into(),
                });
                continue;
            };
            let (old, new) = (
                load(&old)
                    .map_err(anyhow::Error::msg)
                    .with_context(|| format!("{path} at {reference}"))?,
                load(&new)
                    .map_err(anyhow::Error::msg)
                    .with_context(|| path.clone())?,
            );
            all.extend(if dir == "schema/openapi" {
                evolution::openapi::diff(&path, &old, &new)
            } else {
                evolution::events::diff(&path, &old, &new)
            });
        }
    }
    if let Some(old) = at_ref(root, reference, GRAPHQL_CONTRACT)? {
        let old_file: PathBuf = root.join("target/xtask/graphql-base.graphql");
        std::fs::create_dir_all(old_file.parent().expect("has a parent"))?;
        std::fs::write(&old_file, old)?;
        all.extend(graphql_diff(
            root,
            GRAPHQL_CONTRACT,
            &old_file,
            &root.join(GRAPHQL_CONTRACT),
        )?);
    }
    Ok(all)
}

/// Runs the gate against `reference`; `buf` runs the Protobuf side. The operation documents
/// the SDK is generated from are validated against the GraphQL contract first.
pub fn check(root: &Path, reference: &str, buf: &Path) -> Result<()> {
    println!("lint: GraphQL operation documents against the contract");
    crate::sdk::validate_operations(root)?;
    let exists = Command::new("git")
        .args([
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{reference}^{{commit}}"),
        ])
        .current_dir(root)
        .output()
        .is_ok_and(|o| o.status.success());
    if !exists {
        println!("lint: contract evolution: no commit {reference} to compare with");
        return Ok(());
    }
    println!("lint: contract evolution against {reference}");
    let overrides = Overrides::added(
        &std::fs::read_to_string(root.join(BREAKING_MD)).unwrap_or_default(),
        &at_ref(root, reference, BREAKING_MD)?.unwrap_or_default(),
    );
    let mut blocking = 0;
    for finding in findings(root, reference)? {
        if finding.severity == Severity::Breaking && !overrides.covers(&finding) {
            blocking += 1;
            eprintln!("  {finding}");
        } else if finding.severity == Severity::Breaking {
            println!("  {finding}\n    declared intentional in {BREAKING_MD}");
        } else {
            println!("  {finding}");
        }
    }
    if blocking > 0 {
        bail!(
            "{blocking} change(s) since {reference} break clients; keep the old shape (add, deprecate, then remove), \
             or declare each break by naming its `contract#location` in {BREAKING_MD}"
        );
    }
    if at_ref(root, reference, "buf.yaml")?.is_some() {
        println!("lint: buf breaking --against {reference}");
        run(Command::new(buf).args(["breaking", "--against", &format!(".git#ref={reference}")]))?;
    }
    Ok(())
}
