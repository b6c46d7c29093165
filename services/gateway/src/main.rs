//! The gateway binary: the shared entry point around [`shopmesh_gateway::Application`].

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shopmesh_common::service::main::<shopmesh_gateway::Application>().await
}
