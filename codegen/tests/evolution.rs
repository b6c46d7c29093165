//! The contract evolution gates against fixture pairs: each case under
//! `tests/fixtures/evolution/<kind>/<case>/` holds `new.*` (and `old.*`, or the kind's `base.*`)
//! and `expect.txt`, one line per expected finding (`<severity> <location> <message part>`),
//! empty for a compatible change.

use std::path::{Path, PathBuf};

use shopmesh_codegen::contract::load;
use shopmesh_codegen::evolution::{self, Finding, Overrides, Severity};

fn fixtures(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/evolution")
        .join(kind)
}

fn read(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    load(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A JSON or YAML contract's diff, over files.
fn over_files(
    diff: fn(&str, &serde_json::Value, &serde_json::Value) -> Vec<Finding>,
) -> impl Fn(&Path, &Path) -> Vec<Finding> {
    move |old, new| diff("fixture", &read(old), &read(new))
}

/// graphql-inspector's diff through `xtask/node` (installed by `cargo xtask test` and `lint`).
fn graphql_diff(old: &Path, new: &Path) -> Vec<Finding> {
    let changes =
        serde_json::from_value(graphql_contract(&[Path::new("diff"), old, new])).expect("changes");
    evolution::graphql::findings("fixture", changes).0
}

/// `node xtask/node/graphql-contract.mjs ARGS`, parsed.
fn graphql_contract(args: &[&Path]) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../xtask/node/graphql-contract.mjs");
    let out = std::process::Command::new("node")
        .arg(&script)
        .args(args)
        .output()
        .expect("node runs");
    assert!(
        out.status.success(),
        "{} failed (run `npm ci --prefix xtask/node`): {}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

/// Runs `diff` over every case of `kind`, checking its findings against `expect.txt`.
fn check_cases(kind: &str, ext: &str, diff: impl Fn(&Path, &Path) -> Vec<Finding>) -> usize {
    let dir = fixtures(kind);
    let base = dir.join(format!("base.{ext}"));
    let mut cases = 0;
    let mut failures = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("fixture dir") {
        let case = entry.expect("entry").path();
        if !case.is_dir() {
            continue;
        }
        cases += 1;
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let old_path = case.join(format!("old.{ext}"));
        let old = if old_path.exists() { &old_path } else { &base };
        let findings = diff(old, &case.join(format!("new.{ext}")));
        let expected: Vec<String> = std::fs::read_to_string(case.join("expect.txt"))
            .expect("expect.txt")
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(str::to_owned)
            .collect();
        let shown: Vec<String> = findings.iter().map(ToString::to_string).collect();
        if findings.len() != expected.len() {
            failures.push(format!(
                "{name}: expected {} finding(s), got {shown:#?}",
                expected.len()
            ));
            continue;
        }
        for line in &expected {
            let mut parts = line.splitn(3, ' ');
            let (severity, location, message) = (
                parts.next().unwrap(),
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
            );
            let severity = match severity {
                "breaking" => Severity::Breaking,
                "deprecated" => Severity::Deprecated,
                other => panic!("{name}: unknown severity {other}"),
            };
            let found = findings.iter().any(|f| {
                f.severity == severity && f.location == location && f.message.contains(message)
            });
            if !found {
                failures.push(format!("{name}: no finding `{line}` among {shown:#?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    cases
}

#[test]
fn openapi_gate_catches_each_breaking_change_and_passes_compatible_ones() {
    let cases = check_cases("openapi", "yaml", over_files(evolution::openapi::diff));
    assert!(cases >= 13, "only {cases} OpenAPI cases ran");
}

#[test]
fn event_gate_allows_only_new_optional_fields_on_open_schemas() {
    let cases = check_cases("events", "json", over_files(evolution::events::diff));
    assert!(cases >= 7, "only {cases} event cases ran");
}

#[test]
fn graphql_gate_catches_removals_new_requirements_and_type_changes() {
    let cases = check_cases("graphql", "graphql", graphql_diff);
    assert!(cases >= 8, "only {cases} GraphQL cases ran");
}

#[test]
fn the_committed_contracts_are_compatible_with_themselves() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    for name in ["gateway", "users", "orders"] {
        let doc = read(&root.join(format!("schema/openapi/{name}.yaml")));
        assert_eq!(evolution::openapi::diff(name, &doc, &doc), vec![]);
    }
    let event = read(&root.join("schema/events/order-created.v1.json"));
    assert_eq!(evolution::events::diff("event", &event, &event), vec![]);
}

#[test]
fn breaking_md_covers_only_the_entries_a_change_adds() {
    let finding = Finding {
        contract: "schema/openapi/orders.yaml".into(),
        location: "/paths/~1orders~1{id}".into(),
        severity: Severity::Breaking,
        message: "path removed".into(),
    };
    let entry =
        "- `schema/openapi/orders.yaml#/paths/~1orders~1{id}`: replaced by /v2/orders/{id}.\n";
    assert!(Overrides::added(entry, "").covers(&finding));
    assert!(
        !Overrides::added(entry, entry).covers(&finding),
        "an entry already in the base must not cover a new break"
    );
    assert!(
        !Overrides::added(
            "- `schema/openapi/orders.yaml#/paths/~1orders`: other\n",
            ""
        )
        .covers(&finding)
    );
}

/// `buf` as `cargo xtask lint` installs it.
fn buf() -> PathBuf {
    let bin = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.tools/node/node_modules/.bin/buf");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo xtask lint` (it installs buf)",
        bin.display()
    );
    bin
}

#[test]
fn proto_gate_is_buf_breaking_at_wire_json_or_stricter() {
    // The project's own rules: FILE, PACKAGE or WIRE_JSON (each includes WIRE_JSON's checks).
    let config: serde_json::Value = load(
        &std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../buf.yaml"))
            .unwrap(),
    )
    .unwrap();
    let rules = config["breaking"]["use"].as_array().expect("breaking.use");
    assert!(
        rules
            .iter()
            .any(|r| ["FILE", "PACKAGE", "WIRE_JSON"].contains(&r.as_str().unwrap_or(""))),
        "buf.yaml's breaking rules must be WIRE_JSON or stricter: {rules:?}"
    );

    let dir = fixtures("proto");
    let mut cases = 0;
    for entry in std::fs::read_dir(&dir).expect("fixture dir") {
        let case = entry.expect("entry").path();
        if !case.join("new").is_dir() {
            continue;
        }
        cases += 1;
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let out = std::process::Command::new(buf())
            .args(["breaking", ".", "--against", "../../base"])
            .current_dir(case.join("new"))
            .output()
            .expect("buf runs");
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let expected = std::fs::read_to_string(case.join("expect.txt")).expect("expect.txt");
        let expected: Vec<&str> = expected.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(
            out.status.success(),
            expected.is_empty(),
            "{name}: buf breaking printed:\n{printed}"
        );
        for line in expected {
            assert!(printed.contains(line), "{name}: no `{line}` in:\n{printed}");
        }
    }
    assert!(cases >= 6, "only {cases} proto cases ran");
}

#[test]
fn an_operation_that_no_longer_validates_is_named_with_its_line() {
    let schema = fixtures("graphql").join("base.graphql");
    let ops = fixtures("graphql-operations");
    let valid = graphql_contract(&[Path::new("validate"), &schema, &ops.join("valid.graphql")]);
    assert_eq!(valid, serde_json::json!([]));
    let invalid = graphql_contract(&[Path::new("validate"), &schema, &ops.join("invalid.graphql")]);
    let errors = invalid.as_array().expect("errors");
    assert_eq!(errors.len(), 1, "{invalid:#}");
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .contains("Cannot query field \"notes\" on type \"Order\""),
        "{invalid:#}"
    );
    assert_eq!(errors[0]["location"], "6:5", "{invalid:#}");

    // The SDK's own operations validate against the gateway's contract.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut docs = vec![
        Path::new("validate").to_path_buf(),
        root.join("schema/graphql/gateway.graphql"),
    ];
    for entry in std::fs::read_dir(root.join("schema/graphql/operations")).unwrap() {
        docs.push(entry.unwrap().path());
    }
    let args: Vec<&Path> = docs.iter().map(PathBuf::as_path).collect();
    assert_eq!(graphql_contract(&args), serde_json::json!([]));
}
