//! The checkout checker's negative control: the checker (`tests/e2e/tests/checkout_checker.rs`)
//! run against an orders service built with `negative-control-skip-compensation`, which skips
//! the write that asks a cancelled or expired order's saga to give back what it held. The run
//! passes only when the checker reports a violation, so a checker that cannot fail fails here.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};

use crate::{cargo, run};

/// Checkouts in the control run: enough for declined cards to leave stock held.
const CONTROL_CHECKOUTS: &str = "300";

/// Builds the faulty orders binary into `target/negative-control` (restoring the normal one in
/// `target/debug` afterwards) and returns that directory.
fn faulty_orders(root: &Path) -> Result<PathBuf> {
    let build = |features: &[&str]| -> Result<()> {
        let mut cmd = cargo();
        cmd.args(["build", "-p", "shopmesh-orders", "--bin", "shopmesh-orders"])
            .args(features);
        run(&mut cmd)
    };
    build(&["--features", "negative-control-skip-compensation"])?;
    let dir = root.join("target/negative-control");
    std::fs::create_dir_all(&dir)?;
    std::fs::copy(
        root.join("target/debug/shopmesh-orders"),
        dir.join("shopmesh-orders"),
    )
    .context("copying the negative control's orders binary")?;
    // The other tests and tools use the real one.
    build(&[])?;
    Ok(dir)
}

/// The command that runs the checker against the faulty build, expecting a violation.
pub fn negative_control(root: &Path, env: &[(String, String)]) -> Result<Command> {
    let bin = faulty_orders(root)?;
    let mut cmd = cargo();
    cmd.args([
        "test",
        "-p",
        "shopmesh-e2e",
        "--test",
        "checkout_checker",
        "--",
        "--nocapture",
    ])
    .env("CHECKOUT_CHECKER_ORDERS_BIN", bin)
    .env("CHECKOUT_CHECKER_EXPECT", "violation")
    .env("CHECKOUT_CHECKER_ORDERS", CONTROL_CHECKOUTS);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Ok(cmd)
}
