//! The platform as the benchmark and the contract fuzzing run it: the same `Stack` as
//! `cargo xtask up` and the tests, on ports and names of their own.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use shopmesh_stack::{Names, Output, Ports, Processes, Service, Stack};

/// The platform for a benchmark or fuzzing run: ports `base` to `base + 4`, names prefixed
/// with `prefix`, the developer's environment with `mongo_url` and the development identity
/// (demo accounts seeded), quiet logs and a rate limit that never bites.
pub fn stack(
    root: &Path,
    env: &BTreeMap<String, String>,
    base: u16,
    prefix: &str,
    mongo_url: &str,
) -> Stack {
    let mut env = env.clone();
    crate::up::development_identity(root, &mut env);
    Stack::new(env, Ports::from_base(base), Names::prefixed(prefix))
        .set("MONGO_URL", mongo_url)
        .set("RUST_LOG", "warn")
        .set_for(Service::Gateway, "RATE_LIMIT_MAX", "1000000000")
        // The bench and the contract fuzzing drive the store through one caller's token, at
        // the concurrency of many callers.
        .set_for(Service::Notifications, "MONGO_MAX_READS_PER_CALLER", "64")
        .set_for(Service::Users, "SIGNUP_MAX_PER_ADDRESS", "1000000")
}

/// Starts `stack`'s services from `bin_dir`, each ready before the next starts.
pub fn start(stack: &Stack, bin_dir: &Path) -> Result<Processes> {
    stack.spawn(bin_dir, Output::Null, Duration::from_secs(60))
}
