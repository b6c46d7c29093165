//! The orders service binary: the shared entry point around [`shopmesh_orders::Application`].

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shopmesh_common::service::main::<shopmesh_orders::Application>().await
}
