//! GraphQL subscriptions over WebSocket at `/graphql`: the `graphql-transport-ws` protocol
//! (the `graphql-ws` library's) and the legacy `graphql-ws` one (Apollo's
//! subscriptions-transport-ws), served here rather than by async-graphql's own loop so that the
//! close codes are the protocol's and every buffer is bounded:
//!
//! | close | when |
//! |---|---|
//! | 4400 | a message that is not JSON, not an object with a known `type`, or binary |
//! | 4401 | `subscribe` before `connection_ack` |
//! | 4403 | no valid access token in the `connection_init` payload, or it expired while open |
//! | 4408 | no `connection_init` within `SUBSCRIPTION_INIT_TIMEOUT_MS` |
//! | 4409 | `subscribe` with the id of a running subscription |
//! | 4429 | a second `connection_init`, more than `SUBSCRIPTION_CONNECTIONS_PER_USER` sockets, or a user over their rate limit |
//! | 1008 | the client reads too slowly: `SUBSCRIPTION_SEND_BUFFER` messages wait unsent |
//! | 1009 | a message larger than twice `GRAPHQL_MAX_QUERY_BYTES` (1002 for another WebSocket breach) |
//! | 1001 | the gateway is shutting down |
//!
//! Opening a socket and starting a subscription each count as one request against the user's
//! rate limit (`RATE_LIMIT_MAX_USER`/`_ADMIN`): a subscription over it is refused with
//! `RATE_LIMITED`. Only subscriptions run here; queries and mutations go over HTTP, where the rate limit and the
//! per-request budgets apply.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_graphql::parser::types::{DocumentOperations, OperationType};
use futures::{SinkExt as _, StreamExt as _};
use poem::web::websocket::{CloseCode, Message, WebSocket, WebSocketConfig, WebSocketStream};
use poem::{IntoResponse, Response, handler, web::Data};
use serde_json::{Value, json};
use shopmesh_common::shutdown::Shutdown;
use shopmesh_identity::{Principal, TokenVerifier};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;

use crate::config::LiveConfig;
use crate::persisted::PersistedQueries;
use crate::ratelimit::{ClientRateLimiter, Decision, RateKey};

/// The subprotocols served, in order of preference.
pub const PROTOCOLS: [&str; 2] = ["graphql-transport-ws", "graphql-ws"];

/// One of the two wire protocols; they differ in message names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    /// `graphql-transport-ws`.
    Transport,
    /// Legacy `graphql-ws` (subscriptions-transport-ws).
    Legacy,
}

impl Protocol {
    /// The first protocol the client offers that is served (`Sec-WebSocket-Protocol`).
    fn offered(header: Option<&str>) -> Option<Self> {
        header?
            .split(',')
            .map(str::trim)
            .find_map(|offered| match offered {
                "graphql-transport-ws" => Some(Self::Transport),
                "graphql-ws" => Some(Self::Legacy),
                _ => None,
            })
    }

    fn next(self) -> &'static str {
        match self {
            Self::Transport => "next",
            Self::Legacy => "data",
        }
    }
}

/// What the sockets of one gateway share: who holds how many, and the rate limiter that
/// counts every socket opened and every subscription started as a request of its user.
#[derive(Clone)]
pub struct Sockets {
    config: LiveConfig,
    per_user: Arc<Mutex<HashMap<i64, usize>>>,
    limiter: Arc<ClientRateLimiter>,
    shutdown: Shutdown,
}

impl Sockets {
    /// Sockets limited by `config` and `limiter`, all closed (1001) when `shutdown` triggers.
    pub fn new(config: LiveConfig, limiter: Arc<ClientRateLimiter>, shutdown: Shutdown) -> Self {
        Self {
            config,
            per_user: Arc::default(),
            limiter,
            shutdown,
        }
    }

