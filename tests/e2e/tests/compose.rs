//! docker-compose.yml cannot run here (no Docker engine), so this checks what can be checked
//! without it: every variable compose sets is one the service reads, the values parse, ports
//! agree between compose, the services' config and the README, and start-up waits on health.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_yaml::Value;
use shopmesh_common::telemetry::TelemetryConfig;
use shopmesh_e2e::deployment::{RecordingEnv, load};

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn compose() -> Value {
    serde_yaml::from_str(&std::fs::read_to_string(root().join("docker-compose.yml")).unwrap())
        .unwrap()
}

fn environment(service: &Value) -> HashMap<String, String> {
    service["environment"]
        .as_mapping()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    (
                        k.as_str().unwrap().to_owned(),
                        v.as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| format!("{v:?}")),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn host_ports(service: &Value) -> BTreeSet<u16> {
    service["ports"]
        .as_sequence()
        .map(|ps| {
            ps.iter()
                .map(|p| {
                    p.as_str()
                        .unwrap()
                        .split(':')
                        .next()
                        .unwrap()
                        .parse()
                        .unwrap()
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn every_compose_variable_is_read_by_its_service_and_parses() {
    let doc = compose();
    for name in shopmesh_testkit::Service::ALL.iter().map(|s| s.name()) {
        let service = &doc["services"][name];
        let env = environment(service);
        assert!(!env.is_empty(), "{name} has an environment");
        let (read, ports) = load(name, env.clone());
        for key in env.keys() {
            assert!(
                read.contains(key),
                "docker-compose sets {key} for {name}, but {name} never reads it (reads: {read:?})"
            );
        }
        let published = host_ports(service);
        for port in ports {
            assert!(
                published.contains(&port),
                "{name} listens on {port} but compose publishes {published:?}"
            );
        }
        assert_eq!(
            service["build"]["args"]["SERVICE"].as_str(),
            Some(name),
            "{name} builds its own binary"
        );
    }
}

#[test]
fn gateway_urls_point_at_the_compose_services() {
    let doc = compose();
    let env = environment(&doc["services"]["gateway"]);
    let port_of = |svc: &str, key: &str| environment(&doc["services"][svc])[key].clone();
    assert_eq!(
        env["ORDER_SERVICE_URL"],
        format!("http://orders:{}", port_of("orders", "PORT"))
    );
    assert_eq!(
        env["USER_SERVICE_URL"],
        format!("http://users:{}", port_of("users", "PORT"))
    );
    assert_eq!(
        env["NOTIFICATION_SERVICE_URL"],
        format!(
            "http://notifications:{}",
            port_of("notifications", "GRPC_PORT")
        )
    );
    let redis_password = doc["services"]["redis"]["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect::<Vec<_>>();
    let pw_index = redis_password
        .iter()
        .position(|a| *a == "--requirepass")
        .expect("redis has a password");
    assert_eq!(env["REDIS_PASSWORD"], redis_password[pw_index + 1]);
    assert_eq!(
        environment(&doc["services"]["users"])["REDIS_PASSWORD"],
        redis_password[pw_index + 1]
    );
}

#[test]
fn services_start_only_after_their_dependencies_are_healthy() {
    let doc = compose();
    let services = doc["services"].as_mapping().unwrap();
    for infra in ["mysql", "mongo", "redis", "rabbitmq"] {
        assert!(
            doc["services"][infra]["healthcheck"]["test"].is_sequence(),
            "{infra} has a healthcheck"
        );
        assert!(
            doc["services"][infra]["volumes"].is_sequence(),
            "{infra} keeps its data in a volume"
        );
    }
    let expected: BTreeMap<&str, &[&str]> = BTreeMap::from([
        ("users", &["mysql", "redis"][..]),
        ("orders", &["mysql", "rabbitmq"][..]),
        ("notifications", &["mongo", "rabbitmq"][..]),
        (
            "gateway",
            &["redis", "users", "orders", "notifications"][..],
        ),
    ]);
    for (name, deps) in expected {
        let depends = services[&Value::from(name)]["depends_on"]
            .as_mapping()
            .unwrap();
        for dep in deps {
            assert_eq!(
                depends[&Value::from(*dep)]["condition"].as_str(),
                Some("service_healthy"),
                "{name} waits for {dep}"
            );
        }
    }
    assert_eq!(doc["services"]["mysql"]["image"].as_str(), Some("mysql:8"));
    assert_eq!(doc["services"]["mongo"]["image"].as_str(), Some("mongo:7"));
    assert_eq!(
        doc["services"]["redis"]["image"].as_str(),
        Some("redis:7-alpine")
    );
    assert_eq!(
        doc["services"]["rabbitmq"]["image"].as_str(),
        Some("rabbitmq:3-management")
    );
}

#[test]
fn dockerfile_is_multi_stage_non_root_with_healthcheck() {
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    assert!(dockerfile.matches("\nFROM ").count() >= 3, "multi-stage");
    assert!(
        dockerfile.contains("cargo chef cook"),
        "dependency layer cached"
    );
    assert!(dockerfile.contains("\nUSER 10001"), "non-root");
    assert!(dockerfile.contains("HEALTHCHECK") && dockerfile.contains("\"healthcheck\"]"));
}

#[test]
fn readme_ports_match_compose() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let doc = compose();
    for name in [
        "gateway",
        "users",
        "orders",
        "notifications",
        "mysql",
        "mongo",
        "redis",
        "rabbitmq",
    ] {
        for port in host_ports(&doc["services"][name]) {
            let row = format!("| {name} | {port} |");
            assert!(readme.contains(&row), "README lacks the row `{row}`");
        }
    }
}

#[test]
fn env_example_documents_every_variable_the_services_read() {
    let example = std::fs::read_to_string(root().join(".env.example")).unwrap();
    let documented: BTreeSet<&str> = example
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim()))
        .filter(|k| !k.starts_with('#'))
        .collect();
    let mut read = BTreeSet::new();
    for name in shopmesh_testkit::Service::ALL.iter().map(|s| s.name()) {
        read.extend(load(name, HashMap::new()).0);
    }
    for key in read
        .iter()
        .filter(|k| !["DATABASE_URL", "REDIS_URL", "PORT", "DB_NAME"].contains(&k.as_str()))
    {
        assert!(
            documented.contains(key.as_str()),
            ".env.example does not document {key}"
        );
    }
}

#[test]
fn every_service_sends_its_traces_to_the_compose_jaeger() {
    let doc = compose();
    let jaeger = &doc["services"]["jaeger"];
    assert!(
        host_ports(jaeger).contains(&16686),
        "the Jaeger UI is published"
    );
    let otlp_http = jaeger["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .find_map(|a| a.strip_prefix("receivers.otlp.protocols.http.endpoint="))
        .expect("Jaeger's OTLP/HTTP receiver listens beyond localhost");
    let port = otlp_http.rsplit(':').next().unwrap();
    for name in shopmesh_testkit::Service::ALL.iter().map(|s| s.name()) {
        let env = RecordingEnv {
            values: environment(&doc["services"][name]),
            read: RefCell::default(),
        };
        let telemetry = TelemetryConfig::from_env(name, &env);
        assert_eq!(
            telemetry.traces_endpoint,
            Some(format!("http://jaeger:{port}/v1/traces")),
            "{name}"
        );
        assert_eq!(telemetry.service_name, name);
        assert!(telemetry.json_logs, "{name} logs JSON in containers");
    }
}
