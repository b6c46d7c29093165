//! A tier in process memory in front of Redis, kept coherent across replicas.
//!
//! The service that owns an entity announces every committed change on a Redis pub/sub
//! channel ([`ChangeChannel::announce`]) before it acknowledges the write. Every replica that
//! keeps the entity in memory ([`NearCache`]) follows that channel and drops the entry when
//! the announcement arrives, so no replica serves a value for longer after an acknowledged
//! write than the channel takes to deliver (well under a millisecond on a local network).
//!
//! Pub/sub delivers at most once, so the tier serves only while it knows it is hearing the
//! channel: it starts empty and silent, clears itself whenever it subscribes (it may have
//! missed announcements while it was not listening), and stops serving when it has heard
//! nothing, not even its own heartbeats, for [`SILENCE`]. A cut channel (Redis down or hung)
//! therefore costs the memory tier, never coherence beyond that window.
//!
//! A read that raced an announcement must not put the old value back: [`NearCache::ticket`]
//! is taken before reading from Redis or the database, and [`NearCache::fill`] drops the value
//! when any announcement arrived since.

use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;

use crate::cache::RedisCache;
use crate::config::{ConfigError, Env};

/// How often a follower publishes a heartbeat on the channel it follows.
pub const HEARTBEAT: Duration = Duration::from_millis(250);
/// How long a follower may hear nothing on its channel before its tier stops serving.
pub const SILENCE: Duration = Duration::from_secs(1);
/// The payload of a heartbeat (announcements carry an id).
const BEAT: &str = "beat";

/// A Redis pub/sub channel on which an entity's owner announces the ids it changed.
#[derive(Debug, Clone)]
pub struct ChangeChannel {
    name: String,
}

impl ChangeChannel {
    /// The channel called `name` (e.g. `user.changed`, after the deployment's prefix).
    pub fn new(name: impl Into<String>) -> Self {
        Self { name: name.into() }
    }

    /// The channel's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Announces that `id` changed. Returns whether Redis took the announcement; when it did
    /// not, followers cannot be hearing the channel either (their tiers stop serving).
    pub async fn announce(&self, redis: &RedisCache, id: impl std::fmt::Display) -> bool {
        redis
            .run::<i64>(redis::cmd("PUBLISH").arg(&self.name).arg(id.to_string()))
            .await
            .is_some()
    }
}

/// A memory tier of one entity, as its owner and the gateways configure it.
#[derive(Debug, Clone)]
pub struct MemoryTierConfig {
    /// Entries kept in process memory (`{ENTITY}_MEMORY_CACHE_ENTRIES`, 10000; 0 turns the
    /// tier off).
    pub entries: u64,
    /// Where the owner announces changed ids (`{ENTITY}_CHANGES_CHANNEL`, by default
    /// `{entity}.changed` after `CACHE_PREFIX`); the same for the owner and every gateway of a
    /// deployment.
    pub channel: ChangeChannel,
}

impl MemoryTierConfig {
    /// Reads the tier of `entity` (`user`, `product`): `USER_MEMORY_CACHE_ENTRIES` and
    /// `USER_CHANGES_CHANNEL` for users.
    pub fn from_env(env: &impl Env, entity: &str) -> Result<Self, ConfigError> {
        let upper = entity.to_ascii_uppercase();
        Ok(Self {
            entries: env.parse_or(&format!("{upper}_MEMORY_CACHE_ENTRIES"), 10_000)?,
            channel: ChangeChannel::new(
                env.get(&format!("{upper}_CHANGES_CHANNEL"))
                    .unwrap_or_else(|| {
                        format!("{}{entity}.changed", env.string_or("CACHE_PREFIX", ""))
                    }),
            ),
        })
    }
}

/// Proof of when a read began, for [`NearCache::fill`].
#[derive(Debug, Clone, Copy)]
pub struct Ticket(u64);

/// Values by id in process memory, served only while the [`ChangeChannel`] is heard.
pub struct NearCache<K, V> {
    inner: Arc<Inner<K, V>>,
}

impl<K, V> Clone for NearCache<K, V> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<K, V> {
    /// `None` when the tier is off (capacity 0).
    entries: Option<moka::sync::Cache<K, V>>,
    /// Announcements received (and clears), so that a fill can tell one raced it.
    generation: AtomicU64,
    /// When the channel was last heard, in milliseconds since `epoch`; 0: not listening.
    heard_at: AtomicU64,
    epoch: Instant,
    hits: AtomicU64,
}

