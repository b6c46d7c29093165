//! What deployment descriptions (docker-compose, the Kubernetes manifests) are checked
//! against: the variables each service's config loader really reads, and the ports it listens on.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};

use shopmesh_common::config::Env;
use shopmesh_common::telemetry::TelemetryConfig;

/// Records which variables a config loader asks for.
pub struct RecordingEnv {
    /// The variables set.
    pub values: HashMap<String, String>,
    /// The variables asked for.
    pub read: RefCell<BTreeSet<String>>,
}

impl Env for RecordingEnv {
    fn get(&self, key: &str) -> Option<String> {
        self.read.borrow_mut().insert(key.to_owned());
        self.values.get(key).filter(|v| !v.is_empty()).cloned()
    }
}

/// Loads a service's config from a deployment's environment, returning what it read and its ports.
/// Users refuses to start without a signing key; one is given when the environment has none.
pub fn load(name: &str, mut values: HashMap<String, String>) -> (BTreeSet<String>, Vec<u16>) {
    let keyless = [
        "AUTH_SIGNING_KEY",
        "AUTH_SIGNING_KEY_FILE",
        "AUTH_DEV_KEY_DIR",
    ]
    .iter()
    .all(|k| !values.contains_key(*k));
    if name == "users" && keyless {
        values.insert("AUTH_DEV_KEY_DIR".into(), "target/dev-keys".into());
    }
    let env = RecordingEnv {
        values,
        read: RefCell::default(),
    };
    let ports = match name {
        "users" => vec![
            shopmesh_users::config::UsersConfig::from_env(&env)
                .unwrap()
                .port,
        ],
        "orders" => vec![
            shopmesh_orders::config::OrdersConfig::from_env(&env)
                .unwrap()
                .port,
        ],
        "notifications" => {
            let c = shopmesh_notifications::config::NotificationsConfig::from_env(&env).unwrap();
            vec![c.grpc_port, c.http_port]
        }
        "gateway" => vec![
            shopmesh_gateway::config::GatewayConfig::from_env(&env)
                .unwrap()
                .port,
        ],
        "catalog" => vec![
            shopmesh_catalog::config::CatalogConfig::from_env(&env)
                .unwrap()
                .port,
        ],
        "payments" => vec![
            shopmesh_payments::config::PaymentsConfig::from_env(&env)
                .unwrap()
                .port,
        ],
        // new-service: e2e config
        other => panic!("unknown service {other}"),
    };
    // Every service also reads the shared telemetry settings.
    TelemetryConfig::from_env(name, &env);
    (env.read.into_inner(), ports)
}
