//! Failing fast and retrying safely when a downstream service is down.
//!
//! Each downstream service has a [`CircuitBreaker`]: after `failure_threshold` consecutive
//! failures (unavailable or timed out) it opens, and calls fail at once with
//! `DOWNSTREAM_UNAVAILABLE` instead of each waiting for the timeout; after `open_for` one call
//! is let through (half-open) and its outcome closes or re-opens the breaker.
//!
//! A service runs as several replicas behind one address. When one replica dies, every call
//! it had in flight fails with a broken connection at the same moment, while the next calls
//! reach a live replica. So "unavailable" failures of calls that were already in flight when a
//! failure was last counted are one incident and count once; otherwise one replica's crash
//! would open the circuit for the whole service. Timeouts always count, each one: they are
//! what the breaker saves callers from waiting out.
//!
//! Idempotent calls (reads) that find a service unavailable are retried with exponential
//! backoff and full jitter, under a [`RetryBudget`] shared by all calls to that service, so
//! retries add at most a fixed share of the load and cannot multiply it during an outage.
//! Timeouts are not retried: the call already used its time. Writes are never retried.

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::ResilienceConfig;
use crate::error::GatewayError;

/// State of a breaker, as exported in `downstream_circuit_state` (0, 1, 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Calls go through.
    Closed,
    /// One probe call is allowed.
    HalfOpen,
    /// Calls fail at once.
    Open,
}

#[derive(Debug)]
enum State {
    /// `last_failure`: when a failure was last counted.
    Closed {
        failures: u32,
        last_failure: Option<Instant>,
    },
    Open {
        until: Instant,
    },
    HalfOpen {
        probing: bool,
    },
}

/// What a breaker says about one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admission {
    Allowed,
    Probe,
    Rejected,
}

/// Retry tokens: every first attempt deposits `ratio`, every retry takes one, so retries stay
/// under `ratio` of calls (plus a burst of `max`).
#[derive(Debug)]
pub struct RetryBudget {
    tokens: Mutex<f64>,
    ratio: f64,
    max: f64,
}

impl RetryBudget {
    /// A budget allowing retries of `ratio` of calls, with `max` tokens at most (full at start).
    pub fn new(ratio: f64, max: f64) -> Self {
        Self {
            tokens: Mutex::new(max),
            ratio,
            max,
        }
    }

    fn deposit(&self) {
        if let Ok(mut t) = self.tokens.lock() {
            *t = (*t + self.ratio).min(self.max);
        }
    }

    fn withdraw(&self) -> bool {
        match self.tokens.lock() {
            Ok(mut t) if *t >= 1.0 => {
                *t -= 1.0;
                true
            }
            _ => false,
        }
    }
}

/// The breaker and retry budget of one downstream service.
#[derive(Debug)]
pub struct CircuitBreaker {
    service: &'static str,
    state: Mutex<State>,
    config: ResilienceConfig,
    budget: RetryBudget,
}

impl CircuitBreaker {
    /// A closed breaker for `service`.
    pub fn new(service: &'static str, config: ResilienceConfig) -> Self {
        let breaker = Self {
            service,
            state: Mutex::new(State::Closed {
                failures: 0,
                last_failure: None,
            }),
            budget: RetryBudget::new(config.retry_ratio, 10.0),
            config,
        };
        // Dashboards and alerts read these before anything has failed: they exist from the
        // start (the recorder first, or they would be recorded nowhere).
        shopmesh_common::metrics::handle();
        breaker.export(CircuitState::Closed);
        metrics::counter!("downstream_retries_total", "service" => service).increment(0);
        metrics::counter!("downstream_rejected_total", "service" => service).increment(0);
        breaker
    }

    /// The current state.
    pub fn state(&self) -> CircuitState {
        match self.state.lock().as_deref() {
            Ok(State::Open { until }) if *until > Instant::now() => CircuitState::Open,
            Ok(State::Open { .. }) | Ok(State::HalfOpen { .. }) => CircuitState::HalfOpen,
            _ => CircuitState::Closed,
        }
    }