    /// Counts one request of `caller` against their rate limit; why not, when over it.
    async fn charge(&self, caller: &Principal) -> Result<(), Value> {
        match self.limiter.check(RateKey::of(caller)).await {
            Decision::Allow(_) => Ok(()),
            Decision::Reject { retry_after_secs } => Err(json!({
                "message": format!("too many requests; retry after {retry_after_secs} s"),
                "extensions": {"code": "RATE_LIMITED", "retryAfter": retry_after_secs},
            })),
            Decision::Unavailable => Err(json!({
                "message": "the rate limit cannot be checked; retry later",
                "extensions": {"code": "DOWNSTREAM_UNAVAILABLE"},
            })),
        }
    }

    /// Closes every socket (1001).
    pub fn close_all(&self) {
        self.shutdown.trigger();
    }

    /// Counts a socket of `user`, unless they hold as many as they may.
    fn admit(&self, user: i64) -> Option<SocketSlot> {
        let mut held = self.per_user.lock().ok()?;
        let count = held.entry(user).or_default();
        if *count >= self.config.connections_per_user {
            return None;
        }
        *count += 1;
        Some(SocketSlot {
            per_user: self.per_user.clone(),
            user,
        })
    }
}

/// One admitted socket; dropping it frees the user's slot.
struct SocketSlot {
    per_user: Arc<Mutex<HashMap<i64, usize>>>,
    user: i64,
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        let Ok(mut held) = self.per_user.lock() else {
            return;
        };
        if let Some(count) = held.get_mut(&self.user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                held.remove(&self.user);
            }
        }
    }
}

/// `GET /graphql` with `Upgrade: websocket`.
#[handler]
pub async fn upgrade(
    req: &poem::Request,
    ws: WebSocket,
    schema: Data<&shopmesh_graphql::Schema>,
    verifier: Data<&TokenVerifier>,
    sockets: Data<&Sockets>,
    persisted: Data<&Arc<PersistedQueries>>,
    config: Data<&Arc<crate::config::GatewayConfig>>,
) -> Response {
    let offered = req
        .headers()
        .get(poem::http::header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok());
    let Some(protocol) = Protocol::offered(offered) else {
        return poem::http::StatusCode::BAD_REQUEST
            .with_body(format!(
                "a GraphQL WebSocket needs the subprotocol graphql-transport-ws (or the legacy graphql-ws) in Sec-WebSocket-Protocol; offered: {}",
                offered.unwrap_or("none")
            ))
            .into_response();
    };
    let connection = Connection {
        schema: schema.0.clone(),
        persisted: persisted.0.clone(),
        verifier: verifier.0.clone(),
        sockets: sockets.0.clone(),
        protocol,
    };
    ws.protocols(PROTOCOLS)
        .config(socket_config(config.graphql.max_query_bytes))
        .on_upgrade(move |socket| connection.serve(socket))
        .into_response()
}

/// The socket's buffers and bounds. WebSocket's defaults (128 KiB to read and 128 KiB to write
/// per socket, messages up to 64 MiB) cost an idle subscriber ~145 KiB of the gateway's memory
/// (measured by the bench) and let one message take 64 MiB. A message carries one GraphQL
/// request, so twice the query limit leaves room for its variables.
fn socket_config(max_query_bytes: usize) -> WebSocketConfig {
    let largest = max_query_bytes.saturating_mul(2).max(16 * 1024);
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_message_size(Some(largest))
        .max_frame_size(Some(largest))
}

/// Why a socket is closed, as the protocol says it.
struct Close(u16, String);

impl Close {
    fn new(code: u16, reason: impl Into<String>) -> Self {
        Self(code, reason.into())
    }

    /// The close for a socket whose next message could not be read: none when the connection
    /// itself failed, 1009 for a message over the socket's bound, 1002 for another breach of
    /// the protocol. poem hands WebSocket errors over as text only, so the text tells them
    /// apart (`live.rs` tests the 1009).
    fn after_read_error(error: &std::io::Error) -> Option<Self> {
        if error.kind() != std::io::ErrorKind::Other {
            return None;
        }
        let reason = error.to_string();
        let code = if reason.contains("too long") {
            1009
        } else {
            1002
        };
        Some(Self::new(code, reason))
    }
}

/// One socket's state.
struct Connection {
    schema: shopmesh_graphql::Schema,
    persisted: Arc<PersistedQueries>,
    verifier: TokenVerifier,
    sockets: Sockets,
    protocol: Protocol,
}

