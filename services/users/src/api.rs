//! The users REST API: implements the generated [`UsersApi`] trait over [`UserStore`].

use poem_openapi::payload::Json;
use shopmesh_openapi::users::{
    CreateUserResponse, GetUserResponse, UpdateUserResponse, User, UserInput, UsersApi,
};

use crate::domain;
use crate::error::UsersError;
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
    async fn create_user(&self, body: UserInput) -> CreateUserResponse {
        let result = match domain::validate(&body.name, &body.email) {
            Ok(fields) => self.store.create(&fields).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(u) => CreateUserResponse::Created(Json(to_contract(u))),
            Err(e @ UsersError::DuplicateEmail(_)) => {
                CreateUserResponse::Conflict(Json(e.problem()))
            }
            Err(e @ UsersError::Unavailable(_)) => {
                CreateUserResponse::ServiceUnavailable(Json(e.problem()))
            }
            Err(e) => CreateUserResponse::BadRequest(Json(e.problem())),
        }
    }

    async fn get_user(&self, id: i64) -> GetUserResponse {
        match self.store.get(id).await {
            Ok(u) => GetUserResponse::Ok(Json(to_contract(u))),
            Err(e @ UsersError::NotFound(_)) => GetUserResponse::NotFound(Json(e.problem())),
            Err(e @ UsersError::Unavailable(_)) => {
                GetUserResponse::ServiceUnavailable(Json(e.problem()))
            }
            Err(e) => GetUserResponse::BadRequest(Json(e.problem())),
        }
    }

    async fn update_user(&self, id: i64, body: UserInput) -> UpdateUserResponse {
        let result = match domain::validate(&body.name, &body.email) {
            Ok(fields) => self.store.update(id, &fields).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(u) => UpdateUserResponse::Ok(Json(to_contract(u))),
            Err(e @ UsersError::NotFound(_)) => UpdateUserResponse::NotFound(Json(e.problem())),
            Err(e @ UsersError::DuplicateEmail(_)) => {
                UpdateUserResponse::Conflict(Json(e.problem()))
            }
            Err(e @ UsersError::Unavailable(_)) => {
                UpdateUserResponse::ServiceUnavailable(Json(e.problem()))
            }
            Err(e) => UpdateUserResponse::BadRequest(Json(e.problem())),
        }
    }
}
