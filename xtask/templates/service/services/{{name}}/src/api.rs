//! The {{name}} REST API: implements the generated [`{{Name}}Api`] trait over [`{{Name}}Store`].
//! Handlers only translate; I/O lives in [`crate::store`], and errors become problems in one
//! place ([`crate::error`]).

use shopmesh_identity::Principal;
use shopmesh_openapi::runtime::Problem;
use shopmesh_openapi::{{name}}::{Item, NewItem, {{Name}}Api};

use crate::error::{{Name}}Error;
use crate::store::{{Name}}Store;

/// The service behind the contract's routes.
pub struct {{Name}}Service {
    store: {{Name}}Store,
}

impl {{Name}}Service {
    /// Serves the contract from `store`.
    pub fn new(store: {{Name}}Store) -> Self {
        Self { store }
    }
}

#[async_trait::async_trait]
impl {{Name}}Api for {{Name}}Service {
    async fn create_item(&self, _principal: Principal, body: NewItem) -> Result<Item, Problem> {
        Ok(self.store.create(&body.name).await?)
    }

    async fn get_item(&self, _principal: Principal, id: i64) -> Result<Item, Problem> {
        self.store
            .get(id)
            .await?
            .ok_or_else(|| {{Name}}Error::NotFound(id).into())
    }
}