impl Connection {
    async fn serve(self, socket: WebSocketStream) {
        let (mut sink, mut source) = socket.split();
        let close = self.run(&mut sink, &mut source).await;
        if let Some(Close(code, reason)) = close {
            metrics::counter!("gateway_subscription_closes_total", "code" => code.to_string())
                .increment(1);
            let _ = sink
                .send(Message::Close(Some((CloseCode::from(code), reason))))
                .await;
        }
        let _ = sink.close().await;
    }

    /// Runs the socket until it ends; the close to send, if the server ends it.
    async fn run(
        &self,
        sink: &mut futures::stream::SplitSink<WebSocketStream, Message>,
        source: &mut futures::stream::SplitStream<WebSocketStream>,
    ) -> Option<Close> {
        let config = &self.sockets.config;
        let first = match tokio::time::timeout(config.init_timeout, source.next()).await {
            Err(_) => return Some(Close::new(4408, "Connection initialisation timeout")),
            Ok(None) => return None,
            Ok(Some(Err(error))) => return Close::after_read_error(&error),
            Ok(Some(Ok(message))) => message,
        };
        let init = match ClientMessage::read(&first) {
            Ok(ClientMessage::Init(payload)) => payload,
            Ok(ClientMessage::Subscribe { .. }) => return Some(Close::new(4401, "Unauthorized")),
            Ok(ClientMessage::Closed) => return None,
            Ok(_) => return Some(Close::new(4400, "expected connection_init")),
            Err(close) => return Some(close),
        };
        let principal = match self.authenticate(&init).await {
            Ok(principal) => principal,
            Err(reason) => return Some(Close::new(4403, format!("Forbidden: {reason}"))),
        };
        if let Err(refused) = self.sockets.charge(&principal).await {
            let reason = refused["message"]
                .as_str()
                .unwrap_or("rate limited")
                .to_owned();
            return Some(Close::new(4429, reason));
        }
        let Some(_slot) = self.sockets.admit(principal.user_id) else {
            return Some(Close::new(
                4429,
                format!(
                    "this user already holds {} subscription sockets",
                    config.connections_per_user
                ),
            ));
        };
        if sink
            .send(Message::text(json!({"type": "connection_ack"}).to_string()))
            .await
            .is_err()
        {
            return None;
        }
        self.subscriptions(principal, sink, source).await
    }

    /// The access token in the `connection_init` payload (`Authorization: Bearer ...`, any
    /// case, or `token`), verified.
    async fn authenticate(&self, payload: &Value) -> Result<Principal, String> {
        let token = payload
            .as_object()
            .and_then(|fields| {
                fields.iter().find_map(|(k, v)| {
                    let v = v.as_str()?;
                    if k.eq_ignore_ascii_case("authorization") {
                        v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer "))
                    } else if k == "token" {
                        Some(v)
                    } else {
                        None
                    }
                })
            })
            .ok_or("no access token in the connection_init payload (send {\"Authorization\": \"Bearer <token>\"})")?;
        self.verifier
            .verify(token.trim())
            .await
            .map_err(|e| e.to_string())
    }

