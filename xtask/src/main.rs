//! `cargo xtask <command>`: the project's automation, in Rust so it runs wherever cargo does.
//!
//! | command | what it does |
//! |---|---|
//! | `gen` | regenerate `proto/`, `openapi/`, `graphql/` and the TypeScript SDK's `sdk/typescript/src/gen/` from `schema/`, then type-check and build the shop's web app (`web/`) into `services/gateway/assets/shop/` |
//! | `gen --check` | fail, with a summary, when any generated file is stale |
//! | `lint [--against REF]` | buf lint; Spectral on the OpenAPI contracts; contract evolution since REF (default `HEAD~1`: OpenAPI, GraphQL, events, buf breaking); Kubernetes manifests validated offline, Prometheus config and rules checked, rustfmt check, clippy with warnings denied |
//! | `test` | `gen --check`, lint, then every test against real infrastructure |
//! | `new service NAME` | a new REST service over MySQL, registered everywhere a service belongs ([`scaffold`]) |
//! | `up` | run the four services against the infrastructure in `.env` / environment |
//! | `bench` | load benchmarks, results in `bench/results/latest.json` |
//! | `vendor-graphiql` | re-fetch the GraphiQL page's assets (pinned) from npm |

mod bench;
mod checker;
mod deployment;
mod evolution;
mod fuzz;
mod fuzz_targets;
mod infra;
mod platform;
mod scaffold;
mod sdk;
mod tools;
mod up;
mod vendor;
mod web;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("gen") => generate(args.iter().any(|a| a == "--check")),
        Some("lint") => lint(&args[1..]),
        Some("test") => test(&args[1..]),
        Some("infra") => infra::ensure_all(&root()).map(|_| ()),
        Some("up") => up::run(&root(), &args[1..]),
        Some("bench") => bench::run(&root(), &args[1..]),
        Some("new") => scaffold::run(&root(), &args[1..])
            .and_then(|()| generate(false))
            // Imports and line breaks depend on the name; rustfmt settles them.
            .and_then(|()| run(cargo().args(["fmt", "--all"]))),
        Some("root") => {
            println!("{}", root().display());
            Ok(())
        }
        Some("fuzz") => fuzz_targets::seconds().and_then(|s| fuzz_targets::run(&root(), s)),
        Some("vendor-graphiql") => vendor::graphiql(&root()),
        _ => {
            eprintln!(
                "usage: cargo xtask <gen [--check] | lint [--against REF] | test [-- cargo test args] | new service NAME [--rest] [--port N] | infra | up [--ephemeral] [--no-build] | bench | fuzz | root | vendor-graphiql>"
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

/// The checkout this xtask acts on, found from the current directory ([`checkout_containing`]);
/// outside any checkout it says so and exits.
pub fn root() -> PathBuf {
    static ROOT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    ROOT.get_or_init(|| {
        let here = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        checkout_containing(&here).unwrap_or_else(|| {
            eprintln!(
                "xtask: {} is not inside a shopmesh checkout (no Cargo.toml workspace beside xtask/ at or above it); run cargo xtask from the checkout it should act on",
                here.display()
            );
            std::process::exit(2)
        })
    })
    .clone()
}

/// The nearest directory at or above `dir` that holds a workspace manifest beside
/// `xtask/Cargo.toml`. Found at run time, never baked in at compile time: with a shared
/// `CARGO_TARGET_DIR` one xtask binary serves every clone, and must act on the one it runs in.
fn checkout_containing(dir: &Path) -> Option<PathBuf> {
    let dir = dir.canonicalize().ok()?;
    dir.ancestors()
        .find(|d| {
            d.join("xtask/Cargo.toml").is_file()
                && std::fs::read_to_string(d.join("Cargo.toml"))
                    .is_ok_and(|m| m.lines().any(|l| l.trim() == "[workspace]"))
        })
        .map(Path::to_path_buf)
}

fn generate(check: bool) -> Result<()> {
    let root = root();
    let files = shopmesh_codegen::generate_all(&root)?;
    if check {
        let stale = shopmesh_codegen::stale_files(&root, &files)?;
        let mut stale_sdk = sdk::stale(&root)?;
        stale_sdk.extend(web::stale(&root)?);
        if stale.is_empty() && stale_sdk.is_empty() {
            println!(
                "gen --check: {} generated files, the TypeScript SDK and the shop's web app are up to date",
                files.len()
            );
            return Ok(());
        }
        for s in &stale {
            eprintln!("stale: {}: {}", s.path.display(), s.summary);
        }
        for path in &stale_sdk {
            eprintln!("stale: {path}");
        }
        bail!(
            "{} generated file(s) are stale; run `cargo xtask gen` and commit the result",
            stale.len() + stale_sdk.len()
        );
    }
    let changed = shopmesh_codegen::write_files(&root, &files)?;
    for path in &changed {
        println!("wrote {}", path.display());
    }
    println!("gen: {} files, {} changed", files.len(), changed.len());
    sdk::generate(&root)?;
    web::generate(&root)
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

/// `cargo`, as the one running this xtask, without the variables `cargo run` set for xtask
/// itself: build scripts (ring's, for one) rerun when `CARGO_PKG_NAME` or
/// `CARGO_MANIFEST_DIR` change, so a build started here would otherwise not reuse one started
/// from a shell, and the other way round.
pub fn cargo() -> Command {
    without_package_env(Command::new(
        std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()),
    ))
}

/// `cmd` without the variables `cargo run` set for xtask's own package, which would confuse a
/// cargo started under it.
pub fn without_package_env(mut cmd: Command) -> Command {
    for (key, _) in std::env::vars() {
        let per_package = key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_BIN_")
            || [
                "CARGO_MANIFEST_DIR",
                "CARGO_MANIFEST_PATH",
                "CARGO_MANIFEST_LINKS",
                "CARGO_CRATE_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "OUT_DIR",
            ]
            .contains(&key.as_str());
        if per_package {
            cmd.env_remove(key);
        }
    }
    cmd
}

fn lint(args: &[String]) -> Result<()> {
    let against = match args {
        [] => "HEAD~1",
        [flag, reference] if flag == "--against" => reference.as_str(),
        _ => bail!("usage: cargo xtask lint [--against REF]"),
    };
    let buf = tools::buf(&root())?;
    println!("lint: buf lint");
    run(Command::new(&buf).arg("lint"))?;
    evolution::check(&root(), against, &buf)?;
    spectral()?;
    deployment::lint(&root())?;
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

/// Spectral's `spectral:oas` ruleset (`.spectral.yaml`) on every OpenAPI contract; a warning
/// fails.
fn spectral() -> Result<()> {
    let tools = root().join("xtask/node");
    tools::node_packages(&tools)?;
    println!("lint: spectral lint (spectral:oas) schema/openapi");
    run(
        Command::new(tools.join("node_modules/.bin/spectral")).args([
            "lint",
            "--fail-severity",
            "warn",
            "--ruleset",
            ".spectral.yaml",
            "schema/openapi/*.yaml",
        ]),
    )
}

/// Totals of every `test result:` line cargo printed.
#[derive(Debug, Default, PartialEq, Eq)]
struct Tally {
    passed: u64,
    failed: u64,
}

impl Tally {
    /// Adds `test result: ok. 12 passed; 0 failed; ...` lines; ignores the rest.
    fn add_line(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            return;
        };
        for part in rest.split(';') {
            let mut words = part.split_whitespace().rev();
            let (Some(kind), Some(n)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(n) = n.parse::<u64>() else { continue };
            match kind {
                "passed" => self.passed += n,
                "failed" => self.failed += n,
                _ => {}
            }
        }
    }
}

/// Runs `cmd`, echoing its stdout while counting test results.
fn run_counting(cmd: &mut Command) -> (Tally, Result<()>) {
    use std::io::BufRead;
    let mut tally = Tally::default();
    let shown = format!("{cmd:?}");
    let child = cmd
        .current_dir(root())
        .stdout(std::process::Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return (tally, Err(anyhow::anyhow!("cannot start {shown}: {e}"))),
    };
    if let Some(out) = child.stdout.take() {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            println!("{line}");
            tally.add_line(&line);
        }
    }
    let result = match child.wait() {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(anyhow::anyhow!("{shown} failed with {status}")),
        Err(e) => Err(e.into()),
    };
    (tally, result)
}

fn test(extra: &[String]) -> Result<()> {
    let root = root();
    println!("test: step 1/7 gen --check");
    generate(true)?;
    println!("test: step 2/7 lint");
    lint(&[])?;
    println!("test: step 3/7 infrastructure");
    let env = infra::ensure_all(&root)?;
    tools::browser_clients(&root)?;
    tools::node_packages(&root.join("xtask/node"))?;
    println!("test: step 4/7 cargo test");
    let mut cmd = cargo();
    cmd.args(["test", "--workspace", "--no-fail-fast"])
        .args(extra);
    for (k, v) in &env.vars {
        cmd.env(k, v);
    }
    let (mut tally, tests) = run_counting(&mut cmd);
    let result = tests.and_then(|()| {
        println!("test: step 5/7 the checkout checker's negative control (must find a violation)");
        let (control, result) = run_counting(&mut checker::negative_control(&root, &env.vars)?);
        tally.passed += control.passed;
        tally.failed += control.failed;
        result
    });
    let result = result.and_then(|()| {
        println!("test: step 6/7 contract fuzzing (schemathesis)");
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
    let result = result.and_then(|()| {
        println!("test: step 7/7 fuzzing the parsers (cargo fuzz)");
        fuzz_targets::run(&root, fuzz_targets::seconds()?)
    });
    println!("tests: {} passed, {} failed", tally.passed, tally.failed);
    drop(env);
    result
}

#[cfg(test)]
mod tests {
    use super::Tally;

    #[test]
    fn tally_sums_test_result_lines() {
        let mut t = Tally::default();
        for line in [
            "test result: ok. 12 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s",
            "running 3 tests",
            "test result: FAILED. 2 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1s",
            "test passed ... ok",
        ] {
            t.add_line(line);
        }
        assert_eq!(
            t,
            Tally {
                passed: 14,
                failed: 1
            }
        );
    }
}
