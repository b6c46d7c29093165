//! The README's Rust SDK example, compiled as a consumer outside this workspace would: a new
//! crate (its own workspace) depending on `shopmesh-sdk` by path. This also proves the SDK
//! builds with only the client half of the generated crate, which feature unification inside
//! the workspace would hide.

use std::path::{Path, PathBuf};
use std::process::Command;

const HEADING: &str = "### The Rust SDK";

#[test]
fn the_readme_example_compiles_in_a_crate_outside_the_workspace() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let section = &readme[readme
        .find(HEADING)
        .expect("the README has a Rust SDK section")..];
    let start = section
        .find("```rust\n")
        .expect("a rust block in the section")
        + "```rust\n".len();
    let example = &section[start..start + section[start..].find("```").expect("block ends")];
    assert!(
        example.contains("shopmesh_sdk::"),
        "the block uses the SDK:\n{example}"
    );

    let consumer = consumer("sdk-consumer", example);
    let out = Command::new(cargo())
        .args(["check", "--offline", "--quiet"])
        .current_dir(&consumer)
        .env("CARGO_TARGET_DIR", consumer.join("target"))
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "the README example does not compile against shopmesh-sdk:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// A crate named `name` outside the workspace (its own workspace) depending on `shopmesh-sdk`
/// by path, with `main` as its `src/main.rs`.
fn consumer(name: &str, main: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let consumer = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::create_dir_all(consumer.join("src")).unwrap();
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR"))
        .canonicalize()
        .unwrap();
    std::fs::write(
        consumer.join("Cargo.toml"),
        format!(
            r#"[package]
name = "{name}"
version = "0.0.0"
edition = "2024"
publish = false

# Its own workspace: not a member of the one it sits under.
[workspace]

[dependencies]
shopmesh-sdk = {{ path = {sdk:?} }}
tokio = {{ version = "1", features = ["macros", "rt-multi-thread"] }}
"#
        ),
    )
    .unwrap();
    std::fs::write(consumer.join("src/main.rs"), main).unwrap();
    // The workspace's lockfile, so the consumer resolves the same versions, offline.
    std::fs::copy(root.join("Cargo.lock"), consumer.join("Cargo.lock")).unwrap();
    consumer
}

/// Web server frameworks, none of which a client needs.
const SERVER_FRAMEWORKS: &[&str] = &["poem", "poem-openapi", "axum", "actix-web", "warp", "tonic"];

/// The server frameworks in the normal dependency tree `cargo tree` prints with `args` in `dir`.
fn server_frameworks_in_tree(dir: &Path, args: &[&str]) -> Vec<String> {
    let out = Command::new(cargo())
        .args(["tree", "--offline", "-e", "normal", "--prefix", "none"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("cargo runs");
    let tree = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut found: Vec<String> = tree
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| SERVER_FRAMEWORKS.contains(name))
        .map(str::to_owned)
        .collect();
    found.sort();
    found.dedup();
    found
}

/// A consumer of the SDK gets no server framework: the generated models derive poem-openapi's
/// traits only with the generated crate's `server` feature. The same check on the gateway (a
/// server) finds poem, so it can fail.
#[test]
fn a_consumers_dependency_tree_has_no_server_framework() {
    let consumer = consumer("sdk-tree", "fn main() {}\n");
    assert_eq!(
        server_frameworks_in_tree(&consumer, &[]),
        Vec::<String>::new()
    );
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    assert!(
        server_frameworks_in_tree(&workspace, &["-p", "shopmesh-gateway"])
            .contains(&"poem".to_owned()),
        "the check finds poem in a server's tree"
    );
}
