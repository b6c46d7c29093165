//! `cargo xtask up` after `cargo xtask test` must not rebuild: the two build the workspace with
//! the same features, which holds while no dev-dependency turns on a feature the normal
//! dependencies leave off (cargo would then compile a second copy of that crate and of
//! everything depending on it).

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// `package version` -> the feature sets it is built with, per `cargo tree` over `edges`.
fn features(edges: &str) -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let out = Command::new(cargo)
        .args([
            "tree",
            "--workspace",
            "--locked",
            "--prefix",
            "none",
            "-e",
            edges,
        ])
        .args(["-f", "{p}|{f}"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut seen: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let line = line.trim_end_matches(" (*)");
        if let Some((package, features)) = line.split_once('|') {
            // `{p}` ends with the source path for workspace members; the name and version do.
            let package = package.split(" (").next().unwrap_or(package).to_owned();
            seen.entry(package)
                .or_default()
                .insert(features.trim_end_matches(" (*)").to_owned());
        }
    }
    seen
}

#[test]
fn dev_dependencies_turn_on_no_feature_the_build_leaves_off() {
    let build = features("normal,build");
    let test = features("normal,build,dev");
    let diverging: Vec<String> = build
        .iter()
        .filter_map(|(package, sets)| {
            let with_dev = test.get(package)?;
            (with_dev != sets)
                .then(|| format!("{package}: {sets:?} vs {with_dev:?} with dev-dependencies"))
        })
        .collect();
    assert!(
        build.len() > 100,
        "cargo tree listed the workspace: {}",
        build.len()
    );
    assert!(
        diverging.is_empty(),
        "turn these features on in the normal dependency too (see Cargo.toml):\n{}",
        diverging.join("\n")
    );
}