    /// Serves `principal`'s subscriptions until the socket ends.
    async fn subscriptions(
        &self,
        principal: Principal,
        sink: &mut futures::stream::SplitSink<WebSocketStream, Message>,
        source: &mut futures::stream::SplitStream<WebSocketStream>,
    ) -> Option<Close> {
        let config = &self.sockets.config;
        let (out, mut outgoing) = mpsc::channel::<String>(config.send_buffer);
        let slow = Arc::new(Notify::new());
        let mut running: HashMap<String, tokio::task::AbortHandle> = HashMap::new();
        let mut tasks: JoinSet<String> = JoinSet::new();
        let expiry = token_expiry(&principal);
        tokio::pin!(expiry);
        loop {
            tokio::select! {
                incoming = source.next() => {
                    let message = match incoming {
                        Some(Ok(message)) => message,
                        Some(Err(error)) => return Close::after_read_error(&error),
                        None => return None,
                    };
                    match ClientMessage::read(&message) {
                        Ok(ClientMessage::Subscribe { id, payload }) => {
                            if running.contains_key(&id) {
                                return Some(Close::new(4409, format!("Subscriber for {id} already exists")));
                            }
                            if let Err(refused) = self.sockets.charge(&principal).await {
                                if out.try_send(self.error(&id, json!([refused]))).is_err() { slow.notify_one(); }
                                continue;
                            }
                            if running.len() >= config.per_connection {
                                let refused = self.error(&id, json!([{
                                    "message": format!("a socket may run {} subscriptions at once", config.per_connection),
                                    "extensions": {"code": "TOO_MANY_REQUESTS"},
                                }]));
                                if out.try_send(refused).is_err() { slow.notify_one(); }
                                continue;
                            }
                            let job = Subscription {
                                schema: self.schema.clone(),
                                persisted: self.persisted.clone(),
                                principal: principal.clone(),
                                protocol: self.protocol,
                                id: id.clone(),
                                out: out.clone(),
                                slow: slow.clone(),
                            };
                            running.insert(id, tasks.spawn(job.run(payload)));
                        }
                        Ok(ClientMessage::Complete(id)) => {
                            if let Some(task) = running.remove(&id) { task.abort(); }
                        }
                        Ok(ClientMessage::Ping) => {
                            if out.try_send(json!({"type": "pong"}).to_string()).is_err() { slow.notify_one(); }
                        }
                        Ok(ClientMessage::Pong) => {}
                        Ok(ClientMessage::Init(_)) => {
                            return Some(Close::new(4429, "Too many initialisation requests"));
                        }
                        Ok(ClientMessage::Terminate) => return Some(Close::new(1000, "terminated")),
                        Ok(ClientMessage::Closed) => return None,
                        Err(close) => return Some(close),
                    }
                }
                Some(text) = outgoing.recv() => {
                    if sink.send(Message::text(text)).await.is_err() { return None; }
                }
                Some(Ok(id)) = tasks.join_next() => { running.remove(&id); }
                () = slow.notified() => {
                    return Some(Close::new(1008, format!(
                        "too slow: {} messages waited unsent", config.send_buffer
                    )));
                }
                () = &mut expiry => {
                    return Some(Close::new(4403, "Forbidden: the access token expired; connect again with a fresh one"));
                }
                () = self.sockets.shutdown.wait() => {
                    return Some(Close::new(1001, "the gateway is shutting down; reconnect"));
                }
            }
        }
    }

    fn error(&self, id: &str, errors: Value) -> String {
        error_message(self.protocol, id, errors)
    }
}

fn error_message(protocol: Protocol, id: &str, errors: Value) -> String {
    // The legacy protocol's `error` carries one error object.
    let payload = match protocol {
        Protocol::Transport => errors,
        Protocol::Legacy => errors.get(0).cloned().unwrap_or(Value::Null),
    };
    json!({"type": "error", "id": id, "payload": payload}).to_string()
}

/// Resolves when `principal`'s token expires (never, without an `exp`).
async fn token_expiry(principal: &Principal) {
    let Some(exp) = principal.token.expires_at() else {
        return std::future::pending().await;
    };
    let left = exp - chrono::Utc::now().timestamp();
    tokio::time::sleep(Duration::from_secs(u64::try_from(left).unwrap_or(0))).await;
}

/// A message from the client, in either protocol.
enum ClientMessage {
    Init(Value),
    Subscribe { id: String, payload: Value },
    Complete(String),
    Ping,
    Pong,
    Terminate,
    Closed,
}

