//! The users service binary: the shared entry point around [`shopmesh_users::Application`].

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shopmesh_common::service::main::<shopmesh_users::Application>().await
}
