//! The Kubernetes manifests (`deploy/k8s`) cannot be applied here (no cluster), so this checks
//! what can be checked without one, on the manifests `kubectl kustomize` renders for each
//! overlay: every variable they set is one the service reads and parses, ports, probes and
//! Service names agree with the services' config, pods are locked down, production scales
//! and survives disruptions, and the README says how to deploy. `cargo xtask lint` validates
//! the same renders against the Kubernetes API schemas.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::Command;

use base64::Engine;
use serde::Deserialize;
use serde_yaml::Value;
use shopmesh_e2e::deployment::load;

/// Every service of the platform, as the Stack declares them.
fn services() -> Vec<&'static str> {
    shopmesh_testkit::Service::ALL
        .iter()
        .map(|s| s.name())
        .collect()
}

fn root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The objects `kubectl kustomize deploy/k8s/overlays/<overlay>` renders.
fn render(overlay: &str) -> Vec<Value> {
    let dir = root().join("deploy/k8s/overlays").join(overlay);
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(&dir)
        .output()
        .expect("kubectl (with Kustomize) is on the machine image");
    assert!(
        out.status.success(),
        "kubectl kustomize {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_yaml::Deserializer::from_slice(&out.stdout)
        .map(|doc| Value::deserialize(doc).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

fn named<'a>(objects: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn str_map(v: &Value) -> BTreeMap<String, String> {
    v.as_mapping()
        .map(|m| {
            m.iter()
                .map(|(k, v)| {
                    let v = v
                        .as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| format!("{v:?}"));
                    (k.as_str().unwrap().to_owned(), v)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The environment a Deployment's container gets: its ConfigMaps and Secrets (`envFrom`),
/// then its own `env`. A Secret the overlay does not render (production creates its own) is
/// read from the dev overlay, whose generated Secrets document the same keys.
fn container_env(objects: &[Value], dev: &[Value], container: &Value) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for source in container["envFrom"].as_sequence().unwrap() {
        if let Some(name) = source["configMapRef"]["name"].as_str() {
            env.extend(str_map(&named(objects, "ConfigMap", name)["data"]));
        }
        if let Some(name) = source["secretRef"]["name"].as_str() {
            // Generated Secrets carry a content hash after their name.
            let hashed = format!("{name}-");
            let secret = objects
                .iter()
                .chain(dev)
                .filter(|o| o["kind"] == "Secret")
                .find(|o| {
                    let n = o["metadata"]["name"].as_str().unwrap();
                    n == name || n.strip_prefix(&hashed).is_some_and(|h| !h.contains('-'))
                })
                .unwrap_or_else(|| panic!("no Secret {name} in this overlay or dev"));
            for (k, v) in str_map(&secret["data"]) {
                let bytes = base64::engine::general_purpose::STANDARD.decode(v).unwrap();
                env.insert(k, String::from_utf8(bytes).unwrap());
            }
        }
    }
    for var in container["env"].as_sequence().into_iter().flatten() {
        env.insert(
            var["name"].as_str().unwrap().to_owned(),
            var["value"].as_str().unwrap_or_default().to_owned(),
        );
    }
    env
}

fn container<'a>(objects: &'a [Value], service: &str) -> &'a Value {
    &named(objects, "Deployment", service)["spec"]["template"]["spec"]["containers"][0]
}

/// Named container ports: name → number.
fn container_ports(container: &Value) -> BTreeMap<String, u16> {
    container["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_owned(),
                p["containerPort"].as_u64().unwrap() as u16,
            )
        })
        .collect()
}

/// The users service reads its signing key at start; the test gives it a real key file in
/// place of the mounted Secret, after checking the path lies in the Secret's mount.
fn with_real_key_file(
    service: &str,
    container: &Value,
    env: &mut HashMap<String, String>,
    dir: &std::path::Path,
) {
    let Some(path) = env.get("AUTH_SIGNING_KEY_FILE").cloned() else {
        return;
    };
    assert_eq!(service, "users", "only users signs tokens");
    let mounted = container["volumeMounts"]
        .as_sequence()
        .unwrap()
        .iter()
        .filter_map(|m| m["mountPath"].as_str())
        .any(|mount| path.starts_with(&format!("{mount}/")));
    assert!(mounted, "{path} is inside a mounted volume");
    let file = dir.join("signing-key.pem");
    std::fs::write(&file, shopmesh_identity::SigningKey::generate().to_pem()).unwrap();
    env.insert(
        "AUTH_SIGNING_KEY_FILE".into(),
        file.to_string_lossy().into_owned(),
    );
}

#[test]
fn every_variable_the_manifests_set_is_read_by_its_service_and_parses() {
    let dev = render("dev");
    let keys = std::env::temp_dir().join(format!("k8s-keys-{}", std::process::id()));
    std::fs::create_dir_all(&keys).unwrap();
    for overlay in ["dev", "production"] {
        let objects = render(overlay);
        for service in services() {
            let c = container(&objects, service);
            let mut env: HashMap<String, String> =
                container_env(&objects, &dev, c).into_iter().collect();
            with_real_key_file(service, c, &mut env, &keys);
            let (read, ports) = load(service, env.clone());
            for key in env.keys() {
                assert!(
                    read.contains(key),
                    "{overlay}: {service} is given {key}, but never reads it"
                );
            }
            let declared = container_ports(c);
            for port in ports {
                assert!(
                    declared.values().any(|p| *p == port),
                    "{overlay}: {service} listens on {port}, the container declares {declared:?}"
                );
            }
            if let Some(metrics) = env.get("METRICS_PORT") {
                assert_eq!(
                    declared.get("metrics").map(u16::to_string).as_deref(),
                    Some(metrics.as_str()),
                    "{overlay}: {service}'s metrics port"
                );
            }
        }
    }
}

#[test]
fn probes_ports_and_service_names_agree_with_the_code() {
    for overlay in ["dev", "production"] {
        let objects = render(overlay);
        for service in services() {
            let c = container(&objects, service);
            let ports = container_ports(c);
            for (probe, path) in [
                ("startupProbe", "/health/live"),
                ("livenessProbe", "/health/live"),
                ("readinessProbe", "/health/ready"),
            ] {
                let p = &c[probe];
                if service == "notifications" && probe == "readinessProbe" {
                    // gRPC health: SERVING only while MongoDB and the consumer are up.
                    let env =
                        str_map(&named(&objects, "ConfigMap", "notifications-config")["data"]);
                    assert_eq!(
                        p["grpc"]["port"].as_u64().map(|p| p.to_string()),
                        env.get("GRPC_PORT").cloned(),
                        "{overlay}: notifications' readiness asks gRPC health"
                    );
                    continue;
                }
                assert_eq!(p["httpGet"]["path"], path, "{overlay}: {service} {probe}");
                let port = p["httpGet"]["port"].as_str().unwrap();
                assert!(ports.contains_key(port), "{service} {probe} port {port}");
            }
            let startup = &c["startupProbe"];
            let allowed = startup["periodSeconds"].as_u64().unwrap()
                * startup["failureThreshold"].as_u64().unwrap();
            assert!(allowed >= 60, "{service}: start-up may take a minute");
            // The Service of the same name exposes the container's named ports.
            let svc = named(&objects, "Service", service);
            for p in svc["spec"]["ports"].as_sequence().unwrap() {
                let target = p["targetPort"].as_str().unwrap();
                assert_eq!(
                    Some(&(p["port"].as_u64().unwrap() as u16)),
                    ports.get(target),
                    "{overlay}: Service {service} port {target}"
                );
            }
            assert_eq!(
                svc["spec"]["selector"]["app.kubernetes.io/name"], service,
                "{overlay}: Service {service} selects its pods"
            );
        }
        // The services reach each other by Service name and port.
        let gateway = str_map(&named(&objects, "ConfigMap", "gateway-config")["data"]);
        let port = |s: &str, key: &str| {
            str_map(&named(&objects, "ConfigMap", &format!("{s}-config"))["data"])[key].clone()
        };
        assert_eq!(
            gateway["USER_SERVICE_URL"],
            format!("http://users:{}", port("users", "PORT"))
        );
        assert_eq!(
            gateway["ORDER_SERVICE_URL"],
            format!("http://orders:{}", port("orders", "PORT"))
        );
        assert_eq!(
            gateway["NOTIFICATION_SERVICE_URL"],
            format!(
                "http://notifications:{}",
                port("notifications", "GRPC_PORT")
            )
        );
        for s in ["orders", "notifications", "gateway"] {
            assert_eq!(
                port(s, "AUTH_JWKS_URL"),
                format!(
                    "http://users:{}/.well-known/jwks.json",
                    port("users", "PORT")
                ),
                "{s} verifies tokens against the users service's keys"
            );
        }
        // orders and notifications declare order.created alike.
        assert_eq!(
            port("orders", "RABBITMQ_QUEUE_TYPE"),
            port("notifications", "RABBITMQ_QUEUE_TYPE")
        );
    }
}

#[test]
fn pods_run_non_root_read_only_without_capabilities_and_drain_before_stopping() {
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    for overlay in ["dev", "production"] {
        let objects = render(overlay);
        for service in services() {
            let pod = &named(&objects, "Deployment", service)["spec"]["template"]["spec"];
            let c = &pod["containers"][0];
            assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{service}");
            let uid = pod["securityContext"]["runAsUser"].as_u64().unwrap();
            assert!(
                dockerfile.contains(&format!("USER {uid}")),
                "{service} runs as the image's user {uid}"
            );
            assert_eq!(pod["automountServiceAccountToken"], false, "{service}");
            assert_eq!(pod["serviceAccountName"], service);
            let sc = &c["securityContext"];
            assert_eq!(sc["readOnlyRootFilesystem"], true, "{service}");
            assert_eq!(sc["allowPrivilegeEscalation"], false, "{service}");
            assert_eq!(sc["capabilities"]["drop"][0], "ALL", "{service}");
            assert!(
                c["image"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("shopmesh/{service}:")),
                "{service} runs its own image, tagged"
            );
            // preStop lets endpoints drop the pod before SIGTERM; the grace period covers it
            // plus the drain (requests finish, keep-alive connections close within 2 s, the
            // relay and consumer settle what they hold).
            let pre_stop = c["lifecycle"]["preStop"]["exec"]["command"]
                .as_sequence()
                .unwrap();
            let sleep: u64 = pre_stop[1].as_str().unwrap().parse().unwrap();
            let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap();
            assert!(
                grace >= sleep + 20,
                "{service}: {grace} s grace after {sleep} s"
            );
            let resources = &c["resources"];
            for (kind, what) in [
                ("requests", "cpu"),
                ("requests", "memory"),
                ("limits", "memory"),
            ] {
                assert!(
                    resources[kind][what].is_string(),
                    "{overlay}: {service} has {kind}.{what}"
                );
            }
        }
    }
}

#[test]
fn production_scales_spreads_keeps_replicas_and_commits_no_secret() {
    let objects = render("production");
    assert!(
        of_kind(&objects, "Secret").is_empty(),
        "production references Secrets created outside the repository"
    );
    let hpas: BTreeSet<&str> = of_kind(&objects, "HorizontalPodAutoscaler")
        .iter()
        .map(|h| {
            assert_eq!(h["spec"]["scaleTargetRef"]["kind"], "Deployment");
            assert_eq!(h["spec"]["metrics"][0]["resource"]["name"], "cpu");
            assert!(h["spec"]["minReplicas"].as_u64().unwrap() >= 2);
            h["spec"]["scaleTargetRef"]["name"].as_str().unwrap()
        })
        .collect();
    // Every service scales on CPU but notifications, whose replicas follow its queue (KEDA).
    let http: BTreeSet<&str> = shopmesh_testkit::Service::ALL
        .iter()
        .map(|s| s.name())
        .filter(|name| *name != "notifications")
        .collect();
    assert_eq!(hpas, http);
    let budgets: BTreeSet<&str> = of_kind(&objects, "PodDisruptionBudget")
        .iter()
        .map(|p| {
            p["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(budgets, services().into_iter().collect());
    for service in services() {
        let d = named(&objects, "Deployment", service);
        assert!(d["spec"]["replicas"].as_u64().unwrap() >= 2, "{service}");
        let spread = d["spec"]["template"]["spec"]["topologySpreadConstraints"]
            .as_sequence()
            .unwrap();
        let keys: Vec<&str> = spread
            .iter()
            .map(|s| s["topologyKey"].as_str().unwrap())
            .collect();
        assert_eq!(
            keys,
            ["kubernetes.io/hostname", "topology.kubernetes.io/zone"],
            "{service}"
        );
    }
    // The namespace enforces the restricted Pod Security Standard.
    let ns = &of_kind(&objects, "Namespace")[0];
    assert_eq!(
        ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
}

/// Who may reach each pod, per NetworkPolicy: the `app.kubernetes.io/name` of the pods each
/// policy lets in (`*` for a namespace selector).
fn allowed_peers(objects: &[Value]) -> BTreeMap<String, BTreeSet<String>> {
    let mut peers = BTreeMap::new();
    for policy in of_kind(objects, "NetworkPolicy") {
        let Some(target) =
            policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"].as_str()
        else {
            assert!(
                policy["spec"]["podSelector"]
                    .as_mapping()
                    .is_some_and(|m| m.is_empty())
                    && policy["spec"]["ingress"].is_null(),
                "the only policy for all pods denies all ingress"
            );
            continue;
        };
        let set: &mut BTreeSet<String> = peers.entry(target.to_owned()).or_default();
        for rule in policy["spec"]["ingress"].as_sequence().unwrap() {
            for from in rule["from"].as_sequence().unwrap() {
                let name = from["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
                    .as_str()
                    .unwrap_or("*");
                set.insert(name.to_owned());
            }
        }
    }
    peers
}

#[test]
fn network_policies_let_only_the_owners_reach_each_service_and_store() {
    for overlay in ["dev", "production"] {
        let peers = allowed_peers(&render(overlay));
        let expect = |target: &str, from: &[&str]| {
            assert_eq!(
                peers.get(target).cloned().unwrap_or_default(),
                from.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>(),
                "{overlay}: who reaches {target}"
            );
        };
        // `prometheus` is Prometheus' pods in the monitoring namespace; `*` the ingress
        // controller's namespace.
        expect("gateway", &["*", "prometheus"]);
        expect(
            "users",
            &[
                "gateway",
                "orders",
                "notifications",
                "catalog",
                "payments",
                "prometheus",
            ],
        );
        expect("orders", &["gateway", "prometheus"]);
        expect("catalog", &["gateway", "orders", "prometheus"]);
        expect("payments", &["orders", "prometheus"]);
        expect("notifications", &["gateway", "prometheus"]);
        expect("mysql", &["users", "orders", "catalog", "payments"]);
        expect("redis", &["users", "orders", "gateway", "catalog"]);
        expect("rabbitmq", &["orders", "notifications"]);
        expect("mongo", &["notifications"]);
    }
}

#[test]
fn the_dev_overlay_runs_its_stores_and_the_compose_database_setup() {
    let objects = render("dev");
    for store in ["mysql", "redis", "rabbitmq", "mongo"] {
        let set = named(&objects, "StatefulSet", store);
        assert!(
            set["spec"]["volumeClaimTemplates"].is_sequence(),
            "{store} keeps its data"
        );
        named(&objects, "Service", store);
    }
    let init = named(&objects, "ConfigMap", "mysql-init")["data"]["init.sql"]
        .as_str()
        .unwrap()
        .to_owned();
    let compose_init = std::fs::read_to_string(root().join("docker/mysql/init.sql")).unwrap();
    assert_eq!(
        init, compose_init,
        "the same databases and grants as compose"
    );
    let users = str_map(&named(&objects, "ConfigMap", "users-config")["data"]);
    assert_eq!(users["DEMO_SEED"], "true");
    for service in services() {
        assert_eq!(
            named(&objects, "Deployment", service)["spec"]["replicas"],
            1,
            "{service}"
        );
    }
}

#[test]
fn readme_explains_deploying_to_kubernetes() {
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let section = readme
        .split("## Deploying to Kubernetes")
        .nth(1)
        .expect("README has a Deploying to Kubernetes section");
    let section = section.split("\n## ").next().unwrap();
    for needle in [
        "kubectl apply -k deploy/k8s/overlays/dev",
        "kubectl apply -k deploy/k8s/overlays/production",
        "users-secrets",
        "orders-secrets",
        "notifications-secrets",
        "gateway-secrets",
        "users-signing-key",
        "HorizontalPodAutoscaler",
        "KEDA",
        "migrations",
    ] {
        assert!(section.contains(needle), "the section mentions {needle}");
    }
}

/// Every file under `deploy/` that the deployment files (and docker-compose) cite exists.
#[test]
fn every_file_the_manifests_cite_exists() {
    let mut cited = BTreeSet::new();
    let mut pending = vec![root().join("deploy"), root().join("docker-compose.yml")];
    while let Some(path) = pending.pop() {
        if path.is_dir() {
            for entry in std::fs::read_dir(&path).unwrap() {
                pending.push(entry.unwrap().path());
            }
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        for word in text.split(|c: char| c.is_whitespace() || "()`,;:'\"".contains(c)) {
            let word = word.trim_start_matches("./").trim_end_matches('.');
            if word.starts_with("deploy/") && word.contains('.') {
                cited.insert((word.to_owned(), path.clone()));
            }
        }
    }
    assert!(!cited.is_empty(), "the scan finds the citations");
    for (file, by) in &cited {
        assert!(
            root().join(file).exists(),
            "{} cites {file}, which does not exist",
            by.display()
        );
    }
}
