//! Plumbing every shopmesh service shares, so no service re-implements it:
//! typed environment config ([`config`]), RFC 9457 problem responses ([`problem`]),
//! HTTP serving with body limits and health endpoints ([`http`], [`health`]),
//! logs ([`telemetry`]), graceful shutdown ([`shutdown`]) and the one way a service is built
//! and run ([`service`]).

#[cfg(feature = "amqp")]
pub mod amqp;
pub mod auth;
#[cfg(feature = "cache")]
pub mod cache;
pub mod config;
#[cfg(feature = "mysql")]
pub mod db;
pub mod health;
pub mod http;
#[cfg(feature = "mysql")]
pub mod idempotency;
pub mod metrics;
#[cfg(feature = "cache")]
pub mod near_cache;
pub mod nesting;
pub mod problem;
pub mod retry;
pub mod service;
pub mod shutdown;
pub mod startup;
pub mod telemetry;
