//! The notifications service binary: the shared entry point around
//! [`shopmesh_notifications::Application`].

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shopmesh_common::service::main::<shopmesh_notifications::Application>().await
}
