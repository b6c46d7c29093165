//! The TypeScript SDK's generated sources, `sdk/typescript/src/gen/`: openapi-typescript
//! from the gateway's OpenAPI contract and graphql-codegen's typed documents from
//! `schema/graphql/operations/`, both pinned by `sdk/typescript/package-lock.json`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Result, bail};
use serde::Deserialize;

use crate::{evolution, run, tools};

const SDK_DIR: &str = "sdk/typescript";
const GEN_DIR: &str = "sdk/typescript/src/gen";
const OPERATIONS_DIR: &str = "schema/graphql/operations";

/// One validation error of an operation document.
#[derive(Debug, Deserialize)]
struct OperationError {
    file: String,
    location: String,
    message: String,
}

/// Fails, naming each error, when an operation document does not validate against the SDL.
pub fn validate_operations(root: &Path) -> Result<()> {
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join(OPERATIONS_DIR))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "graphql"))
        .collect();
    docs.sort();
    let mut args = vec![
        PathBuf::from("validate"),
        root.join("schema/graphql/gateway.graphql"),
    ];
    args.extend(docs);
    let args: Vec<&Path> = args.iter().map(PathBuf::as_path).collect();
    let errors: Vec<OperationError> = evolution::graphql_tool(root, &args)?;
    for e in &errors {
        let file = Path::new(&e.file)
            .strip_prefix(root)
            .unwrap_or(Path::new(&e.file));
        eprintln!("{}:{}: {}", file.display(), e.location, e.message);
    }
    if !errors.is_empty() {
        bail!(
            "{} error(s) in {OPERATIONS_DIR}: the operations no longer validate against schema/graphql/gateway.graphql",
            errors.len()
        );
    }
    select_ids(root, &args[1..])
}

/// Fails, naming each, when an operation selects an object that has an `id` without it:
/// normalizing caches (Apollo Client, urql's graphcache) key objects by `id`
/// (`sdk/typescript/scripts/check-ids.mjs`).
fn select_ids(root: &Path, schema_and_docs: &[&Path]) -> Result<()> {
    let sdk = root.join(SDK_DIR);
    tools::node_packages(&sdk)?;
    let status = Command::new("node")
        .arg(sdk.join("scripts/check-ids.mjs"))
        .args(schema_and_docs)
        .current_dir(&sdk)
        .status()?;
    if !status.success() {
        bail!("{OPERATIONS_DIR}: select `id` on every object that has one (above)");
    }
    Ok(())
}

/// Generates the SDK's sources into `out` (absolute).
fn generate_into(root: &Path, out: &Path) -> Result<()> {
    let sdk = root.join(SDK_DIR);
    tools::node_packages(&sdk)?;
    validate_operations(root)?;
    std::fs::create_dir_all(out)?;
    let bin = sdk.join("node_modules/.bin");
    run(Command::new(bin.join("openapi-typescript"))
        .arg(root.join("schema/openapi/gateway.yaml"))
        .arg("--output")
        .arg(out.join("gateway.ts"))
        .arg("--silent"))?;
    // Not `run`, which runs in the workspace root: codegen.ts's paths are the SDK's.
    let status = Command::new(bin.join("graphql-codegen"))
        .args(["--config", "codegen.ts"])
        .current_dir(&sdk)
        .env("SDK_GEN_DIR", out)
        .status()?;
    if !status.success() {
        bail!("graphql-codegen failed with {status}");
    }
    // The documents as the SDK sends them, by hash: the gateway's registered operations.
    let status = Command::new("node")
        .arg(sdk.join("scripts/operations.mjs"))
        .arg(out.join("graphql.ts"))
        .arg(out.join("operations.json"))
        .current_dir(&sdk)
        .status()?;
    if !status.success() {
        bail!("scripts/operations.mjs failed with {status}");
    }
    Ok(())
}

/// Writes `sdk/typescript/src/gen/`.
pub fn generate(root: &Path) -> Result<()> {
    generate_into(root, &root.join(GEN_DIR))?;
    println!("gen: {GEN_DIR} (TypeScript SDK)");
    Ok(())
}

/// The SDK's generated files that differ from what the contracts generate now.
pub fn stale(root: &Path) -> Result<Vec<String>> {
    let fresh = root.join("target/xtask/sdk-gen");
    let _ = std::fs::remove_dir_all(&fresh);
    generate_into(root, &fresh)?;
    let mut stale = Vec::new();
    for entry in std::fs::read_dir(&fresh)? {
        let name = entry?.file_name();
        let committed = std::fs::read(root.join(GEN_DIR).join(&name)).unwrap_or_default();
        if std::fs::read(fresh.join(&name))? != committed {
            stale.push(format!("{GEN_DIR}/{}", name.to_string_lossy()));
        }
    }
    Ok(stale)
}
