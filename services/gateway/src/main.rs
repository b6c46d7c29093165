//! Wires the gateway: config -> clients, cache, limiter, schema -> HTTP server.

use shopmesh_common::config::ProcessEnv;
use shopmesh_common::shutdown::Shutdown;
use shopmesh_gateway::Gateway;
use shopmesh_gateway::config::GatewayConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shopmesh_common::http::healthcheck_command("PORT", 3000);
    // Held to the end of main: dropping it flushes buffered spans.
    let _telemetry = shopmesh_common::telemetry::init("gateway");
    let config = GatewayConfig::from_env(&ProcessEnv)?;
    let port = config.port;
    let shutdown = Shutdown::new();
    shutdown.on_signals();
    let gateway = Gateway::new(config)?;
    gateway.spawn_housekeeping();
    let (acceptor, addr) = shopmesh_common::http::bind(&format!("0.0.0.0:{port}")).await?;
    tracing::info!(%addr, "gateway listening: GraphQL at /graphql, REST at /api, Swagger UI at /docs");
    let s = shutdown.clone();
    shopmesh_common::http::serve(acceptor, gateway.app(), async move { s.wait().await }).await?;
    Ok(())
}
