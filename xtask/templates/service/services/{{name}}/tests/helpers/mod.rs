//! The {{name}} service's test fixture: the service started from a test stack of its own
//! (its own database, ports and signing key), with a typed client and tokens for it.
#![allow(dead_code)]

use shopmesh_identity::{AccessToken, Role};
use shopmesh_openapi::{{name}}::{{Name}}Client;
use shopmesh_testkit::{Service, Stack, Started, start, test_stack, token};
use shopmesh_{{name}}::Application;
use shopmesh_{{name}}::store::{{Name}}Store;

/// The running service, a client for it and a shopper's token.
pub struct Harness {
    pub service: Started<{{Name}}Store>,
    pub client: {{Name}}Client,
    pub shopper: AccessToken,
}

impl Harness {
    /// The service with the stack's defaults.
    pub async fn start() -> Self {
        Self::start_with(test_stack()).await
    }

    /// The service from `stack` (change it with `set_for(Service::{{Name}}, ...)` first).
    pub async fn start_with(stack: Stack) -> Self {
        let service = start::<Application, _>(stack, Service::{{Name}}, |app| app.store().clone()).await;
        let client = {{Name}}Client::new(service.server.base_url.clone());
        let shopper = token(&service.stack, 1, Role::User);
        Self {
            service,
            client,
            shopper,
        }
    }

    pub async fn stop(self) {
        self.service.part.pool().close().await;
        self.service.stop().await;
    }
}
