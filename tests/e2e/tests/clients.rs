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
    for name in ["graphiql", "firstMinute", "swagger", "cors", "purchase"] {
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
    assert!(
        checks["firstMinute"]["firstTab"]
            .as_str()
            .is_some_and(|t| t.starts_with("LogIn")),
        "GraphiQL opens on the log-in tab: {report:#}"
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
    let expected = directives_on_fields(&std::fs::read_to_string(&committed).unwrap());
    assert!(expected.len() >= 20, "{expected:?}");
    assert_eq!(
        changes.len(),
        expected.len(),
        "graphql-inspector diff:\n{said}"
    );
    for change in changes {
        assert!(
            expected.iter().any(|e| change.contains(e.as_str())),
            "graphql-inspector diff:\n{said}"
        );
    }
}

/// `Directive D was removed from field T.f` for every directive `D` the SDL puts on a field
/// `f` of a type `T`: introspection carries no directives, so this is what graphql-inspector
/// sees between the committed SDL and the live schema.
fn directives_on_fields(sdl: &str) -> Vec<String> {
    let mut found = Vec::new();
    let (mut ty, mut field) = (None::<&str>, None::<&str>);
    let mut in_description = false;
    for line in sdl.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("\"\"\"") {
            // `"""` alone opens or closes a block; `"""text"""` is one line.
            let one_line = trimmed.len() > 3 && trimmed.ends_with("\"\"\"");
            in_description = !in_description && !one_line;
            continue;
        }
        if in_description || trimmed.starts_with('"') || trimmed.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix("type ") {
            ty = rest.split_whitespace().next();
            continue;
        }
        if line.starts_with('}') || !line.starts_with(' ') {
            ty = None;
            continue;
        }
        let Some(ty) = ty else { continue };
        if line.starts_with("  ") && !line.starts_with("   ") {
            field = trimmed.split(['(', ':']).next().map(str::trim);
        }
        let Some(field) = field else { continue };
        for directive in trimmed.split('@').skip(1) {
            let name: String = directive
                .chars()
                .take_while(|c| c.is_alphanumeric())
                .collect();
            found.push(format!(
                "Directive {name} was removed from field {ty}.{field}"
            ));
        }
    }
    found
}

/// The last line of `out`'s stdout that is JSON: a script's report.
fn report_of(script: &str, out: &std::process::Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| {
            let stderr = String::from_utf8_lossy(&out.stderr);
            panic!("no report from {script}\nstdout: {stdout}\nstderr: {stderr}")
        })
}

/// Runs `script` with `program` against a platform where Alice (user 1) placed an order:
/// `script <gateway URL> <Alice's token> <order id>`. The order's id, and the script's report.
async fn with_an_order(program: PathBuf, script: &str) -> (i64, Value) {
    let platform = Platform::start(PlatformOptions::default()).await.unwrap();
    let order = platform.place_order(1).await.unwrap();
    let token = platform.token(1, shopmesh_identity::Role::User);
    let out = run(
        program,
        vec![
            script.into(),
            platform.gateway_url.clone(),
            token.expose().to_owned(),
            order.to_string(),
        ],
    )
    .await;
    platform.stop().await;
    (order, report_of(script, &out))
}

/// Runs the GraphQL-over-HTTP spec's own server audits (npm `graphql-http`) at `url`.
async fn audit(url: String, token: &str) -> Value {
    browser_dir();
    let out = run(
        PathBuf::from("node"),
        vec!["graphql-http.mjs".into(), url, token.to_owned()],
    )
    .await;
    report_of("graphql-http.mjs", &out)
}

