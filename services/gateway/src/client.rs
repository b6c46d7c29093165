//! The client behind the request being served, for the calls the gateway makes on its behalf:
//! its address travels to the users service as `X-Forwarded-For` (so failed log-ins are counted
//! per client, not per gateway), and a downstream "retry after" comes back to it as the
//! `Retry-After` its 429 must carry.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use poem::http::StatusCode;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response};

use crate::ratelimit::ClientRateLimiter;

tokio::task_local! {
    static CLIENT: Arc<ClientContext>;
}

/// One request's client.
struct ClientContext {
    address: Option<IpAddr>,
    retry_after: AtomicU64,
}

/// The address of the client whose request the current task serves.
pub fn address() -> Option<IpAddr> {
    CLIENT.try_with(|c| c.address).ok().flatten()
}

/// Records that a downstream service asked the client to wait `secs` seconds.
pub fn note_retry_after(secs: u64) {
    let _ = CLIENT.try_with(|c| c.retry_after.fetch_max(secs, Ordering::Relaxed));
}

/// Middleware scoping each request's [`ClientContext`]; the client address is the rate
/// limiter's (peer, or trusted `X-Forwarded-For`).
pub struct ClientScope(pub Arc<ClientRateLimiter>);

impl<E: Endpoint> Middleware<E> for ClientScope {
    type Output = ClientScopeEndpoint<E>;

    fn transform(&self, inner: E) -> Self::Output {
        ClientScopeEndpoint {
            inner,
            limiter: self.0.clone(),
        }
    }
}

/// Endpoint produced by [`ClientScope`].
pub struct ClientScopeEndpoint<E> {
    inner: E,
    limiter: Arc<ClientRateLimiter>,
}

impl<E: Endpoint> Endpoint for ClientScopeEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let context = Arc::new(ClientContext {
            address: self.limiter.client_of(&req),
            retry_after: AtomicU64::new(0),
        });
        let inner = async { self.inner.call(req).await.map(IntoResponse::into_response) };
        let mut response = CLIENT.scope(context.clone(), inner).await?;
        let waited = context.retry_after.load(Ordering::Relaxed);
        if response.status() == StatusCode::TOO_MANY_REQUESTS
            && !response.headers().contains_key("retry-after")
        {
            response
                .headers_mut()
                .insert("retry-after", waited.max(1).into());
        }
        Ok(response)
    }
}
