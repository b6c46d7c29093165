//! The catalog service binary: the shared entry point around [`shopmesh_catalog::Application`].

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shopmesh_common::service::main::<shopmesh_catalog::Application>().await
}
