//! RedisCache against a real Redis, and against an address where nothing listens.
#![cfg(feature = "cache")]

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use shopmesh_common::cache::RedisCache;
use shopmesh_testkit::{TcpProxy, eventually, redis_url, reroute, unique};

#[tokio::test]
async fn versioned_writes_never_go_back_in_time() {
    let cache = RedisCache::new(&redis_url(), Duration::from_millis(500)).unwrap();
    let key = unique("test:user");
    assert!(
        cache
            .set_versioned(&key, 2, "v2", Duration::from_secs(30))
            .await
    );
    assert!(
        !cache
            .set_versioned(&key, 1, "stale", Duration::from_secs(30))
            .await,
        "older version refused"
    );
    assert!(
        !cache
            .set_versioned(&key, 2, "same", Duration::from_secs(30))
            .await,
        "same version refused"
    );
    assert_eq!(cache.get_versioned(&key).await.as_deref(), Some("v2"));
    assert!(
        cache
            .set_versioned(&key, 3, "v3:with:colons", Duration::from_secs(30))
            .await
    );
    assert_eq!(
        cache.get_versioned(&key).await.as_deref(),
        Some("v3:with:colons")
    );
    let ttl: i64 = cache.run(redis::cmd("TTL").arg(&key)).await.unwrap();
    assert!((1..=30).contains(&ttl), "ttl {ttl}");
    cache.delete(&key).await;
    assert_eq!(cache.get(&key).await, None);
    assert!(cache.stats().hits.load(Ordering::Relaxed) >= 2);
    assert!(cache.stats().misses.load(Ordering::Relaxed) >= 1);
}

#[tokio::test]
async fn unreachable_redis_is_a_fast_miss_not_an_error() {
    let cache = RedisCache::new("redis://127.0.0.1:1/", Duration::from_millis(200)).unwrap();
    let start = Instant::now();
    assert_eq!(cache.get("k").await, None);
    cache.set("k", "v", Duration::from_secs(5)).await;
    assert!(
        !cache
            .set_versioned("k", 1, "v", Duration::from_secs(5))
            .await
    );
    assert!(cache.ping().await.is_err());
    assert!(!cache.is_up());
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "fails fast: {:?}",
        start.elapsed()
    );
    assert!(cache.stats().errors.load(Ordering::Relaxed) >= 1);
}

/// A hung Redis (accepts, never answers) costs one timeout, not one per call: after the first
/// failure calls skip Redis until a background probe finds it back, and then hits resume.
#[tokio::test]
async fn hung_redis_trips_the_breaker_and_hits_resume_when_it_returns() {
    let target = shopmesh_testkit::stack::authority(&redis_url()).unwrap();
    let proxy = TcpProxy::start(&target).await;
    let (_, url) = reroute(&redis_url(), &proxy.addr.to_string());
    let cache = RedisCache::new(&url, Duration::from_millis(200)).unwrap();
    let key = unique("test:breaker");
    cache.set(&key, "v", Duration::from_secs(60)).await;
    assert_eq!(cache.get(&key).await.as_deref(), Some("v"));

    proxy.hang();
    assert_eq!(cache.get(&key).await, None, "a hung Redis is a miss");
    let errors = cache.stats().errors.load(Ordering::Relaxed);
    for _ in 0..50 {
        assert_eq!(cache.get(&key).await, None);
    }
    let waited = cache.stats().errors.load(Ordering::Relaxed) - errors;
    assert_eq!(
        waited, 0,
        "calls while the breaker is open never wait on Redis"
    );
    assert!(cache.stats().bypassed.load(Ordering::Relaxed) >= 50);
    assert!(!cache.is_up());

    proxy.restore();
    eventually(
        "cache hits after Redis returns",
        Duration::from_secs(3),
        || async { (cache.get(&key).await.as_deref() == Some("v")).then_some(()) },
    )
    .await;
    assert!(cache.is_up());
}
