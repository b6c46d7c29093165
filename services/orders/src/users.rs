//! Confirms that a user exists, asking the users service on the caller's behalf.

use shopmesh_identity::Principal;
use shopmesh_openapi::runtime::ClientError;
use shopmesh_openapi::users::UsersClient;

use crate::error::OrdersError;

/// The users service, as orders sees it.
#[derive(Clone)]
pub struct UserDirectory {
    client: UsersClient,
}

impl UserDirectory {
    /// Asks the users service at `base_url`.
    pub fn new(base_url: &str) -> Self {
        Self {
            client: UsersClient::new(base_url).with_request_hook(crate::traced()),
        }
    }

    /// `Ok` when user `id` exists, read with the caller's own token (so the users service
    /// applies its own rules too).
    pub async fn confirm(&self, caller: &Principal, id: i64) -> Result<(), OrdersError> {
        match self.client.get_user(&caller.token, id).await {
            Ok(_) => Ok(()),
            Err(ClientError::Problem(p)) if p.status() == 404 => Err(OrdersError::UnknownUser(id)),
            Err(e) => Err(OrdersError::UsersUnavailable(e.to_string())),
        }
    }
}
