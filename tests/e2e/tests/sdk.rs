//! The TypeScript SDK (`sdk/typescript`) as a web client uses it: the SDK and its example app
//! compile under `tsc --strict`, and the example app, run with Node against the live gateway,
//! registers, logs in, places orders over GraphQL and REST, pages through them, reads a
//! notification and gets a rejected order back as typed errors.
//!
//! `cargo xtask test` installs `sdk/typescript/node_modules` first; without it this test fails
//! and says how to install it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use shopmesh_e2e::{Platform, PlatformOptions};

fn sdk_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk/typescript");
    assert!(
        dir.join("node_modules/.bin/tsc").exists(),
        "sdk/typescript/node_modules is missing: run `cargo xtask test`, or `npm ci --prefix sdk/typescript`"
    );
    dir
}

async fn run(program: PathBuf, args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(&program)
            .args(&args)
            .current_dir(sdk_dir())
            .output()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()))
    })
    .await
    .unwrap()
}

fn shown(out: &Output) -> String {
    format!(
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_example_app_uses_the_typescript_sdk_against_the_live_gateway() {
    let dir = sdk_dir();
    let tsc = dir.join("node_modules/.bin/tsc");
    for project in ["tsconfig.json", "examples/tsconfig.json"] {
        let out = run(tsc.clone(), vec!["-p".into(), project.into()]).await;
        assert!(
            out.status.success(),
            "tsc --strict -p {project}:\n{}",
            shown(&out)
        );
    }

    let platform = Platform::start(PlatformOptions::default()).await.unwrap();
    let product = platform.put_on_sale(1500, 5).await.unwrap();
    let out = run(
        PathBuf::from("node"),
        vec![
            "examples/dist/shop.js".into(),
            platform.gateway_url.clone(),
            product.to_string(),
        ],
    )
    .await;
    platform.stop().await;
    let report: Value = String::from_utf8_lossy(&out.stdout)
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no report from shop.js\n{}", shown(&out)));
    assert!(out.status.success(), "{report:#}\n{}", shown(&out));
    assert_eq!(report["ok"], true, "{report:#}");
    assert_eq!(
        report["statuses"].as_array().map(Vec::len),
        Some(3),
        "{report:#}"
    );
    assert_eq!(
        report["orders"], 4,
        "three GraphQL orders and one REST order: {report:#}"
    );
    assert_eq!(report["pages"], 2, "pages of two: {report:#}");
    assert!(report["notifications"].as_u64() >= Some(1), "{report:#}");
    assert_eq!(
        report["graphqlError"]["code"], "BAD_USER_INPUT",
        "{report:#}"
    );
    assert_eq!(report["restError"]["status"], 400, "{report:#}");
    assert!(
        report["restError"]["title"].is_string(),
        "problem+json: {report:#}"
    );
    assert!(
        report["rateLimit"]["limit"].as_u64().is_some_and(|q| q > 0),
        "RateLimit-Policy is readable: {report:#}"
    );
    assert_eq!(report["purchase"]["status"], "CONFIRMED", "{report:#}");
    assert_eq!(report["purchase"]["total"], 1500, "{report:#}");
    assert_eq!(
        report["purchase"]["timeline"],
        serde_json::json!(["PENDING", "STOCK_RESERVED", "PAID", "CONFIRMED"]),
        "{report:#}"
    );
    // Heard live through the SDK's subscription client: every change after placing, in order.
    assert_eq!(
        report["purchase"]["heard"],
        serde_json::json!(["STOCK_RESERVED", "PAID", "CONFIRMED"]),
        "{report:#}"
    );
}
