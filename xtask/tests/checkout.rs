//! xtask acts on the checkout it is run in, found from the current directory, never on the one
//! it was compiled in: with a shared `CARGO_TARGET_DIR`, one binary serves every clone.

use std::path::Path;
use std::process::Command;

/// A directory that looks like a shopmesh checkout to xtask: a workspace manifest beside an
/// `xtask` package.
fn fake_checkout(dir: &Path) {
    std::fs::create_dir_all(dir.join("xtask/src")).unwrap();
    std::fs::create_dir_all(dir.join("services/users")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        "[workspace]\nmembers = [\"xtask\"]\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("xtask/Cargo.toml"),
        "[package]\nname = \"xtask\"\nversion = \"0.0.0\"\n",
    )
    .unwrap();
}

fn root_seen_from(dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("root")
        .current_dir(dir)
        .env_remove("CARGO_MANIFEST_DIR")
        .output()
        .unwrap()
}

#[test]
fn another_checkout_is_found_from_the_current_directory() {
    let other = std::env::temp_dir().join(format!("xtask-checkout-{}", std::process::id()));
    fake_checkout(&other);
    for from in [other.clone(), other.join("services/users")] {
        let out = root_seen_from(&from);
        let printed = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            Path::new(printed.trim()),
            other.canonicalize().unwrap(),
            "run from {}",
            from.display()
        );
    }
    std::fs::remove_dir_all(&other).unwrap();
}

#[test]
fn outside_any_checkout_it_says_so_instead_of_using_another() {
    let nowhere = std::env::temp_dir().join(format!("xtask-nowhere-{}", std::process::id()));
    std::fs::create_dir_all(&nowhere).unwrap();
    let out = root_seen_from(&nowhere);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not inside a shopmesh checkout"),
        "{out:?}"
    );
    std::fs::remove_dir_all(&nowhere).unwrap();
}
