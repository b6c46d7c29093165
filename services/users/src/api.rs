//! The users REST API: implements the generated [`UsersApi`] trait over [`UserStore`] and
//! [`Accounts`]; errors become problems in one place ([`crate::error`]).

use poem_openapi::types::ParseFromJSON;
use shopmesh_common::idempotency::{ANONYMOUS, IdempotencyKeys};
use shopmesh_identity::Principal;
use shopmesh_openapi::runtime::{NoContent, Problem};
use shopmesh_openapi::users::{
    ClientCredentials, Credentials, JwkSet, NewUser, RefreshRequest, Role, ServiceTokenResponse,
    TokenResponse, User, UserInput, UserName, UsersApi,
};

use crate::accounts::{Accounts, Tokens};
use crate::domain;
use crate::error::UsersError;
use crate::store::{UserRecord, UserStore};

/// The service behind `/users` and `/auth`.
pub struct UsersService {
    store: UserStore,
    accounts: Accounts,
    keys: IdempotencyKeys,
}

impl UsersService {
    /// Serves users from `store`, accounts and tokens from `accounts`.
    pub fn new(store: UserStore, accounts: Accounts) -> Self {
        let keys = IdempotencyKeys::new(store.pool().clone());
        Self {
            store,
            accounts,
            keys,
        }
    }
}

/// A stored user in its contract form.
pub fn to_contract(u: UserRecord) -> User {
    User {
        id: u.id,
        name: u.name,
        email: u.email,
        role: Role::parse(u.role.as_str()).unwrap_or(Role::User),
        created_at: u.created_at,
    }
}

fn token_response(tokens: Tokens) -> TokenResponse {
    TokenResponse {
        access_token: tokens.access.token,
        token_type: "Bearer".to_owned(),
        expires_in: i32::try_from(tokens.access.expires_in).unwrap_or(i32::MAX),
        refresh_token: tokens.refresh,
    }
}

#[async_trait::async_trait]
impl UsersApi for UsersService {
    async fn create_user(
        &self,
        idempotency_key: Option<String>,
        body: NewUser,
    ) -> Result<User, Problem> {
        let fields = &domain::validate(&body.name, &body.email)?;
        // The password stays out of the stored fingerprint, even hashed.
        let request = format!("createUser {}\n{}", fields.name, fields.email);
        let user = self
            .keys
            .run_once(ANONYMOUS, idempotency_key, &request, |held| async move {
                let user = self
                    .accounts
                    .sign_up(fields, body.password, held.as_ref())
                    .await?;
                Ok::<_, UsersError>(to_contract(user))
            })
            .await?;
        Ok(user)
    }

    async fn get_user(&self, principal: Principal, id: i64) -> Result<User, Problem> {
        principal.check_access(id).map_err(UsersError::from)?;
        Ok(to_contract(self.store.get(id).await?))
    }

    async fn get_user_name(&self, _principal: Principal, id: i64) -> Result<UserName, Problem> {
        let user = self.store.get(id).await?;
        Ok(UserName {
            id: user.id,
            name: user.name,
        })
    }

    async fn update_user(
        &self,
        principal: Principal,
        id: i64,
        body: UserInput,
    ) -> Result<User, Problem> {
        principal.check_access(id).map_err(UsersError::from)?;
        let fields = domain::validate(&body.name, &body.email)?;
        Ok(to_contract(self.store.update(id, &fields).await?))
    }

    async fn issue_token(&self, body: Credentials) -> Result<TokenResponse, Problem> {
        Ok(token_response(
            self.accounts.log_in(&body.email, body.password).await?,
        ))
    }

    async fn issue_service_token(
        &self,
        body: ClientCredentials,
    ) -> Result<ServiceTokenResponse, Problem> {
        let access = self
            .accounts
            .issue_service_token(&body.client_id, &body.client_secret)?;
        Ok(ServiceTokenResponse {
            access_token: access.token,
            token_type: "Bearer".to_owned(),
            expires_in: i32::try_from(access.expires_in).unwrap_or(i32::MAX),
        })
    }

    async fn refresh_token(&self, body: RefreshRequest) -> Result<TokenResponse, Problem> {
        Ok(token_response(
            self.accounts.refresh(&body.refresh_token).await?,
        ))
    }

    async fn logout(&self, body: RefreshRequest) -> Result<NoContent, Problem> {
        self.accounts.log_out(&body.refresh_token).await?;
        Ok(NoContent)
    }

    async fn get_jwks(&self) -> Result<JwkSet, Problem> {
        // The contract's JwkSet read from the library's own JSON, so the two cannot drift.
        let json = serde_json::to_value(self.accounts.issuer().keys().jwks())
            .map_err(|e| Problem::new(500, e.to_string()))?;
        JwkSet::parse_from_json(Some(json)).map_err(|e| Problem::new(500, e.into_message()))
    }
}
