//! The gRPC API: implements the generated `NotificationService` trait over a
//! [`NotificationStore`].

use std::sync::Arc;
use std::time::Duration;

use shopmesh_common::shutdown::Shutdown;
use shopmesh_proto::guard::caller;
use shopmesh_proto::shopmesh::notification::v1 as pb;
use tonic::{Request, Response, Status};

use crate::domain::{self, NotificationStatus, PageToken};
use crate::redrive::DeadLetters;
use crate::store::{NotificationStore, StoredNotification};

/// The service behind `shopmesh.notification.v1.NotificationService`.
pub struct NotificationGrpc {
    store: Arc<dyn NotificationStore>,
    dead_letters: DeadLetters,
    watch_poll: Duration,
    shutdown: Shutdown,
}

impl NotificationGrpc {
    /// Serves notifications from `store` and the admin's view of `dead_letters`; watch streams
    /// read the store every `watch_poll` and end at `shutdown`.
    pub fn new(
        store: Arc<dyn NotificationStore>,
        dead_letters: DeadLetters,
        watch_poll: Duration,
        shutdown: Shutdown,
    ) -> Self {
        Self {
            store,
            dead_letters,
            watch_poll,
            shutdown,
        }
    }
}

/// The broker failing under an admin's dead-letter call.
fn broker_unavailable(e: lapin::Error) -> Status {
    tracing::warn!(error = %e, "dead-letter queue unavailable");
    Status::unavailable("the message broker is unavailable; retry later")
}

/// Notifications a watch stream holds for a slow client before it waits for it (that client's
/// stream alone waits).
const WATCH_BUFFER: usize = 64;

/// Notifications read per page of a look; a look pages back until it meets one it has sent.
const WATCH_PAGE: i64 = 50;

/// One client's watch: new notifications of `user_id`, read every `poll`.
struct Watch {
    store: Arc<dyn NotificationStore>,
    reader: i64,
    user_id: i64,
    poll: Duration,
    shutdown: Shutdown,
    sent: tokio::sync::mpsc::Sender<Result<pb::WatchNotificationsResponse, Status>>,
}

impl Watch {
    /// The notifications stored since those in `seen`, newest first (the newest page only on
    /// the `first` look).
    async fn look(
        &self,
        seen: &std::collections::VecDeque<String>,
        first: bool,
    ) -> Result<Vec<StoredNotification>, crate::error::NotificationsError> {
        let mut fresh = Vec::new();
        let mut after = None;
        loop {
            let (page, next) = self
                .store
                .by_user(self.reader, self.user_id, WATCH_PAGE, after)
                .await?;
            for n in page {
                if seen.contains(&n.id) {
                    return Ok(fresh);
                }
                fresh.push(n);
            }
            match next {
                Some(token) if !first => after = Some(token),
                _ => return Ok(fresh),
            }
        }
    }

    /// Sends what is stored after the first look until the client goes away, the store fails
    /// or the service stops. A client that goes away ends this at once.
    async fn run(self) {
        metrics::gauge!("notifications_watch_streams").increment(1.0);
        let mut seen: std::collections::VecDeque<String> = std::collections::VecDeque::new();
        let mut first = true;
        loop {
            let fresh = match self.look(&seen, first).await {
                Ok(fresh) => fresh,
                Err(e) => {
                    let _ = self.sent.send(Err(e.into())).await;
                    break;
                }
            };
            let mut gone = false;
            // Oldest first; the first look only learns what is already stored.
            for n in fresh.into_iter().rev() {
                seen.push_back(n.id.clone());
                if seen.len() > 4 * WATCH_PAGE as usize {
                    seen.pop_front();
                }
                let next = pb::WatchNotificationsResponse {
                    notification: Some(to_contract(n)),
                };
                if !first && self.sent.send(Ok(next)).await.is_err() {
                    gone = true;
                    break;
                }
            }
            first = false;
            if gone {
                break;
            }
            tokio::select! {
                () = tokio::time::sleep(self.poll) => {}
                () = self.sent.closed() => break,
                () = self.shutdown.wait() => break,
            }
        }
        metrics::gauge!("notifications_watch_streams").decrement(1.0);
    }
}

/// Converts a stored notification to its contract form.
pub fn to_contract(n: StoredNotification) -> pb::Notification {
    let status = match n.status {
        NotificationStatus::Sent => pb::NotificationStatus::Sent,
        NotificationStatus::Pending => pb::NotificationStatus::Pending,
        NotificationStatus::Failed => pb::NotificationStatus::Failed,
    };
    pb::Notification {
        id: n.id,
        order_id: n.order_id,
        user_id: n.user_id,
        message: n.message,
        status: status as i32,
        sent_at: n.sent_at.map(|t| prost_types::Timestamp {
            seconds: t.timestamp(),
            nanos: t.timestamp_subsec_nanos() as i32,
        }),
        event_id: n.event_id,
    }
}

