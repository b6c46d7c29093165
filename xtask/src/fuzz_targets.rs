//! The `cargo fuzz` targets in `fuzz/`: the entry points that parse untrusted nested input (a
//! GraphQL document, a JSON body), each fuzzed for a bounded time on a worker-sized stack, so
//! no input may abort the process. First a negative control: the GraphQL target built without
//! the nesting guard must crash on the committed deep document, or the harness could not see
//! the crash it exists to catch.

use std::path::Path;
use std::process::Command;

use anyhow::{Result, bail};

/// The targets, fuzzed in this order.
pub const TARGETS: [&str; 2] = ["graphql_document", "json_body"];

/// Seconds each target is fuzzed: `FUZZ_SECONDS`, 60 by default.
pub fn seconds() -> Result<u64> {
    match std::env::var("FUZZ_SECONDS") {
        Ok(v) => Ok(v.parse()?),
        Err(_) => Ok(60),
    }
}

fn cargo_fuzz(bin: &Path, root: &Path) -> Command {
    let mut cmd = crate::without_package_env(Command::new(bin));
    cmd.current_dir(root);
    // Instrumentation without a sanitizer builds on the stable toolchain.
    cmd.args(["run", "--sanitizer", "none"]);
    cmd
}

/// Runs `cmd` with its output (libFuzzer prints a line per new input) in `log`; prints the
/// last lines, and answers whether it exited successfully.
fn logged(cmd: &mut Command, log: &Path) -> Result<bool> {
    let file = std::fs::File::create(log)?;
    let status = cmd.stdout(file.try_clone()?).stderr(file).status()?;
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let shown = if status.success() { 2 } else { 40 };
    for line in &lines[lines.len().saturating_sub(shown)..] {
        println!("  {line}");
    }
    println!("fuzz: {status}; the whole output is in {}", log.display());
    Ok(status.success())
}

/// Runs the negative control, the regression and every target for `seconds`.
pub fn run(root: &Path, seconds: u64) -> Result<()> {
    let bin = crate::tools::cargo_fuzz(root)?;
    let dir = root.join("fuzz");
    let logs = root.join("target/fuzz-logs");
    std::fs::create_dir_all(&logs)?;
    // A file, not a folder: libFuzzer runs the files it is given and stops, while a folder
    // would be a corpus to fuzz from without end.
    let regression = dir.join("regressions/graphql_document/deep_list_5000");
    println!("fuzz: negative control, the GraphQL target without the nesting guard");
    let unguarded = logged(
        cargo_fuzz(&bin, root)
            .args(["--features", "unguarded", "graphql_document"])
            .arg(&regression),
        &logs.join("negative-control.log"),
    )?;
    // It must fail by the target dying, not by failing to build.
    let log = std::fs::read_to_string(logs.join("negative-control.log")).unwrap_or_default();
    let crashed = log.contains("Fuzz target exited with signal") || log.contains("deadly signal");
    if unguarded || !crashed {
        bail!(
            "negative control failed: without the nesting guard the committed deep document did not crash the target, so the harness cannot see a stack overflow"
        );
    }
    println!("fuzz: the negative control crashed, as it must");
    let guarded = logged(
        cargo_fuzz(&bin, root)
            .arg("graphql_document")
            .arg(&regression),
        &logs.join("regression.log"),
    )?;
    if !guarded {
        bail!("the guarded GraphQL target crashed on the committed deep document");
    }
    for target in TARGETS {
        let corpus = root.join("target/fuzz-corpus").join(target);
        std::fs::create_dir_all(&corpus)?;
        println!("fuzz: {target} for {seconds} s");
        let passed = logged(
            cargo_fuzz(&bin, root)
                .arg(target)
                .arg(&corpus)
                .arg(dir.join("seeds").join(target))
                .arg("--")
                .arg(format!("-max_total_time={seconds}"))
                .arg("-max_len=16384"),
            &logs.join(format!("{target}.log")),
        )?;
        if !passed {
            bail!("fuzzing {target} found an input that crashes it: see fuzz/artifacts/{target}/");
        }
    }
    Ok(())
}
