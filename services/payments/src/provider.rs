//! The payment processor behind the service: a trait a real processor implements, and the
//! built-in fake whose outcome the payment token chooses, like processors' test cards.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// The key a processor deduplicates a call by (`order-42-capture`): a retried call whose
/// first answer was lost gets that answer again and is not carried out twice.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// The key of `step` (`authorize`, `capture`, ...) of order `order_id`'s payment.
    pub fn new(order_id: i64, step: &str) -> Self {
        Self(format!("order-{order_id}-{step}"))
    }

    /// The key as sent.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What an authorization came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authorization {
    /// The amount is held; the processor's reference.
    Approved(String),
    /// The payment method was refused, and why.
    Declined(String),
}

/// A call the processor did not carry out, or whose outcome is unknown: retry it with the
/// same key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// No answer in time.
    #[error("the payment provider did not answer in time")]
    Timeout,
    /// The processor failed, and says the call may be retried.
    #[error("the payment provider failed: {0}")]
    Transient(String),
}

/// A payment processor. Every call carries its idempotency key.
#[async_trait::async_trait]
pub trait PaymentProvider: Send + Sync + 'static {
    /// Holds `amount_minor` of `currency` on the payment method `token`.
    async fn authorize(
        &self,
        key: &IdempotencyKey,
        token: &str,
        amount_minor: i64,
        currency: &str,
    ) -> Result<Authorization, ProviderError>;
    /// Takes the held amount of the authorization `reference`.
    async fn capture(&self, key: &IdempotencyKey, reference: &str) -> Result<(), ProviderError>;
    /// Releases the hold of the authorization `reference`.
    async fn void(&self, key: &IdempotencyKey, reference: &str) -> Result<(), ProviderError>;
    /// Gives the captured amount of `reference` back.
    async fn refund(&self, key: &IdempotencyKey, reference: &str) -> Result<(), ProviderError>;
}

/// The built-in processor: `tok_declined` and `tok_insufficient_funds` are declined,
/// `tok_timeout` never answers, `tok_flaky_N` fails N times per key and then approves, and
/// every other token is approved. Answers are kept per key, as a processor keeps them.
#[derive(Debug, Default)]
pub struct FakeProvider {
    state: Mutex<FakeState>,
}

#[derive(Debug, Default)]
struct FakeState {
    authorizations: HashMap<IdempotencyKey, Authorization>,
    failures: HashMap<IdempotencyKey, u32>,
    /// Calls received, by key (answered from memory or not), for tests to count.
    calls: HashMap<IdempotencyKey, u32>,
}

impl FakeProvider {
    /// How many calls with `key` reached the provider.
    pub fn calls(&self, key: &IdempotencyKey) -> u32 {
        self.state
            .lock()
            .map(|s| s.calls.get(key).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    fn state(
        &self,
        key: &IdempotencyKey,
    ) -> Result<std::sync::MutexGuard<'_, FakeState>, ProviderError> {
        let mut state = self
            .state
            .lock()
            .map_err(|_| ProviderError::Transient("fake provider poisoned".into()))?;
        *state.calls.entry(key.clone()).or_default() += 1;
        Ok(state)
    }
}

/// How long `tok_timeout` keeps a caller waiting: past any sane provider timeout.
const NEVER: Duration = Duration::from_secs(3600);

#[async_trait::async_trait]
impl PaymentProvider for FakeProvider {
    async fn authorize(
        &self,
        key: &IdempotencyKey,
        token: &str,
        _amount_minor: i64,
        _currency: &str,
    ) -> Result<Authorization, ProviderError> {
        if token == "tok_timeout" {
            drop(self.state(key)?);
            tokio::time::sleep(NEVER).await;
            return Err(ProviderError::Timeout);
        }
        let mut state = self.state(key)?;
        if let Some(known) = state.authorizations.get(key) {
            return Ok(known.clone());
        }
        if let Some(n) = token
            .strip_prefix("tok_flaky_")
            .and_then(|n| n.parse::<u32>().ok())
        {
            let failed = state.failures.entry(key.clone()).or_default();
            if *failed < n {
                *failed += 1;
                return Err(ProviderError::Transient(format!(
                    "flaky failure {failed} of {n}"
                )));
            }
        }
        let outcome = match token {
            "tok_declined" => Authorization::Declined("card declined".into()),
            "tok_insufficient_funds" => Authorization::Declined("insufficient funds".into()),
            _ => Authorization::Approved(format!("fake-{}", key.as_str())),
        };
        state.authorizations.insert(key.clone(), outcome.clone());
        Ok(outcome)
    }

    async fn capture(&self, key: &IdempotencyKey, _reference: &str) -> Result<(), ProviderError> {
        self.state(key).map(drop)
    }

    async fn void(&self, key: &IdempotencyKey, _reference: &str) -> Result<(), ProviderError> {
        self.state(key).map(drop)
    }

    async fn refund(&self, key: &IdempotencyKey, _reference: &str) -> Result<(), ProviderError> {
        self.state(key).map(drop)
    }
}
