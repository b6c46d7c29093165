//! The payments service binary: the shared entry point around [`shopmesh_payments::Application`].

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shopmesh_common::service::main::<shopmesh_payments::Application>().await
}
