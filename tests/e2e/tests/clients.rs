//! Real third-party clients against the running platform: Chromium (Debian's `chromium`,
//! driven by npm `playwright-core`) loads GraphiQL, runs an operation and shows its result,
//! uses Swagger UI's "Try it out", calls the gateway from another origin through CORS, and
//! buys a product in GraphiQL (checkout, then the order followed to CONFIRMED);
//! graphql-inspector fetches the schema with the standard introspection query and compares it
//! with the committed SDL.
//!
//! `cargo xtask test` installs Chromium and `tests/browser/node_modules` first. These tests do
//! not skip when they are missing: they fail and say how to install them.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use shopmesh_e2e::{Platform, PlatformOptions};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn browser_dir() -> PathBuf {
    let dir = root().join("tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").exists()
            && dir.join("node_modules/.bin/graphql-inspector").exists(),
        "tests/browser/node_modules is missing: run `cargo xtask test`, or `npm ci --prefix tests/browser`"
    );
    dir
}

/// Runs `node` (or a tool from `tests/browser/node_modules/.bin`) off the test's runtime.
async fn run(program: PathBuf, args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        Command::new(&program)
            .args(&args)
            .current_dir(browser_dir())
            .output()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()))
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn chromium_uses_graphiql_swagger_ui_and_cors_with_nothing_leaving_the_machine() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".to_owned());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} is missing: run `cargo xtask test` (it installs Debian's chromium) or set CHROMIUM"
    );
    let platform = Platform::start(PlatformOptions::default()).await.unwrap();
    let product = platform.put_on_sale(1500, 5).await.unwrap();
    let out = run(
        PathBuf::from("node"),
        vec![
            "web.mjs".into(),
            platform.gateway_url.clone(),
            product.to_string(),
        ],
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no report from web.mjs\nstdout: {stdout}\nstderr: {stderr}"));
    platform.stop().await;
    eprintln!("web.mjs: {report}");
    assert_eq!(report["offsite"], serde_json::json!([]), "{report:#}");
    assert_eq!(report["consoleErrors"], serde_json::json!([]), "{report:#}");
    let checks = &report["checks"];
    for name in ["graphiql", "swagger", "cors", "purchase"] {
        assert_eq!(checks[name]["ok"], true, "{name}: {report:#}");
    }
    assert!(
        checks["graphiql"]["shown"]
            .as_str()
            .is_some_and(|s| s.contains("\"userName\": \"Alice Johnson\"")),
        "{report:#}"
    );
    assert!(
        checks["graphiql"]["tabs"].as_u64() >= Some(4),
        "the example operations are tabs: {report:#}"
    );
    assert_eq!(checks["swagger"]["status"], "200", "{report:#}");
    assert!(
        checks["purchase"]["bought"]
            .as_str()
            .is_some_and(|s| s.contains("\"amountMinor\": 1500")),
        "{report:#}"
    );
    assert!(
        checks["purchase"]["confirmed"]
            .as_str()
            .is_some_and(|s| s.contains("\"to\": \"CONFIRMED\"")),
        "{report:#}"
    );
    assert_eq!(checks["cors"]["status"], 200, "{report:#}");
    assert!(out.status.success(), "{report:#}\nstderr: {stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn graphql_inspector_introspects_the_live_schema_and_finds_the_contract() {
    let dir = browser_dir();
    let platform = Platform::start(PlatformOptions::default()).await.unwrap();
    let fetched = std::env::temp_dir().join(format!(
        "shopmesh-introspected-{}.graphql",
        std::process::id()
    ));
    let inspector = dir.join("node_modules/.bin/graphql-inspector");
    let introspect = run(
        inspector.clone(),
        vec![
            "introspect".into(),
            format!("{}/graphql", platform.gateway_url),
            "--write".into(),
            fetched.display().to_string(),
        ],
    )
    .await;
    assert!(
        introspect.status.success(),
        "introspect failed:\n{}\n{}",
        String::from_utf8_lossy(&introspect.stdout),
        String::from_utf8_lossy(&introspect.stderr)
    );
    // The committed contract against what the live gateway says it serves: no change at all.
    let committed = root().join("schema/graphql/gateway.graphql");
    let diff = run(
        inspector,
        vec![
            "diff".into(),
            committed.display().to_string(),
            fetched.display().to_string(),
        ],
    )
    .await;
    platform.stop().await;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&diff.stdout),
        String::from_utf8_lossy(&diff.stderr)
    );
    let _ = std::fs::remove_file(&fetched);
    assert!(diff.status.success(), "graphql-inspector diff:\n{said}");
    // Introspection has no place for directives applied to fields (the GraphQL spec exposes
    // only their definitions), so the contract's cost and auth annotations are the one
    // difference a standard client can see; anything else is a real mismatch.
    let changes: Vec<&str> = said
        .lines()
        .filter(|l| l.contains('✖') || l.contains('⚠') || l.contains('✔'))
        .collect();
    let expected = [
        "Directive cost was removed from field Order.notifications",
        "Directive cost was removed from field Order.timeline",
        "Directive listSize was removed from field Query.ordersByUser",
        "Directive listSize was removed from field Query.products",
        "Directive auth was removed from field Query.order",
        "Directive auth was removed from field Query.ordersByUser",
        "Directive auth was removed from field Query.user",
        "Directive auth was removed from field Query.userName",
        "Directive auth was removed from field Query.me",
        "Directive auth was removed from field Query.cart",
        "Directive auth was removed from field Mutation.setCartLine",
        "Directive auth was removed from field Mutation.removeCartLine",
        "Directive auth was removed from field Mutation.clearCart",
        "Directive auth was removed from field Mutation.createOrder",
        "Directive auth was removed from field Mutation.cancelOrder",
        "Directive auth was removed from field Mutation.checkout",
        "Directive auth was removed from field Mutation.shipOrder",
        "Directive auth was removed from field Subscription.orderStatusChanged",
    ];
    assert_eq!(
        changes.len(),
        expected.len(),
        "graphql-inspector diff:\n{said}"
    );
    for change in changes {
        assert!(
            expected.iter().any(|e| change.contains(e)),
            "graphql-inspector diff:\n{said}"
        );
    }
}
