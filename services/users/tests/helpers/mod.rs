//! The users service's test fixture: one `Harness` per test, started from the stack's
//! configuration with overrides, with its own database and cache-key namespace.
#![allow(dead_code)]

use shopmesh_identity::{AccessToken, Role};
use shopmesh_openapi::runtime::ClientError;
use shopmesh_openapi::runtime::Email;
use shopmesh_openapi::users::{Credentials, NewUser, TokenResponse, UserInput, UsersClient};
use shopmesh_testkit::{
    Running, Service, Stack, build_service, redis_url, remove_names, test_stack, token,
};
use shopmesh_users::Application;
use shopmesh_users::store::UserStore;

pub struct Harness {
    pub stack: Stack,
    pub store: UserStore,
    pub server: Running,
    pub client: UsersClient,
    /// The seeded admin's token (id 4, after the three demo shoppers).
    pub admin: AccessToken,
}

impl Harness {
    pub async fn start() -> Self {
        Self::start_with_redis(&redis_url()).await
    }

    pub async fn start_with_redis(redis: &str) -> Self {
        Self::start_with(
            test_stack()
                .set_for(Service::Users, "REDIS_URL", redis)
                .set_for(Service::Users, "REDIS_TIMEOUT_MS", "300"),
        )
        .await
    }

    pub async fn start_with(stack: Stack) -> Self {
        let stack = stack.set_for(Service::Users, "DB_POOL_SIZE", "5");
        let app =
            build_service::<Application>(&stack.env_for(Service::Users).unwrap(), |_| {}).await;
        let store = app.store().clone();
        let server = Running::start(app).await;
        let client = UsersClient::new(server.base_url.clone());
        let admin = token(&stack, 4, Role::Admin);
        Self {
            stack,
            store,
            server,
            client,
            admin,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.base_url)
    }

    pub async fn stop(self) {
        for id in 1..=10 {
            self.store.cache().delete(&self.store.cache_key(id)).await;
        }
        self.server.stop().await;
        self.store.pool().close().await;
        remove_names(&self.stack.names, 0).await;
    }

    pub async fn user_count(&self) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(self.store.pool())
            .await
            .unwrap()
    }
}

pub fn input(name: &str, email: &str) -> UserInput {
    UserInput {
        name: name.to_owned(),
        email: Email(email.to_owned()),
    }
}

pub fn sign_up(name: &str, email: &str) -> NewUser {
    NewUser {
        name: name.to_owned(),
        email: Email(email.to_owned()),
        password: "correct horse battery".to_owned(),
    }
}

pub async fn log_in(
    h: &Harness,
    email: &str,
    password: &str,
) -> Result<TokenResponse, ClientError> {
    h.client
        .issue_token(&Credentials {
            email: email.to_owned(),
            password: password.to_owned(),
        })
        .await
}

pub fn status(result: Result<impl std::fmt::Debug, ClientError>) -> u16 {
    match result {
        Err(ClientError::Problem(p)) => p.status(),
        other => panic!("expected a problem, got {other:?}"),
    }
}
