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

/// Pinned schemathesis, for fuzzing the REST contracts.
pub const SCHEMATHESIS_VERSION: &str = "4.32.5";

/// Path to schemathesis' `st`, installing it with pip into `.tools/venv` when missing.
pub fn schemathesis(root: &Path) -> Result<PathBuf> {
    secantusd(root)?;
    let bin = root.join(".tools/venv/bin/st");
    if !bin.exists() {
        println!("tools: installing schemathesis=={SCHEMATHESIS_VERSION} with pip");
        run(Command::new(root.join(".tools/venv/bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .arg(format!("schemathesis=={SCHEMATHESIS_VERSION}")))?;
    }
    Ok(bin)
}
