//! The {{name}} service binary: the shared entry point around [`shopmesh_{{name}}::Application`].

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shopmesh_common::service::main::<shopmesh_{{name}}::Application>().await
}