/// Records `grpc_requests_total{method, code}` and `grpc_request_duration_seconds{method}`.
async fn observed<T>(
    method: &'static str,
    call: impl Future<Output = Result<T, Status>>,
) -> Result<T, Status> {
    let start = std::time::Instant::now();
    let result = call.await;
    let code = match &result {
        Ok(_) => tonic::Code::Ok,
        Err(s) => s.code(),
    };
    metrics::histogram!("grpc_request_duration_seconds", "service" => "notifications", "method" => method).record(start.elapsed().as_secs_f64());
    metrics::counter!("grpc_requests_total", "service" => "notifications", "method" => method, "code" => format!("{code:?}")).increment(1);
    result
}

#[tonic::async_trait]
impl pb::notification_service_server::NotificationService for NotificationGrpc {
    type WatchNotificationsStream =
        tokio_stream::wrappers::ReceiverStream<Result<pb::WatchNotificationsResponse, Status>>;

    async fn watch_notifications(
        &self,
        request: Request<pb::WatchNotificationsRequest>,
    ) -> Result<Response<Self::WatchNotificationsStream>, Status> {
        observed("WatchNotifications", async {
            let caller = caller(&request)?.clone();
            let user_id = domain::positive_id("user_id", request.into_inner().user_id)?;
            caller
                .check_access(user_id)
                .map_err(|f| Status::permission_denied(f.0))?;
            let (sent, stream) = tokio::sync::mpsc::channel(WATCH_BUFFER);
            let watch = Watch {
                store: self.store.clone(),
                reader: caller.user_id,
                user_id,
                poll: self.watch_poll,
                shutdown: self.shutdown.clone(),
                sent,
            };
            tokio::spawn(watch.run());
            Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(
                stream,
            )))
        })
        .await
    }

    async fn get_notifications(
        &self,
        request: Request<pb::GetNotificationsRequest>,
    ) -> Result<Response<pb::GetNotificationsResponse>, Status> {
        observed("GetNotifications", async {
            let caller = caller(&request)?.clone();
            let order_id = domain::positive_id("order_id", request.into_inner().order_id)?;
            let mut found = self.store.by_order(caller.user_id, order_id).await?;
            // Another user's order has no notifications for this caller, as a missing one.
            found.retain(|n| caller.sees(n.user_id));
            Ok(Response::new(pb::GetNotificationsResponse {
                notifications: found.into_iter().map(to_contract).collect(),
            }))
        })
        .await
    }

    async fn get_dead_letters(
        &self,
        _request: Request<pb::GetDeadLettersRequest>,
    ) -> Result<Response<pb::GetDeadLettersResponse>, Status> {
        observed("GetDeadLetters", async {
            let count = self
                .dead_letters
                .count()
                .await
                .map_err(broker_unavailable)?;
            Ok(Response::new(pb::GetDeadLettersResponse { count }))
        })
        .await
    }

    async fn redrive_dead_letters(
        &self,
        request: Request<pb::RedriveDeadLettersRequest>,
    ) -> Result<Response<pb::RedriveDeadLettersResponse>, Status> {
        observed("RedriveDeadLetters", async {
            let reason = request.into_inner().reason;
            let report = self
                .dead_letters
                .redrive(&reason)
                .await
                .map_err(broker_unavailable)?;
            tracing::info!(moved = report.moved, kept = report.kept, %reason, "dead letters redriven");
            Ok(Response::new(pb::RedriveDeadLettersResponse {
                moved: report.moved,
                kept: report.kept,
            }))
        })
        .await
    }

    async fn get_notifications_for_orders(
        &self,
        request: Request<pb::GetNotificationsForOrdersRequest>,
    ) -> Result<Response<pb::GetNotificationsForOrdersResponse>, Status> {
        observed("GetNotificationsForOrders", async {
            let caller = caller(&request)?.clone();
            let ids = domain::order_batch(&request.into_inner().order_ids)?;
            let mut by_order: std::collections::HashMap<i64, Vec<pb::Notification>> =
                ids.iter().map(|id| (*id, Vec::new())).collect();
            let mut found = self.store.by_orders(caller.user_id, &ids).await?;
            found.retain(|n| caller.sees(n.user_id));
            for n in found {
                if let Some(list) = by_order.get_mut(&n.order_id) {
                    list.push(to_contract(n));
                }
            }
            let orders = ids
                .iter()
                .map(|id| pb::OrderNotifications {
                    order_id: *id,
                    notifications: by_order.remove(id).unwrap_or_default(),
                })
                .collect();
            Ok(Response::new(pb::GetNotificationsForOrdersResponse {
                orders,
            }))
        })
        .await
    }

    async fn list_user_notifications(
        &self,
        request: Request<pb::ListUserNotificationsRequest>,
    ) -> Result<Response<pb::ListUserNotificationsResponse>, Status> {
        observed("ListUserNotifications", async {
            let caller = caller(&request)?.clone();
            let req = request.into_inner();
            let user_id = domain::positive_id("user_id", req.user_id)?;
            caller
                .check_access(user_id)
                .map_err(|f| Status::permission_denied(f.0))?;
            let limit = domain::page_size(req.page_size)?;
            let after = PageToken::decode(&req.page_token)?;
            let (found, next) = self
                .store
                .by_user(caller.user_id, user_id, limit, after)
                .await?;
            Ok(Response::new(pb::ListUserNotificationsResponse {
                notifications: found.into_iter().map(to_contract).collect(),
                next_page_token: next.map(|t| t.encode()).unwrap_or_default(),
            }))
        })
        .await
    }
}
