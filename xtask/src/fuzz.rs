//! Contract fuzzing with schemathesis (from PyPI): every service's served OpenAPI spec is
//! fuzzed against the running service; no request may get a 5xx or a response that breaks the
//! spec (status, content type, body schema, headers).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use anyhow::Result;

use shopmesh_stack::Service;

use crate::platform::{stack, start};

/// The schemathesis checks that express "no 5xx, nothing outside the spec".
pub const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance";

/// Starts the services from `bin_dir` and fuzzes users, orders, catalog, payments and the
/// gateway's REST API.
pub fn run(
    root: &Path,
    bin_dir: &Path,
    env: &BTreeMap<String, String>,
    mongo_url: &str,
) -> Result<()> {
    let st = crate::tools::schemathesis(root)?;
    // Redis keys of their own each run: fuzzing fails log-ins on purpose, and the lock it earns
    // (up to 15 minutes) must not greet the next run's log-in.
    let stack = stack(root, env, 3200, "fuzz", mongo_url)
        .set("CACHE_PREFIX", format!("fuzz{}:", std::process::id()));
    let _services = start(&stack, bin_dir)?;
    // Fuzzed as the demo admin, so secured operations run their handlers, not only the 401.
    let admin = format!(
        "Authorization: Bearer {}",
        stack.log_in("admin@example.com", "shopmesh-demo")?
    );
    // Reservations and payments are for the orders service: fuzzed with its service token.
    let orders = format!("Authorization: Bearer {}", stack.service_token("orders")?);
    let catalog = stack.url(Service::Catalog);
    let specs = [
        (
            "users",
            "/openapi.json",
            stack.url(Service::Users),
            &admin,
            None,
        ),
        (
            "orders",
            "/openapi.json",
            stack.url(Service::Orders),
            &admin,
            None,
        ),
        (
            "catalog",
            "/openapi.json",
            catalog.clone(),
            &admin,
            Some("--exclude-tag=reservations"),
        ),
        (
            "catalog",
            "/openapi.json",
            catalog,
            &orders,
            Some("--include-tag=reservations"),
        ),
        (
            "payments",
            "/openapi.json",
            stack.url(Service::Payments),
            &orders,
            None,
        ),
        (
            "gateway",
            "/api/openapi.json",
            stack.url(Service::Gateway),
            &admin,
            None,
        ),
    ];
    for (name, spec_path, base, authorization, filter) in specs {
        let spec = format!("{base}{spec_path}");
        println!(
            "fuzz: schemathesis against {name} ({spec}{})",
            filter.map(|f| format!(", {f}")).unwrap_or_default()
        );
        crate::run(
            Command::new(&st)
                .args([
                    "run",
                    &spec,
                    "--url",
                    &base,
                    "--checks",
                    CHECKS,
                    "--max-examples",
                    "30",
                    "--generation-deterministic",
                    "--header",
                    authorization,
                ])
                .args(filter),
        )?;
    }
    Ok(())
}
