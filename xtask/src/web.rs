//! The shop's web app (`web/`): type-checked under `tsc --strict` against the TypeScript SDK's
//! sources, then built by Vite into `services/gateway/assets/shop/`, which the gateway embeds.
//! A contract change that breaks the app fails here, in `cargo xtask gen` and `gen --check`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::tools;

const WEB_DIR: &str = "web";
const OUT_DIR: &str = "services/gateway/assets/shop";
/// The most the shop's initial JavaScript may weigh, gzipped, so a phone on a slow link starts it
/// in seconds.
const MAX_INITIAL_JS_GZIP: u64 = 150 * 1024;

/// A tool from `web/node_modules/.bin`, run in `web/`.
fn web_tool(root: &Path, tool: &str) -> Command {
    let mut cmd = Command::new(root.join(WEB_DIR).join("node_modules/.bin").join(tool));
    cmd.current_dir(root.join(WEB_DIR));
    cmd
}

fn run_in_web(cmd: &mut Command, what: &str) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {what}"))?;
    if !status.success() {
        bail!("{what} failed with {status}");
    }
    Ok(())
}

/// Type-checks the app and builds it into `out` (absolute).
fn build_into(root: &Path, out: &Path) -> Result<()> {
    tools::node_packages(&root.join(WEB_DIR))?;
    run_in_web(
        web_tool(root, "tsc").args(["-p", "tsconfig.json", "--noEmit"]),
        "tsc --strict on web/",
    )?;
    run_in_web(
        web_tool(root, "vite").arg("build").env("WEB_OUT_DIR", out),
        "vite build of web/",
    )?;
    let js = out.join("shop.js");
    let gzipped = gzip_size(&js)?;
    if gzipped > MAX_INITIAL_JS_GZIP {
        bail!(
            "{} is {gzipped} bytes gzipped, over the {MAX_INITIAL_JS_GZIP} the shop allows its initial JavaScript",
            js.display()
        );
    }
    println!(
        "web: shop.js {} bytes, {gzipped} gzipped",
        std::fs::metadata(&js)?.len()
    );
    Ok(())
}

/// The size of `path` compressed by `gzip -9`.
fn gzip_size(path: &Path) -> Result<u64> {
    let out = Command::new("gzip")
        .args(["-9", "-c"])
        .arg(path)
        .output()
        .context("measuring the shop's JavaScript needs gzip")?;
    if !out.status.success() {
        bail!("gzip {} failed", path.display());
    }
    Ok(out.stdout.len() as u64)
}

/// Builds the app into `services/gateway/assets/shop/`.
pub fn generate(root: &Path) -> Result<()> {
    build_into(root, &root.join(OUT_DIR))?;
    println!("gen: {OUT_DIR} (the shop's web app)");
    Ok(())
}

fn files_in(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut names: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok().map(|e| PathBuf::from(e.file_name())))
            .collect(),
        Err(_) => Vec::new(),
    };
    names.sort();
    Ok(names)
}

/// The built files that differ from what `web/` builds now (or that it no longer builds).
pub fn stale(root: &Path) -> Result<Vec<String>> {
    let fresh = root.join("target/xtask/web");
    let _ = std::fs::remove_dir_all(&fresh);
    build_into(root, &fresh)?;
    let committed = root.join(OUT_DIR);
    let mut names = files_in(&fresh)?;
    names.extend(files_in(&committed)?);
    names.sort();
    names.dedup();
    Ok(names
        .into_iter()
        .filter(|name| {
            std::fs::read(fresh.join(name)).ok() != std::fs::read(committed.join(name)).ok()
        })
        .map(|name| format!("{OUT_DIR}/{}", name.display()))
        .collect())
}
