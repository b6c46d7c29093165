//! The notifications service: consumes `order.created` from RabbitMQ into MongoDB and serves
//! the notifications over gRPC (with reflection and health) on :50051.
//!
//! - [`events`] consumes, retries and dead-letters;
//! - [`store`] keeps notifications in MongoDB behind the [`store::NotificationStore`] trait;
//! - [`api`] implements the generated gRPC trait;
//! - [`domain`] holds the rules as plain functions.

pub mod api;
pub mod config;
pub mod domain;
pub mod error;
pub mod events;
pub mod redrive;
pub mod store;

use poem::EndpointExt;

use std::sync::Arc;
use std::time::Duration;

use shopmesh_common::config::{ConfigError, Env};
use shopmesh_common::http::{self, HttpListener};
use shopmesh_common::service::{Addrs, Service};
use shopmesh_common::shutdown::Shutdown;
use shopmesh_common::startup::{Startup, StartupGate};
use shopmesh_identity::TokenVerifier;
use shopmesh_proto::guard::GrpcGuard;
use shopmesh_proto::shopmesh::notification::v1::notification_service_server::NotificationServiceServer;
use tokio::net::TcpListener;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

use crate::config::NotificationsConfig;
use crate::error::NotificationsError;
use crate::events::{ConsumerStatus, NotificationConsumer};
use crate::store::{MongoNotificationStore, NotificationStore};

/// Fully-qualified gRPC service name, as health and reflection report it.
pub const SERVICE_NAME: &str = "shopmesh.notification.v1.NotificationService";

/// Whether every dependency answers: the store pings (a slow answer means busy, not down:
/// see [`MongoNotificationStore`]'s ping) and the consumer holds a broker link.
pub async fn dependencies_ok(
    store: &dyn NotificationStore,
    consumer: &ConsumerStatus,
) -> Result<(), String> {
    match store.ping().await {
        Ok(()) => {}
        Err(NotificationsError::StoreSlow(e)) => {
            tracing::info!(error = %e, "the store is slow; still serving");
        }
        Err(e) => return Err(format!("mongodb: {e}")),
    }
    if !consumer.connected() {
        return Err("rabbitmq: consumer not connected".to_owned());
    }
    Ok(())
}

/// Sets the overall ("") and the service's health status.
async fn report(reporter: &HealthReporter, status: ServingStatus) {
    reporter.set_service_status("", status).await;
    reporter.set_service_status(SERVICE_NAME, status).await;
}