/// The spec's audits pass at `/graphql`: no MUST failure, no SHOULD warning, and no MAY notice
/// (the README says which optional parts the gateway takes). The same audits at an endpoint
/// that is not GraphQL (the REST spec) fail, so the audits can fail.
#[tokio::test(flavor = "multi_thread")]
async fn graphql_http_server_audits_pass_at_the_gateway() {
    let platform = Platform::start(PlatformOptions::default()).await.unwrap();
    let token = platform.token(1, shopmesh_identity::Role::User);
    let report = audit(format!("{}/graphql", platform.gateway_url), token.expose()).await;
    let control = audit(
        format!("{}/api/openapi.json", platform.gateway_url),
        token.expose(),
    )
    .await;
    platform.stop().await;
    eprintln!("graphql-http: {report}");
    for level in ["MUST", "SHOULD", "MAY"] {
        assert_eq!(report[level], serde_json::json!([]), "{level}: {report:#}");
    }
    assert!(
        report["ok"].as_array().is_some_and(|ok| ok.len() >= 50),
        "{report:#}"
    );
    let failed = |level: &str| control[level].as_array().map_or(0, Vec::len);
    assert!(
        failed("MUST") + failed("SHOULD") > 0,
        "the audits found nothing wrong with an endpoint that is not GraphQL: {control:#}"
    );
}

/// urql with graphcache (its queries sent with GET) and Apollo Client with its normalized
/// cache run the SDK's own operations unmodified, with nothing logged against the answers.
#[tokio::test(flavor = "multi_thread")]
async fn urql_and_apollo_client_run_the_sdks_operations() {
    browser_dir();
    let (order, report) = with_an_order(PathBuf::from("node"), "clients.mjs").await;
    eprintln!("clients.mjs: {report}");
    assert_eq!(report["ok"], true, "{report:#}");
    assert_eq!(report["warnings"], serde_json::json!([]), "{report:#}");
    let urql = &report["urql"];
    assert_eq!(
        urql["methods"],
        serde_json::json!(["GET", "GET", "GET", "GET"]),
        "{report:#}"
    );
    assert_eq!(urql["me"], "Alice Johnson", "{report:#}");
    assert_eq!(urql["order"], order.to_string(), "{report:#}");
    assert_eq!(urql["missingName"], Value::Null, "{report:#}");
    let apollo = &report["apollo"];
    assert_eq!(
        apollo["methods"],
        serde_json::json!(["POST", "POST"]),
        "{report:#}"
    );
    let normalized = apollo["normalized"].to_string();
    assert!(
        normalized.contains(&format!("Order:{order}")) && normalized.contains("User:1"),
        "Apollo normalized the order and its user: {report:#}"
    );
    // The first visitor's hash is unknown, so its query follows once; the second's is answered
    // from the hash alone, cacheably.
    let persisted = &report["persisted"];
    assert_eq!(
        persisted["requests"],
        serde_json::json!([
            "GET hash 400 private, no-store",
            "POST query 200 null",
            "GET hash 200 public, max-age=10"
        ]),
        "{report:#}"
    );
    let listed = &urql["products"];
    assert_eq!(
        persisted["products"],
        serde_json::json!([listed, listed]),
        "{report:#}"
    );
}

/// Python's gql sends the SDK's whole document with an operation name, as an application that
/// keeps its operations in one file does; each operation answers.
#[tokio::test(flavor = "multi_thread")]
async fn python_gql_runs_named_operations_of_the_sdks_document() {
    let python = root().join(".tools/venv/bin/python");
    assert!(
        python.exists() && root().join(".tools/venv/bin/gql-cli").exists(),
        "Python gql is missing: run `cargo xtask test` (it installs it into .tools/venv)"
    );
    let (order, report) = with_an_order(python, "gql_client.py").await;
    assert_eq!(report["ok"], true, "{report:#}");
    let answers = &report["answers"];
    assert_eq!(answers["Me"]["me"]["name"], "Alice Johnson", "{report:#}");
    assert_eq!(
        answers["GetOrder"]["order"]["id"],
        order.to_string(),
        "{report:#}"
    );
    assert_eq!(answers["UserName"]["userName"], "Bob Smith", "{report:#}");
}
