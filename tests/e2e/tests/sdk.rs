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
use shopmesh_testkit::{Service, test_stack};

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

    // Only the SDK's registered operations run: everything the SDK sends is registered as sent.
    let stack = test_stack().set_for(Service::Gateway, "GRAPHQL_OPERATIONS", "registered");
    let platform = Platform::start_stack(stack, PlatformOptions::default())
        .await
        .unwrap();
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

/// A consumer outside the repository installs the SDK as `npm pack` makes it and uses it by
/// its README: the tarball holds the built `dist/` (code and types), and logging in works.
#[tokio::test(flavor = "multi_thread")]
async fn a_consumer_installs_the_packed_sdk_and_logs_in_with_it() {
    let consumer =
        std::env::temp_dir().join(format!("shopmesh-sdk-consumer-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&consumer);
    std::fs::create_dir_all(&consumer).unwrap();
    let npm = PathBuf::from("npm");
    let destination = consumer.display().to_string();
    let packed = run(
        npm.clone(),
        vec![
            "pack".into(),
            "--silent".into(),
            "--pack-destination".into(),
            destination,
        ],
    )
    .await;
    assert!(packed.status.success(), "npm pack:\n{}", shown(&packed));
    let tarball = consumer.join(
        String::from_utf8_lossy(&packed.stdout)
            .trim()
            .lines()
            .last()
            .unwrap(),
    );
    std::fs::write(
        consumer.join("package.json"),
        r#"{"name":"consumer","private":true,"type":"module"}"#,
    )
    .unwrap();
    let script = r#"
        import { createGraphqlClient, LogInDocument, MeDocument, fieldRules } from "@shopmesh/sdk";
        let token;
        const gateway = createGraphqlClient({ baseUrl: process.argv[2], token: () => token });
        const login = await gateway.request(LogInDocument, { email: "alice@example.com", password: "shopmesh-demo" });
        token = login.ok ? login.data.login.accessToken : undefined;
        const me = await gateway.request(MeDocument, {});
        console.log(JSON.stringify({ name: me.ok ? me.data.me.name : null, rules: fieldRules.CreateUserRequest.password }));
    "#;
    std::fs::write(consumer.join("consumer.mjs"), script).unwrap();
    let install = tokio::task::spawn_blocking({
        let consumer = consumer.clone();
        move || {
            Command::new("npm")
                .args([
                    "install",
                    "--silent",
                    "--no-audit",
                    "--no-fund",
                    "--prefer-offline",
                ])
                .arg(&tarball)
                .current_dir(&consumer)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(
        install.status.success(),
        "npm install:\n{}",
        shown(&install)
    );
    let installed = consumer.join("node_modules/@shopmesh/sdk/dist");
    assert!(installed.join("index.js").exists() && installed.join("index.d.ts").exists());

    let platform = Platform::start(PlatformOptions::default()).await.unwrap();
    let url = platform.gateway_url.clone();
    let used = tokio::task::spawn_blocking({
        let consumer = consumer.clone();
        move || {
            Command::new("node")
                .args(["consumer.mjs", &url])
                .current_dir(&consumer)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    platform.stop().await;
    let _ = std::fs::remove_dir_all(&consumer);
    assert!(used.status.success(), "{}", shown(&used));
    let report: Value = serde_json::from_slice(&used.stdout).unwrap_or(Value::Null);
    assert_eq!(report["name"], "Alice Johnson", "{}", shown(&used));
    assert_eq!(report["rules"]["minLength"], 8, "{}", shown(&used));
}
