//! Wires the users service: config -> store + migrations -> HTTP server.

use shopmesh_common::config::ProcessEnv;
use shopmesh_common::retry;
use shopmesh_common::shutdown::Shutdown;
use shopmesh_users::config::UsersConfig;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shopmesh_common::http::healthcheck_command("PORT", 3001);
    // Held to the end of main: dropping it flushes buffered spans.
    let _telemetry = shopmesh_common::telemetry::init("users");
    let config = UsersConfig::from_env(&ProcessEnv)?;
    let shutdown = Shutdown::new();
    shutdown.on_signals();

    let store = shopmesh_users::build(&config)?;
    if retry::until_ok("database migrations", &shutdown, || {
        store.migrate(&config.database_url)
    })
    .await
    .is_none()
    {
        return Ok(());
    }
    let (acceptor, addr) = shopmesh_common::http::bind(&format!("0.0.0.0:{}", config.port)).await?;
    tracing::info!(%addr, "users listening");
    let s = shutdown.clone();
    shopmesh_common::http::serve(acceptor, shopmesh_users::app(store), async move {
        s.wait().await
    })
    .await?;
    Ok(())
}
