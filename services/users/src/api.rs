//! The users REST API: implements the generated [`UsersApi`] trait over [`UserStore`]; errors
//! become problems in one place ([`crate::error`]).

use shopmesh_openapi::runtime::Problem;
use shopmesh_openapi::users::{User, UserInput, UsersApi};

use crate::domain;
use crate::store::{UserRecord, UserStore};

/// The service behind `/users`.
pub struct UsersService {
    store: UserStore,
}

impl UsersService {
    /// Serves users from `store`.
    pub fn new(store: UserStore) -> Self {
        Self { store }
    }
}

/// A stored user in its contract form.
pub fn to_contract(u: UserRecord) -> User {
    User {
        id: u.id,
        name: u.name,
        email: u.email,
        created_at: u.created_at,
    }
}

#[async_trait::async_trait]
impl UsersApi for UsersService {
    async fn create_user(&self, body: UserInput) -> Result<User, Problem> {
        let fields = domain::validate(&body.name, &body.email)?;
        Ok(to_contract(self.store.create(&fields).await?))
    }

    async fn get_user(&self, id: i64) -> Result<User, Problem> {
        Ok(to_contract(self.store.get(id).await?))
    }

    async fn update_user(&self, id: i64, body: UserInput) -> Result<User, Problem> {
        let fields = domain::validate(&body.name, &body.email)?;
        Ok(to_contract(self.store.update(id, &fields).await?))
    }
}