impl ClientMessage {
    fn read(message: &Message) -> Result<Self, Close> {
        let text = match message {
            Message::Text(text) => text,
            Message::Close(_) => return Ok(Self::Closed),
            // Transport-level pings are answered by the WebSocket layer.
            Message::Ping(_) | Message::Pong(_) => return Ok(Self::Pong),
            Message::Binary(_) => return Err(Close::new(4400, "binary messages are not allowed")),
        };
        let bad = |why: &str| Close::new(4400, why.to_owned());
        let value: Value = serde_json::from_str(text).map_err(|_| bad("invalid JSON"))?;
        let kind = value["type"]
            .as_str()
            .ok_or_else(|| bad("a message needs a type"))?;
        let id = || {
            value["id"]
                .as_str()
                .filter(|id| !id.is_empty() && id.len() <= 128)
                .map(str::to_owned)
                .ok_or_else(|| bad("a message of this type needs an id (1 to 128 characters)"))
        };
        Ok(match kind {
            "connection_init" => Self::Init(value["payload"].clone()),
            "subscribe" | "start" => Self::Subscribe {
                id: id()?,
                payload: value["payload"].clone(),
            },
            "complete" | "stop" => Self::Complete(id()?),
            "ping" => Self::Ping,
            "pong" => Self::Pong,
            "connection_terminate" => Self::Terminate,
            other => return Err(bad(&format!("unknown message type {other:?}"))),
        })
    }
}

/// One running subscription: it writes to its socket's bounded queue and never waits on it.
struct Subscription {
    schema: shopmesh_graphql::Schema,
    persisted: Arc<PersistedQueries>,
    principal: Principal,
    protocol: Protocol,
    id: String,
    out: mpsc::Sender<String>,
    slow: Arc<Notify>,
}

impl Subscription {
    /// Runs the operation in `payload`; answers its id when it ends.
    async fn run(self, payload: Value) -> String {
        match self.request(payload) {
            Ok(request) => self.stream(request.data(self.principal.clone())).await,
            Err((message, code)) => {
                self.send(self.failed(&message, code));
            }
        }
        self.id
    }

    /// The subscription `payload` asks for, or why it does not run.
    fn request(&self, payload: Value) -> Result<async_graphql::Request, (String, &'static str)> {
        let mut request =
            serde_json::from_value::<async_graphql::Request>(payload).map_err(|e| {
                let message = format!("the subscribe payload is not a GraphQL request: {e}");
                (message, "BAD_REQUEST")
            })?;
        self.persisted.resolve(&mut request).map_err(|refused| {
            let (message, code) = refused.message_and_code();
            (message.to_owned(), code)
        })?;
        if !selects_a_subscription(&request) {
            let message = "only subscriptions are served over WebSocket; send queries and \
                           mutations over HTTP";
            return Err((message.to_owned(), "BAD_REQUEST"));
        }
        Ok(request)
    }

    async fn stream(&self, request: async_graphql::Request) {
        let mut responses = self.schema.execute_stream(request);
        let mut first = true;
        while let Some(response) = responses.next().await {
            // Errors before anything ran (validation, authorization) are the operation's
            // `error`; later ones travel inside a `next` payload.
            if first && response.data == async_graphql::Value::Null && !response.errors.is_empty() {
                let errors = serde_json::to_value(&response.errors).unwrap_or(Value::Null);
                self.send(error_message(self.protocol, &self.id, errors));
                return;
            }
            first = false;
            let payload = serde_json::to_value(&response).unwrap_or(Value::Null);
            if !self.send(
                json!({"type": self.protocol.next(), "id": self.id, "payload": payload})
                    .to_string(),
            ) {
                return;
            }
        }
        self.send(json!({"type": "complete", "id": self.id}).to_string());
    }

    fn failed(&self, message: &str, code: &str) -> String {
        error_message(
            self.protocol,
            &self.id,
            json!([{"message": message, "extensions": {"code": code}}]),
        )
    }

    /// Queues `text` for the socket; a full queue marks the client too slow.
    fn send(&self, text: String) -> bool {
        match self.out.try_send(text) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.slow.notify_one();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// Whether `request` runs a subscription: the operation it names, or its only one.
fn selects_a_subscription(request: &async_graphql::Request) -> bool {
    let Ok(document) = async_graphql::parser::parse_query(&request.query) else {
        // Left to the executor, which reports the syntax error.
        return true;
    };
    match (&document.operations, request.operation_name.as_deref()) {
        (DocumentOperations::Single(op), _) => op.node.ty == OperationType::Subscription,
        (DocumentOperations::Multiple(ops), Some(name)) => ops
            .get(name)
            .is_none_or(|op| op.node.ty == OperationType::Subscription),
        (DocumentOperations::Multiple(_), None) => true,
    }
}
