//! The shop's web app at the gateway's `/`, driven in Chromium (`tests/browser/shop.mjs`) as
//! its shoppers and staff use it: a purchase followed live to CONFIRMED, a declined card told
//! in words with the stock given back, a session that survives a reload and ends at log-out,
//! another shopper refused the order and the admin page, the admin shipping the order while the
//! shopper's page shows it. No serious or critical axe-core violation on any page, nothing
//! leaving the machine, no console error; screenshots at 375 and 1,280 px land in
//! `target/browser-artifacts/shop/`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use shopmesh_e2e::{Platform, PlatformOptions};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shopper_buys_in_the_browser_and_staff_ship_it() {
    let browser = root().join("tests/browser");
    assert!(
        browser.join("node_modules/axe-core").exists(),
        "tests/browser/node_modules is missing: run `cargo xtask test`, or `npm ci --prefix tests/browser`"
    );
    let platform = Platform::start(PlatformOptions::default()).await.unwrap();
    let term = shopmesh_testkit::unique("Tea");
    let mug = platform
        .sell(&format!("{term} Mug"), 1250, 5)
        .await
        .unwrap();
    let towel = platform
        .sell(&format!("{term} Towel"), 800, 5)
        .await
        .unwrap();
    // An event the notifications service gave up on, for the admin to redrive.
    let lost = shopmesh_events::OrderCreatedV1 {
        event_id: uuid::Uuid::now_v7(),
        order_id: 900_001,
        user_id: 1,
        product_id: mug,
        quantity: 1,
        created_at: chrono::Utc::now(),
    };
    platform
        .dead_letter(&lost, "store failed after 5 retries: timeout")
        .await
        .unwrap();
    let artifacts = root().join("target/browser-artifacts/shop");
    let args = vec![
        "shop.mjs".to_owned(),
        platform.gateway_url.clone(),
        term.clone(),
        artifacts.display().to_string(),
        format!("{mug}:{term} Mug"),
        format!("{towel}:{term} Towel"),
    ];
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .args(&args)
            .current_dir(browser)
            .output()
            .expect("node runs")
    })
    .await
    .unwrap();
    platform.stop().await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| {
            panic!(
                "no report from shop.mjs\nstdout: {stdout}\nstderr: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    eprintln!("shop.mjs: {report}");
    let checks = &report["checks"];
    for name in [
        "purchase", "declined", "session", "privacy", "admin", "logout",
    ] {
        assert_eq!(checks[name]["ok"], true, "{name}: {report:#}");
    }
    assert_eq!(report["offsite"], json!([]), "{report:#}");
    assert_eq!(report["consoleErrors"], json!([]), "{report:#}");
    assert_eq!(report["overflow"], json!([]), "{report:#}");
    for (page, serious) in report["accessibility"].as_object().unwrap() {
        assert_eq!(serious, &json!([]), "axe-core on {page}: {report:#}");
    }
    assert!(
        report["accessibility"].as_object().unwrap().len() >= 12,
        "every page audited: {report:#}"
    );

    let purchase = &checks["purchase"];
    // Two mugs at 12.50 and a towel at 8.00.
    assert_eq!(purchase["total"], "€33.00", "{report:#}");
    assert_eq!(purchase["stayed"], true, "no reload: {report:#}");
    let timeline: Vec<&str> = purchase["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(timeline.len(), 4, "{timeline:?}");
    assert!(timeline[3].starts_with("confirmed"), "{timeline:?}");

    let declined = &checks["declined"];
    assert!(
        declined["why"]
            .as_str()
            .is_some_and(|w| w.contains("declined")),
        "{report:#}"
    );
    assert_eq!(
        declined["after"], declined["before"],
        "stock back: {report:#}"
    );

    assert!(
        checks["session"]["orders"].as_u64() >= Some(2),
        "{report:#}"
    );
    let privacy = &checks["privacy"];
    assert!(
        privacy["order"]
            .as_str()
            .is_some_and(|t| t.contains("not yours")),
        "{report:#}"
    );
    assert!(
        privacy["admin"]
            .as_str()
            .is_some_and(|t| t.contains("staff")),
        "{report:#}"
    );
    assert_eq!(privacy["ship"], "FORBIDDEN", "{report:#}");
    let admin = &checks["admin"];
    assert_eq!(admin["stayed"], true, "{report:#}");
    assert!(
        admin["stock"]
            .as_str()
            .is_some_and(|s| s.starts_with("7 on hand")),
        "{report:#}"
    );
    let rejected = admin["rejected"].as_array().unwrap();
    assert_eq!(rejected.len(), 1, "one bad row: {report:#}");
    assert!(
        rejected[0].as_str().is_some_and(|r| r.contains("XXX")),
        "{report:#}"
    );
    assert_eq!(
        admin["deadLetters"],
        json!(["1 waiting", "0 waiting"]),
        "{report:#}"
    );
    assert_eq!(
        admin["redrive"], "Moved back: 1. Left here: 0.",
        "{report:#}"
    );
    assert_eq!(
        admin["importedWithBadRow"],
        Value::Null,
        "all rows or none: {report:#}"
    );
    assert_eq!(checks["logout"]["stored"], Value::Null, "{report:#}");
    assert!(out.status.success(), "{report:#}");
}