    /// Runs `call` through the breaker; an idempotent call is retried while the service is
    /// unavailable, within the retry budget.
    pub async fn call<T, F, Fut>(&self, idempotent: bool, mut call: F) -> Result<T, GatewayError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, GatewayError>>,
    {
        self.budget.deposit();
        let mut attempt = 0;
        loop {
            let admission = self.admit();
            if admission == Admission::Rejected {
                metrics::counter!("downstream_rejected_total", "service" => self.service)
                    .increment(1);
                return Err(GatewayError::Unavailable {
                    service: self.service,
                    detail: "circuit open after repeated failures; retry later".to_owned(),
                });
            }
            let started = Instant::now();
            let outcome = call().await;
            self.record(&outcome, started);
            let retryable = matches!(outcome, Err(GatewayError::Unavailable { .. }));
            if !(retryable
                && idempotent
                && admission == Admission::Allowed
                && attempt < self.config.retries
                && self.budget.withdraw())
            {
                return outcome;
            }
            attempt += 1;
            metrics::counter!("downstream_retries_total", "service" => self.service).increment(1);
            tokio::time::sleep(self.backoff(attempt)).await;
        }
    }

    /// Full jitter: uniform in [0, base * 2^(attempt-1)].
    fn backoff(&self, attempt: u32) -> Duration {
        let cap = self.config.retry_base * 2u32.saturating_pow(attempt.saturating_sub(1));
        let nanos = u64::try_from(cap.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(fastrand::u64(0..=nanos))
    }

    fn admit(&self) -> Admission {
        let Ok(mut state) = self.state.lock() else {
            return Admission::Allowed;
        };
        match *state {
            State::Closed { .. } => Admission::Allowed,
            State::Open { until } if until > Instant::now() => Admission::Rejected,
            State::Open { .. } | State::HalfOpen { probing: false } => {
                *state = State::HalfOpen { probing: true };
                self.export(CircuitState::HalfOpen);
                Admission::Probe
            }
            State::HalfOpen { probing: true } => Admission::Rejected,
        }
    }

    /// Counts the outcome of a call that started at `started`.
    fn record<T>(&self, outcome: &Result<T, GatewayError>, started: Instant) {
        let (failed, timed_out) = match outcome {
            Err(GatewayError::Unavailable { .. }) => (true, false),
            Err(GatewayError::Timeout { .. }) => (true, true),
            _ => (false, false),
        };
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let now = Instant::now();
        let next = match (&*state, failed) {
            (_, false) => State::Closed {
                failures: 0,
                last_failure: None,
            },
            // In flight when the last failure was counted: the same incident.
            (
                State::Closed {
                    failures,
                    last_failure: Some(last),
                },
                true,
            ) if !timed_out && started < *last => State::Closed {
                failures: *failures,
                last_failure: Some(*last),
            },
            (State::Closed { failures, .. }, true)
                if failures + 1 < self.config.failure_threshold =>
            {
                State::Closed {
                    failures: failures + 1,
                    last_failure: Some(now),
                }
            }
            (_, true) => State::Open {
                until: now + self.config.open_for,
            },
        };
        let (was_open, is_open) = (
            !matches!(*state, State::Closed { .. }),
            !matches!(next, State::Closed { .. }),
        );
        *state = next;
        drop(state);
        match (was_open, is_open) {
            (false, true) => {
                tracing::warn!(service = self.service, "circuit opened");
                self.export(CircuitState::Open);
            }
            (true, false) => {
                tracing::info!(service = self.service, "circuit closed");
                self.export(CircuitState::Closed);
            }
            (true, true) => self.export(CircuitState::Open),
            (false, false) => {}
        }
    }

    fn export(&self, state: CircuitState) {
        let value = match state {
            CircuitState::Closed => 0.0,
            CircuitState::HalfOpen => 1.0,
            CircuitState::Open => 2.0,
        };
        metrics::gauge!("downstream_circuit_state", "service" => self.service).set(value);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn config() -> ResilienceConfig {
        ResilienceConfig {
            retries: 2,
            retry_base: Duration::from_millis(1),
            retry_ratio: 0.2,
            failure_threshold: 3,
            open_for: Duration::from_millis(200),
        }
    }

    fn down() -> GatewayError {
        GatewayError::Unavailable {
            service: "orders",
            detail: "refused".into(),
        }
    }

    #[tokio::test]
    async fn opens_after_consecutive_failures_then_probes_and_closes() {
        let breaker = CircuitBreaker::new("orders", config());
        let calls = AtomicU32::new(0);
        let failing = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<(), _>(GatewayError::Timeout { service: "orders" })
        };
        for _ in 0..3 {
            assert!(matches!(
                breaker.call(true, failing).await,
                Err(GatewayError::Timeout { .. })
            ));
        }
        assert_eq!(breaker.state(), CircuitState::Open);
        for _ in 0..10 {
            assert!(matches!(
                breaker.call(true, failing).await,
                Err(GatewayError::Unavailable { .. })
            ));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 3, "timeouts are not retried");

        tokio::time::sleep(Duration::from_millis(250)).await;
        let ok = breaker
            .call(true, || async { Ok::<_, GatewayError>(7) })
            .await;
        assert_eq!(ok.unwrap(), 7, "the half-open probe goes through");
        assert_eq!(breaker.state(), CircuitState::Closed);
    }

    /// One replica dying breaks every call it had in flight at once; the next calls reach
    /// another replica. That is one failure, not one per call.
    #[tokio::test]
    async fn calls_failing_together_count_once_and_sequential_failures_open() {
        let breaker = std::sync::Arc::new(CircuitBreaker::new("orders", config()));
        let crash = std::sync::Arc::new(tokio::sync::Notify::new());
        let in_flight: Vec<_> = (0..10)
            .map(|_| {
                let (breaker, crash) = (breaker.clone(), crash.clone());
                tokio::spawn(async move {
                    breaker
                        .call(false, || async {
                            crash.notified().await;
                            Err::<(), _>(down())
                        })
                        .await
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        crash.notify_waiters();
        for call in in_flight {
            assert!(call.await.unwrap().is_err());
        }
        assert_eq!(breaker.state(), CircuitState::Closed, "one incident");
        let ok = breaker
            .call(false, || async { Ok::<_, GatewayError>(1) })
            .await;
        assert_eq!(ok.unwrap(), 1, "the next call reaches a live replica");

        // A service that is down fails call after call: that opens the circuit.
        for _ in 0..3 {
            let _ = breaker.call(false, || async { Err::<(), _>(down()) }).await;
        }
        assert_eq!(breaker.state(), CircuitState::Open);
    }

    /// Timeouts count each: they are what the breaker saves callers from.
    #[tokio::test]
    async fn concurrent_timeouts_each_count() {
        let breaker = std::sync::Arc::new(CircuitBreaker::new("orders", config()));
        let calls: Vec<_> = (0..3)
            .map(|_| {
                let breaker = breaker.clone();
                tokio::spawn(async move {
                    breaker
                        .call(false, || async {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            Err::<(), _>(GatewayError::Timeout { service: "orders" })
                        })
                        .await
                })
            })
            .collect();
        for call in calls {
            let _ = call.await;
        }
        assert_eq!(breaker.state(), CircuitState::Open);
    }

    #[tokio::test]
    async fn a_failed_probe_reopens() {
        let breaker = CircuitBreaker::new("orders", config());
        for _ in 0..3 {
            let _ = breaker.call(false, || async { Err::<(), _>(down()) }).await;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        let _ = breaker.call(true, || async { Err::<(), _>(down()) }).await;
        assert_eq!(breaker.state(), CircuitState::Open);
    }

    #[tokio::test]
    async fn reads_are_retried_writes_are_not() {
        let breaker = CircuitBreaker::new("users", config());
        let calls = AtomicU32::new(0);
        let flaky = || async {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                Err(down())
            } else {
                Ok(1)
            }
        };
        assert_eq!(breaker.call(true, flaky).await.unwrap(), 1);
        assert_eq!(calls.load(Ordering::SeqCst), 2);

        calls.store(0, Ordering::SeqCst);
        assert!(breaker.call(false, flaky).await.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1, "a write is sent once");
    }

    #[tokio::test]
    async fn the_budget_bounds_retries() {
        let breaker = CircuitBreaker::new(
            "users",
            ResilienceConfig {
                failure_threshold: u32::MAX,
                ..config()
            },
        );
        let calls = AtomicU32::new(0);
        for _ in 0..100 {
            let _ = breaker
                .call(true, || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err::<(), _>(down())
                })
                .await;
        }
        let retries = calls.load(Ordering::SeqCst) - 100;
        // 10 tokens at start plus 0.2 per call: at most 30, far below 2 per call (200).
        assert!(retries <= 31, "{retries} retries");
    }
}