/// Keeps gRPC health in step with the dependencies: SERVING only while MongoDB answers and
/// the consumer is connected to RabbitMQ. Checks every `every`.
pub async fn watch_health(
    reporter: HealthReporter,
    store: Arc<dyn NotificationStore>,
    consumer: Arc<ConsumerStatus>,
    every: Duration,
    shutdown: Shutdown,
) {
    let mut last = None;
    loop {
        let ok = dependencies_ok(store.as_ref(), &consumer).await;
        let status = if ok.is_ok() {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        if last != Some(status) {
            match &ok {
                Ok(()) => tracing::info!("dependencies up: SERVING"),
                Err(e) => tracing::warn!(reason = %e, "dependency down: NOT_SERVING"),
            }
            report(&reporter, status).await;
            last = Some(status);
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.wait() => break,
        }
    }
    report(&reporter, ServingStatus::NotServing).await;
}

/// The HTTP side of the service (`HTTP_PORT`): `/health/live`, `/health/ready` (MongoDB and
/// RabbitMQ answer) and `/metrics` (consumer outcomes, gRPC calls).
pub fn http_app(
    store: Arc<dyn NotificationStore>,
    consumer: Arc<ConsumerStatus>,
) -> impl poem::Endpoint<Output = poem::Response> {
    use poem::EndpointExt;
    use shopmesh_common::health::{self, ReadinessCheck};
    use shopmesh_common::metrics::Collector;
    use std::sync::atomic::Ordering;

    let (s, c) = (store.clone(), consumer.clone());
    let checks = vec![ReadinessCheck::new("dependencies", move || {
        let (s, c) = (s.clone(), c.clone());
        async move { dependencies_ok(s.as_ref(), &c).await }
    })];
    let collectors: Vec<Collector> = vec![Arc::new(move || {
        for (outcome, n) in [
            ("stored", &consumer.processed),
            ("duplicate", &consumer.duplicates),
            ("retried", &consumer.retried),
            ("dead_lettered", &consumer.dead_lettered),
        ] {
            metrics::counter!("notifications_consumed_total", "outcome" => outcome)
                .absolute(n.load(Ordering::Relaxed));
        }
        metrics::gauge!("notifications_dead_letter_messages")
            .set(consumer.dead_letter_depth.load(Ordering::Relaxed) as f64);
        metrics::gauge!("notifications_consumer_connected").set(if consumer.connected() {
            1.0
        } else {
            0.0
        });
    })];
    http::standard(
        "notifications",
        &[],
        health::operations(poem::Route::new(), "notifications", checks, collectors),
    )
    .with(http::AllowHeader::new(&[], &[]))
}

/// Serves the notification service, reflection and health on `listener` until `shutdown`.
pub async fn serve_grpc(
    listener: TcpListener,
    store: Arc<dyn NotificationStore>,
    consumer: Arc<ConsumerStatus>,
    settings: GrpcSettings,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let health_every = settings.health_every;
    // Install the recorder before the first gRPC call records anything.
    shopmesh_common::metrics::handle();
    let (reporter, health) = tonic_health::server::health_reporter();
    report(&reporter, ServingStatus::NotServing).await;
    let watcher = tokio::spawn(watch_health(
        reporter,
        store.clone(),
        consumer,
        health_every,
        shutdown.clone(),
    ));
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(shopmesh_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(shopmesh_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    let service = NotificationServiceServer::new(api::NotificationGrpc::new(
        store,
        settings.dead_letters,
        settings.watch_poll,
        shutdown.clone(),
    ));
    let s = shutdown.clone();
    tonic::transport::Server::builder()
        // Dead peers are found by pings; every connection is recycled at its maximum age.
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .tcp_keepalive(Some(Duration::from_secs(60)))
        .max_concurrent_streams(GRPC_MAX_CONCURRENT_STREAMS)
        .max_connection_age(settings.max_connection_age)
        .max_connection_age_grace(settings.max_connection_age.min(Duration::from_secs(30)))
        .trace_fn(shopmesh_common::telemetry::grpc_server_span)
        .layer(GrpcGuard::new(settings.verifier))
        .add_service(health)
        .add_service(reflection)
        .add_service(reflection_alpha)
        .add_service(service)
        .serve_with_incoming_shutdown(
            tokio_stream::wrappers::TcpListenerStream::new(listener),
            async move { s.wait().await },
        )
        .await?;
    let _ = watcher.await;
    Ok(())
}

/// Calls one gRPC connection may have in flight.
const GRPC_MAX_CONCURRENT_STREAMS: u32 = 256;

/// How the gRPC listener serves.
#[derive(Clone)]
pub struct GrpcSettings {
    /// Checks the callers of every method (`(shopmesh.auth.v1.access)`).
    pub verifier: TokenVerifier,
    /// How often gRPC health re-checks MongoDB and the consumer.
    pub health_every: Duration,
    /// Connections older than this are closed (GOAWAY, then as long again, at most 30 s, for
    /// calls in flight).
    pub max_connection_age: Duration,
    /// How often a `WatchNotifications` stream looks for new notifications.
    pub watch_poll: Duration,
    /// The dead-letter queue the admin's calls count and redrive.
    pub dead_letters: redrive::DeadLetters,
}

/// The notifications service, built from its configuration: HTTP and gRPC listeners bound,
/// MongoDB store and consumer created. [`Service::run_until`] creates the indexes, starts the
/// consumer and serves both listeners.
pub struct Application {
    store: MongoNotificationStore,
    consumer: NotificationConsumer,
    consumer_enabled: bool,
    grpc_settings: GrpcSettings,
    http: HttpListener,
    grpc: TcpListener,
}

impl Application {
    /// The store (tests count documents through it).
    pub fn store(&self) -> &MongoNotificationStore {
        &self.store
    }

    /// The consumer's counters and broker link.
    pub fn consumer_status(&self) -> Arc<ConsumerStatus> {
        self.consumer.status()
    }
}

impl Service for Application {
    type Config = NotificationsConfig;
    const NAME: &'static str = "notifications";
    const HEALTH_PORT: (&'static str, u16) = ("HTTP_PORT", 3003);

    fn config(env: &impl Env) -> Result<NotificationsConfig, ConfigError> {
        NotificationsConfig::from_env(env)
    }

    async fn build(config: NotificationsConfig) -> anyhow::Result<Self> {
        let store = MongoNotificationStore::connect(
            config.mongo_url.expose(),
            &config.mongo_db,
            config.mongo_timeout,
        )
        .await?
        .with_reads_per_caller(config.mongo_max_reads_per_caller);
        let consumer = NotificationConsumer::new(
            Arc::new(store.clone()),
            config.rabbitmq_url.expose().to_owned(),
            config.topology.clone(),
            config.consumer,
        );
        let http = HttpListener::bind(config.http_port, config.http).await?;
        let grpc = TcpListener::bind((config.http.bind_address, config.grpc_port)).await?;
        Ok(Self {
            store,
            consumer,
            consumer_enabled: config.consumer_enabled,
            grpc_settings: GrpcSettings {
                verifier: config.auth.verifier(),
                health_every: config.health_interval,
                max_connection_age: config.grpc_max_connection_age,
                watch_poll: config.watch_poll,
                dead_letters: redrive::DeadLetters {
                    amqp_url: config.rabbitmq_url.expose().to_owned(),
                    topology: config.topology.clone(),
                },
            },
            http,
            grpc,
        })
    }

    fn addrs(&self) -> Addrs {
        Addrs {
            grpc: self.grpc.local_addr().ok(),
            ..self.http.addrs()
        }
    }

    /// `redrive [--reason TEXT]`: moves dead-lettered events back (see [`redrive`]).
    async fn command(config: NotificationsConfig, args: Vec<String>) -> Option<anyhow::Result<()>> {
        if args.first().map(String::as_str) != Some("redrive") {
            return None;
        }
        let reason = match args.get(1..).unwrap_or_default() {
            [] => None,
            [flag, text] if flag == "--reason" => Some(text.clone()),
            _ => return Some(Err(anyhow::anyhow!("usage: redrive [--reason TEXT]"))),
        };
        let url = config.rabbitmq_url.expose();
        Some(
            redrive::redrive(url, &config.topology, reason.as_deref())
                .await
                .map(|report| {
                    println!(
                        "redrive: {} moved back to {}, {} left in {}",
                        report.moved,
                        config.topology.queue,
                        report.kept,
                        config.topology.dead_letter_queue()
                    );
                })
                .map_err(anyhow::Error::from),
        )
    }

    async fn run_until(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let mongo = self.store;
        // The consumer relies on the unique index for idempotency, so it waits for it; reads
        // are served meanwhile.
        let indexed = {
            let mongo = mongo.clone();
            Startup::spawn("MongoDB index creation", &shutdown, move || {
                let mongo = mongo.clone();
                async move { mongo.ensure_indexes().await }
            })
        };
        let store: Arc<dyn NotificationStore> = Arc::new(mongo);
        let status = self.consumer.status();
        let consumer = self.consumer_enabled.then(|| {
            let (indexed, shutdown, consumer) = (indexed.clone(), shutdown.clone(), self.consumer);
            tokio::spawn(async move {
                if indexed.wait().await {
                    consumer.run(shutdown).await;
                }
            })
        });
        let http_app = http_app(store.clone(), status.clone()).with(StartupGate(indexed));
        let (listener, s) = (self.http, shutdown.clone());
        let http_task = tokio::spawn(async move { listener.serve(http_app, &s).await });
        let served = serve_grpc(
            self.grpc,
            store,
            status,
            self.grpc_settings,
            shutdown.clone(),
        )
        .await;
        shutdown.trigger();
        if let Some(consumer) = consumer {
            let _ = consumer.await;
        }
        let _ = http_task.await;
        served
    }
}
