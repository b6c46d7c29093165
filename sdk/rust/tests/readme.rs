//! The README's Rust SDK example, compiled as a consumer outside this workspace would: a new
//! crate (its own workspace) depending on `shopmesh-sdk` by path. This also proves the SDK
//! builds with only the client half of the generated crate, which feature unification inside
//! the workspace would hide.

use std::path::Path;
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

    let consumer = Path::new(env!("CARGO_TARGET_TMPDIR")).join("sdk-consumer");
    std::fs::create_dir_all(consumer.join("src")).unwrap();
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR"))
        .canonicalize()
        .unwrap();
    std::fs::write(
        consumer.join("Cargo.toml"),
        format!(
            r#"[package]
name = "sdk-consumer"
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
    std::fs::write(consumer.join("src/main.rs"), example).unwrap();
    // The workspace's lockfile, so the consumer resolves the same versions, offline.
    std::fs::copy(root.join("Cargo.lock"), consumer.join("Cargo.lock")).unwrap();

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
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
