//! Wires the orders service: config -> store + migrations -> outbox relay -> HTTP server.

use shopmesh_common::config::ProcessEnv;
use shopmesh_common::retry;
use shopmesh_common::shutdown::Shutdown;
use shopmesh_orders::config::OrdersConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shopmesh_common::http::healthcheck_command("PORT", 3002);
    // Held to the end of main: dropping it flushes buffered spans.
    let _telemetry = shopmesh_common::telemetry::init("orders");
    let config = OrdersConfig::from_env(&ProcessEnv)?;
    let shutdown = Shutdown::new();
    shutdown.on_signals();

    let (store, relay) = shopmesh_orders::build(&config)?;
    if retry::until_ok("database migrations", &shutdown, || {
        store.migrate(&config.database_url)
    })
    .await
    .is_none()
    {
        return Ok(());
    }
    let relay_task = tokio::spawn(relay.run(shutdown.clone()));

    let (acceptor, addr) = shopmesh_common::http::bind(&format!("0.0.0.0:{}", config.port)).await?;
    tracing::info!(%addr, "orders listening");
    let s = shutdown.clone();
    shopmesh_common::http::serve(acceptor, shopmesh_orders::app(store), async move {
        s.wait().await
    })
    .await?;
    shutdown.trigger();
    let _ = relay_task.await;
    Ok(())
}