impl<K, V> NearCache<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + std::str::FromStr + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A tier of at most `capacity` entries (0 turns it off), each kept at most `ttl`.
    pub fn new(capacity: u64, ttl: Duration) -> Self {
        let entries = (capacity > 0).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build()
        });
        Self {
            inner: Arc::new(Inner {
                entries,
                generation: AtomicU64::new(0),
                heard_at: AtomicU64::new(0),
                epoch: Instant::now(),
                hits: AtomicU64::new(0),
            }),
        }
    }

    /// Reads served from memory.
    pub fn hits(&self) -> u64 {
        self.inner.hits.load(Ordering::Relaxed)
    }

    /// Whether the tier serves: it is on and has heard its channel within [`SILENCE`].
    pub fn is_serving(&self) -> bool {
        let heard = self.inner.heard_at.load(Ordering::Acquire);
        self.inner.entries.is_some()
            && heard > 0
            && self.now_ms().saturating_sub(heard) <= SILENCE.as_millis() as u64
    }

    fn now_ms(&self) -> u64 {
        // Starts at 1, so that 0 can mean "never heard".
        self.inner.epoch.elapsed().as_millis() as u64 + 1
    }

    /// The value for `key`, when the tier serves and holds it.
    pub fn get(&self, key: &K) -> Option<V> {
        if !self.is_serving() {
            return None;
        }
        let value = self.inner.entries.as_ref()?.get(key)?;
        self.inner.hits.fetch_add(1, Ordering::Relaxed);
        Some(value)
    }

    /// Taken before a read from Redis or the database whose result will be [`filled`](Self::fill).
    pub fn ticket(&self) -> Ticket {
        Ticket(self.inner.generation.load(Ordering::Acquire))
    }

    /// Keeps `value` for `key` unless an announcement arrived since `ticket` was taken (the
    /// value may be older than that change) or the tier does not serve.
    pub fn fill(&self, ticket: Ticket, key: K, value: V) {
        let Some(entries) = &self.inner.entries else {
            return;
        };
        let unchanged = || self.inner.generation.load(Ordering::Acquire) == ticket.0;
        if !self.is_serving() || !unchanged() {
            return;
        }
        // An announcement between the check and the insert bumps the generation first, so
        // checking again after inserting catches it.
        entries.insert(key.clone(), value);
        if !unchanged() {
            entries.invalidate(&key);
        }
    }

    /// Drops `key`, and makes fills of reads begun before now drop their values.
    pub fn forget(&self, key: &K) {
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
        if let Some(entries) = &self.inner.entries {
            entries.invalidate(key);
        }
    }

    fn forget_all(&self) {
        self.inner.generation.fetch_add(1, Ordering::AcqRel);
        if let Some(entries) = &self.inner.entries {
            entries.invalidate_all();
        }
    }

    fn heard(&self) {
        self.inner.heard_at.store(self.now_ms(), Ordering::Release);
    }

    fn deaf(&self) {
        self.inner.heard_at.store(0, Ordering::Release);
        self.forget_all();
    }

    /// Follows `channel` on `redis` for as long as the runtime runs, dropping each announced
    /// id. Does nothing when the tier is off or no Tokio runtime is current.
    pub fn follow(&self, redis: RedisCache, channel: ChangeChannel) {
        if self.inner.entries.is_none() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // Without a runtime nothing can follow the channel; the tier then never serves.
            tracing::warn!(
                channel = channel.name(),
                "no async runtime; memory tier off"
            );
            return;
        };
        let tier = self.clone();
        runtime.spawn(async move {
            loop {
                match redis.pubsub().await {
                    Ok(mut pubsub) => {
                        if let Err(e) = pubsub.subscribe(channel.name()).await {
                            tracing::warn!(error = %e, channel = channel.name(), "subscribing failed");
                        } else {
                            tier.listen(pubsub, &redis, &channel).await;
                        }
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, channel = channel.name(), "cannot follow yet");
                    }
                }
                tier.deaf();
                tokio::time::sleep(HEARTBEAT).await;
            }
        });
    }

    /// Serves from memory while announcements and heartbeats arrive; returns when the
    /// subscription ends or falls silent.
    async fn listen(
        &self,
        pubsub: redis::aio::PubSub,
        redis: &RedisCache,
        channel: &ChangeChannel,
    ) {
        // Whatever changed while no one listened is unknown: start empty.
        self.forget_all();
        self.heard();
        tracing::info!(channel = channel.name(), "following changes");
        let mut messages = pubsub.into_on_message();
        let mut beat = tokio::time::interval(HEARTBEAT);
        loop {
            tokio::select! {
                message = messages.next() => {
                    let Some(message) = message else { return };
                    self.heard();
                    let Ok(payload) = message.get_payload::<String>() else { continue };
                    if payload == BEAT {
                        continue;
                    }
                    match payload.parse::<K>() {
                        Ok(key) => self.forget(&key),
                        // Not understood: the safe reading is "anything changed".
                        Err(_) => self.forget_all(),
                    }
                }
                _ = beat.tick() => {
                    if !self.is_serving() {
                        tracing::warn!(channel = channel.name(), "channel silent; memory tier off until it is heard again");
                        return;
                    }
                    let (redis, channel) = (redis.clone(), channel.clone());
                    tokio::spawn(async move { channel.announce(&redis, BEAT).await });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tier() -> NearCache<i64, &'static str> {
        NearCache::new(10, Duration::from_secs(60))
    }

    #[test]
    fn serves_only_while_the_channel_is_heard() {
        let t = tier();
        t.fill(t.ticket(), 1, "a");
        assert_eq!(t.get(&1), None, "never heard: neither filled nor served");
        t.heard();
        t.fill(t.ticket(), 1, "a");
        assert_eq!(t.get(&1), Some("a"));
        t.deaf();
        assert_eq!(t.get(&1), None, "deaf: nothing served");
        t.heard();
        assert_eq!(t.get(&1), None, "what was held before going deaf is gone");
    }

    #[test]
    fn a_read_that_raced_an_announcement_is_not_kept() {
        let t = tier();
        t.heard();
        let before = t.ticket();
        t.forget(&1); // the announcement arrives while the read is under way
        t.fill(before, 1, "old");
        assert_eq!(t.get(&1), None);
        t.fill(t.ticket(), 1, "new");
        assert_eq!(t.get(&1), Some("new"));
        t.forget(&1);
        assert_eq!(t.get(&1), None);
    }

    #[test]
    fn an_empty_tier_is_off() {
        let t: NearCache<i64, &str> = NearCache::new(0, Duration::from_secs(60));
        t.heard();
        t.fill(t.ticket(), 1, "a");
        assert!(!t.is_serving());
        assert_eq!(t.get(&1), None);
    }
}
