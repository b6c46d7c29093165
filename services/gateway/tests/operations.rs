//! What operators read from a gateway that has served nothing yet.

mod standalone;

use standalone::Gateway;

#[tokio::test]
async fn the_resilience_metrics_exist_before_anything_fails() {
    let gw = Gateway::start().await;
    let metrics = gw
        .http
        .get(format!("{}/metrics", gw.server.base_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for service in ["orders", "users", "notifications"] {
        for series in [
            format!("downstream_circuit_state{{service=\"{service}\"}} 0"),
            format!("downstream_retries_total{{service=\"{service}\"}} 0"),
            format!("downstream_rejected_total{{service=\"{service}\"}} 0"),
        ] {
            assert!(metrics.contains(&series), "{series} missing");
        }
    }
    gw.server.stop().await;
}
