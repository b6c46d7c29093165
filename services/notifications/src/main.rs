//! Wires the notifications service: config -> MongoDB store + indexes -> consumer -> gRPC.

use std::sync::Arc;
use std::time::Duration;

use shopmesh_common::config::ProcessEnv;
use shopmesh_common::retry;
use shopmesh_common::shutdown::Shutdown;
use shopmesh_notifications::config::NotificationsConfig;
use shopmesh_notifications::events::NotificationConsumer;
use shopmesh_notifications::store::{MongoNotificationStore, NotificationStore};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shopmesh_common::http::healthcheck_command("HTTP_PORT", 3003);
    // Held to the end of main: dropping it flushes buffered spans.
    let _telemetry = shopmesh_common::telemetry::init("notifications");
    let config = NotificationsConfig::from_env(&ProcessEnv)?;
    let shutdown = Shutdown::new();
    shutdown.on_signals();

    let mongo =
        MongoNotificationStore::connect(&config.mongo_url, &config.mongo_db, config.mongo_timeout)
            .await?;
    if retry::until_ok("MongoDB index creation", &shutdown, || {
        mongo.ensure_indexes()
    })
    .await
    .is_none()
    {
        return Ok(());
    }
    let store: Arc<dyn NotificationStore> = Arc::new(mongo);
    let consumer = NotificationConsumer::new(
        store.clone(),
        config.rabbitmq_url.clone(),
        config.topology.clone(),
        config.consumer.clone(),
    );
    let status = consumer.status();
    let consumer_task = tokio::spawn(consumer.run(shutdown.clone()));

    let (acceptor, http_addr) =
        shopmesh_common::http::bind(&format!("0.0.0.0:{}", config.http_port)).await?;
    tracing::info!(%http_addr, "notifications health and metrics listening");
    let http_app = shopmesh_notifications::http_app(store.clone(), status.clone());
    let s = shutdown.clone();
    let http_task = tokio::spawn(async move {
        shopmesh_common::http::serve(acceptor, http_app, async move { s.wait().await }).await
    });

    let listener = tokio::net::TcpListener::bind(("0.0.0.0", config.grpc_port)).await?;
    tracing::info!(addr = %listener.local_addr()?, "notifications gRPC listening");
    shopmesh_notifications::serve_grpc(
        listener,
        store,
        status,
        Duration::from_secs(2),
        shutdown.clone(),
    )
    .await?;
    shutdown.trigger();
    let _ = consumer_task.await;
    let _ = http_task.await;
    Ok(())
}
