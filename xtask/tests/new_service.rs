//! `cargo xtask new service` on a copy of this checkout: the scaffolded service builds, its
//! generated tests pass against the real database, and `cargo xtask lint` (contracts,
//! manifests, Prometheus, rustfmt, clippy) passes with it registered.
//!
//! The copy lives in `target/scaffold-check/` with a target folder of its own, and every file
//! keeps (or is given) the modification time of what it was made from, so a second run
//! rebuilds only what changed since the first.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::SystemTime;

const NAME: &str = "probe";

fn checkout() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// Files git would commit (tracked, and new but not ignored), relative to `root`.
fn files_of(root: &Path) -> Vec<PathBuf> {
    let out = Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .current_dir(root)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    out.stdout
        .split(|b| *b == 0)
        .filter(|p| !p.is_empty())
        .map(|p| PathBuf::from(String::from_utf8_lossy(p).into_owned()))
        .filter(|p| root.join(p).is_file())
        .collect()
}

fn modified(path: &Path) -> SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

fn set_modified(path: &Path, time: SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(time)
        .unwrap();
}

/// A copy of `from`'s files in `to`, with their modification times, as one git commit; the
/// tools and node packages `from` installed are linked, not copied.
fn copy_checkout(from: &Path, to: &Path) {
    if to.exists() {
        std::fs::remove_dir_all(to).unwrap();
    }
    for file in files_of(from) {
        let target = to.join(&file);
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(from.join(&file), &target).unwrap();
        set_modified(&target, modified(&from.join(&file)));
    }
    for linked in [
        ".tools",
        "xtask/node/node_modules",
        "sdk/typescript/node_modules",
    ] {
        if from.join(linked).exists() {
            std::os::unix::fs::symlink(from.join(linked), to.join(linked)).unwrap();
        }
    }
    for args in [
        &["init", "-q"][..],
        &["add", "-A"],
        &["commit", "-q", "-m", "copy"],
    ] {
        git(to, args);
    }
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Files the scaffold wrote are dated by what they were made from (the file they replace, the
/// templates, the scaffolder), not by when the test ran, so cargo sees them unchanged on the
/// next run when none of those changed.
fn date_by_inputs(copy: &Path, source: &Path) {
    let mut inputs = vec![modified(&source.join("xtask/src/scaffold.rs"))];
    for file in files_of(source) {
        if file.starts_with("xtask/templates") {
            inputs.push(modified(&source.join(&file)));
        }
    }
    let newest_input = inputs.into_iter().max().unwrap();
    for line in git(copy, &["status", "--porcelain", "--untracked-files=all"]).lines() {
        let path = copy.join(line[3..].trim());
        if path.is_file() {
            let own = std::fs::metadata(source.join(line[3..].trim()))
                .and_then(|m| m.modified())
                .unwrap_or(newest_input);
            set_modified(&path, own.max(newest_input));
        }
    }
}

/// A command run in `dir` with its own target folder, without the variables cargo set for
/// this test (they would make build scripts rerun).
fn in_copy(program: &str, dir: &Path, target: &Path) -> Command {
    let mut cmd = Command::new(program);
    for (key, _) in std::env::vars() {
        if key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_BIN_")
            || [
                "CARGO_MANIFEST_DIR",
                "CARGO_MANIFEST_PATH",
                "CARGO_CRATE_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "OUT_DIR",
            ]
            .contains(&key.as_str())
        {
            cmd.env_remove(key);
        }
    }
    cmd.current_dir(dir).env("CARGO_TARGET_DIR", target);
    cmd
}

fn succeeded(what: &str, out: Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn a_scaffolded_service_builds_passes_its_tests_and_the_lint() {
    let source = checkout();
    let work = source.join("target/scaffold-check");
    let (copy, target) = (work.join("repo"), work.join("target"));
    copy_checkout(&source, &copy);
    let xtask = env!("CARGO_BIN_EXE_xtask");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());

    let out = in_copy(xtask, &copy, &target)
        .args(["new", "service", NAME, "--rest"])
        .env("CARGO", &cargo)
        .output()
        .unwrap();
    let said = succeeded("cargo xtask new service", out);
    assert!(said.contains("registered in"), "{said}");
    date_by_inputs(&copy, &source);
    // The port it chose: one above every existing service's.
    let port: u16 = said
        .split("on :")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {said}"));
    let highest = shopmesh_stack::Service::ALL
        .iter()
        .map(|&s| shopmesh_stack::Ports::DEFAULT.http(s))
        .filter(|&p| p < 4000)
        .max()
        .unwrap();
    assert_eq!(port, highest + 1, "{said}");

    // Registered where a service belongs, not only written.
    let stack = std::fs::read_to_string(copy.join("platform/src/lib.rs")).unwrap();
    assert!(
        stack.contains("Service::Probe => self.probe"),
        "not in the Stack"
    );
    for (file, expected) in [
        ("docker-compose.yml", "SERVICE: probe"),
        ("deploy/k8s/base/kustomization.yaml", "- probe.yaml"),
        (
            "deploy/k8s/overlays/production/autoscaling.yaml",
            "name: probe",
        ),
        (
            "deploy/k8s/overlays/production/disruption-budgets.yaml",
            "name: probe",
        ),
        ("deploy/prometheus/prometheus.yml", &format!("probe:{port}")),
        ("docker/mysql/init.sql", "probe_db"),
        ("README.md", &format!("| probe | {port} | REST |")),
        (".env.example", &format!("probe (:{port})")),
    ] {
        let text = std::fs::read_to_string(copy.join(file)).unwrap();
        assert!(text.contains(expected), "{file} lacks {expected:?}");
    }

    let out = in_copy(&cargo, &copy, &target)
        .args(["test", "-p", "shopmesh-probe"])
        .output()
        .unwrap();
    let tested = succeeded("cargo test -p shopmesh-probe", out);
    assert!(tested.contains("test result: ok. 3 passed"), "{tested}");
    assert!(
        tested.contains("the_served_spec_and_the_routes_equal_the_committed_contract ... ok"),
        "{tested}"
    );

    let out = in_copy(xtask, &copy, &target)
        .args(["lint", "--against", "HEAD"])
        .env("CARGO", &cargo)
        .output()
        .unwrap();
    succeeded("cargo xtask lint", out);

    // A second scaffold of the same name writes nothing.
    let before = git(&copy, &["status", "--porcelain", "--untracked-files=all"]);
    let out = in_copy(xtask, &copy, &target)
        .args(["new", "service", NAME])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{out:?}");
    assert_eq!(
        git(&copy, &["status", "--porcelain", "--untracked-files=all"]),
        before
    );
}
