//! `cargo xtask <command>`: the project's automation, in Rust so it runs wherever cargo does.
//!
//! | command | what it does |
//! |---|---|
//! | `gen` | regenerate `proto/`, `openapi/`, `graphql/` from `schema/` |
//! | `gen --check` | fail, with a summary, when any generated file is stale |
//! | `lint` | buf lint, rustfmt check, clippy with warnings denied |
//! | `test` | `gen --check`, lint, then every test against real infrastructure |
//! | `up` | run the four services against the infrastructure in `.env` / environment |
//! | `bench` | load benchmarks, results in `bench/results/latest.json` |

mod bench;
mod fuzz;
mod infra;
mod tools;
mod up;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("gen") => generate(args.iter().any(|a| a == "--check")),
        Some("lint") => lint(),
        Some("test") => test(&args[1..]),
        Some("infra") => infra::ensure_all(&root()).map(|_| ()),
        Some("up") => up::run(&root(), &args[1..]),
        Some("bench") => bench::run(&root(), &args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <gen [--check] | lint | test [-- cargo test args] | infra>"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("xtask: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (the parent of this crate).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace root")
        .to_path_buf()
}

fn generate(check: bool) -> Result<()> {
    let root = root();
    let files = shopmesh_codegen::generate_all(&root)?;
    if check {
        let stale = shopmesh_codegen::stale_files(&root, &files)?;
        if stale.is_empty() {
            println!(
                "gen --check: {} generated files are up to date",
                files.len()
            );
            return Ok(());
        }
        for s in &stale {
            eprintln!("stale: {}: {}", s.path.display(), s.summary);
        }
        bail!(
            "{} generated file(s) are stale; run `cargo xtask gen` and commit the result",
            stale.len()
        );
    }
    let changed = shopmesh_codegen::write_files(&root, &files)?;
    for path in &changed {
        println!("wrote {}", path.display());
    }
    println!("gen: {} files, {} changed", files.len(), changed.len());
    Ok(())
}

/// Runs a command in the workspace root, failing with its name when it fails.
pub fn run(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    let status = cmd
        .current_dir(root())
        .status()
        .with_context(|| format!("cannot start {shown}"))?;
    if !status.success() {
        bail!("{shown} failed with {status}");
    }
    Ok(())
}

/// `cargo`, as the one running this xtask.
pub fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
}

fn lint() -> Result<()> {
    let buf = tools::buf(&root())?;
    println!("lint: buf lint");
    run(Command::new(&buf).arg("lint"))?;
    breaking(&buf)?;
    println!("lint: cargo fmt --check");
    run(cargo().args(["fmt", "--all", "--check"]))?;
    println!("lint: cargo clippy");
    run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    Ok(())
}

/// `buf breaking` against the previous commit, when that commit already had protos.
fn breaking(buf: &Path) -> Result<()> {
    let has_previous = Command::new("git")
        .args(["cat-file", "-e", "HEAD~1:buf.yaml"])
        .current_dir(root())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_previous {
        println!("lint: buf breaking: no previous commit with buf.yaml to compare with");
        return Ok(());
    }
    println!("lint: buf breaking --against HEAD~1");
    run(Command::new(buf).args(["breaking", "--against", ".git#ref=HEAD~1"]))
}

fn test(extra: &[String]) -> Result<()> {
    let root = root();
    println!("test: step 1/5 gen --check");
    generate(true)?;
    println!("test: step 2/5 lint");
    lint()?;
    println!("test: step 3/5 infrastructure");
    let env = infra::ensure_all(&root)?;
    println!("test: step 4/5 cargo test");
    let mut cmd = cargo();
    cmd.args(["test", "--workspace", "--no-fail-fast"])
        .args(extra);
    for (k, v) in &env.vars {
        cmd.env(k, v);
    }
    let result = run(&mut cmd).and_then(|()| {
        println!("test: step 5/5 contract fuzzing (schemathesis)");
        let mongo = env
            .vars
            .iter()
            .find(|(k, _)| k == "TEST_MONGO_URL")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        fuzz::run(
            &root,
            &root.join("target/debug"),
            &up::environment(&root),
            &mongo,
        )
    });
    drop(env);
    result
}
