//! Retrying with exponential backoff, for start-up steps and reconnect loops.

use std::future::Future;
use std::time::Duration;

use crate::shutdown::Shutdown;

/// Doubling delay between `min` and `max`, reset after a success.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Starts at `min`.
    pub fn new(min: Duration, max: Duration) -> Self {
        Self {
            min,
            max,
            next: min,
        }
    }

    /// The delay to wait now; the following one doubles, up to `max`.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d
    }

    /// Back to `min` after a success.
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

/// Runs `step` until it succeeds, waiting 0.5 s, 1 s, 2 s ... (at most 10 s) between tries and
/// logging each failure with `what`. Returns `None` if `shutdown` comes first.
pub async fn until_ok<T, E, F, Fut>(what: &str, shutdown: &Shutdown, step: F) -> Option<T>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(10));
    until_ok_with(what, shutdown, backoff, step).await
}

/// [`until_ok`] waiting as `backoff` says between tries.
pub async fn until_ok_with<T, E, F, Fut>(
    what: &str,
    shutdown: &Shutdown,
    mut backoff: Backoff,
    mut step: F,
) -> Option<T>
where
    E: std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    loop {
        match step().await {
            Ok(v) => return Some(v),
            Err(e) => {
                let delay = backoff.next_delay();
                tracing::warn!(error = %e, ?delay, "{what} failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.wait() => return None,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[test]
    fn backoff_doubles_to_max_and_resets() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let seen: Vec<_> = (0..4).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(seen, vec![100, 200, 350, 350]);
        b.reset();
        assert_eq!(b.next_delay().as_millis(), 100);
    }

    fn quick() -> Backoff {
        Backoff::new(Duration::from_millis(1), Duration::from_millis(2))
    }

    #[tokio::test]
    async fn until_ok_retries_then_returns_the_value() {
        let tries = AtomicU32::new(0);
        let got = until_ok_with("step", &Shutdown::new(), quick(), || async {
            if tries.fetch_add(1, Ordering::SeqCst) < 2 {
                Err("not yet")
            } else {
                Ok(42)
            }
        })
        .await;
        assert_eq!(got, Some(42));
        assert_eq!(tries.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn until_ok_gives_up_on_shutdown() {
        let shutdown = Shutdown::new();
        shutdown.trigger();
        // A long backoff: only the shutdown can end the wait.
        let slow = Backoff::new(Duration::from_secs(3600), Duration::from_secs(3600));
        let got: Option<()> =
            until_ok_with("step", &shutdown, slow, || async { Err::<(), _>("never") }).await;
        assert_eq!(got, None);
    }
}
