//! Every OpenAPI contract shows an example for each request body and each response (errors
//! included), as Swagger UI displays them, and every example in a contract is valid against
//! the schema it illustrates.

use std::path::Path;

use serde_json::{Value, json};
use shopmesh_codegen::contract::load;

const CONTRACTS: [&str; 3] = ["gateway", "users", "orders"];

fn contract(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../schema/openapi/{name}.yaml"));
    load(&std::fs::read_to_string(path).expect("contract")).expect("YAML")
}

/// OpenAPI 3.0's `nullable` as JSON Schema's `type: [T, "null"]`, everywhere.
fn as_json_schema(v: &Value) -> Value {
    match v {
        Value::Object(map) => {
            let mut out: serde_json::Map<String, Value> = map
                .iter()
                .map(|(k, v)| (k.clone(), as_json_schema(v)))
                .collect();
            if out.remove("nullable") == Some(Value::Bool(true))
                && let Some(Value::String(t)) = out.get("type").cloned()
            {
                out.insert("type".into(), json!([t, "null"]));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(as_json_schema).collect()),
        other => other.clone(),
    }
}

/// Every `(example, pointer of the schema it illustrates)` in the document: a schema's own
/// `example`, and a media type's or parameter's `example` for its `schema`.
fn examples(v: &Value, at: &str, out: &mut Vec<(Value, String)>) {
    match v {
        Value::Object(map) => {
            if let Some(example) = map.get("example") {
                let schema_at = if map.contains_key("schema") {
                    format!("{at}/schema")
                } else {
                    at.to_owned()
                };
                out.push((example.clone(), schema_at));
            }
            for (k, child) in map {
                if k != "example" {
                    examples(
                        child,
                        &format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                        out,
                    );
                }
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                examples(child, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

fn resolve<'a>(doc: &'a Value, node: &'a Value) -> &'a Value {
    match node
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix('#'))
    {
        Some(pointer) => resolve(doc, doc.pointer(pointer).expect("local $ref resolves")),
        None => node,
    }
}

#[test]
fn every_example_is_valid_against_its_schema() {
    let mut checked = 0;
    let mut failures = Vec::new();
    for name in CONTRACTS {
        let doc = contract(name);
        let mut found = Vec::new();
        examples(&doc, "", &mut found);
        let schema_doc = as_json_schema(&doc);
        for (example, at) in found {
            let mut root = schema_doc.clone();
            let fragment = at.replace('{', "%7B").replace('}', "%7D");
            root["$ref"] = json!(format!("#{fragment}"));
            let validator = jsonschema::options()
                .should_validate_formats(true)
                .build(&root)
                .unwrap_or_else(|e| panic!("{name}.yaml#{at}: not a schema: {e}"));
            for error in validator.iter_errors(&example) {
                failures.push(format!(
                    "{name}.yaml#{at}: {example} is invalid: {error} at {}",
                    error.instance_path
                ));
            }
            checked += 1;
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked >= 60, "only {checked} examples found");
}

#[test]
fn every_request_body_and_response_shows_an_example() {
    let mut missing = Vec::new();
    for name in CONTRACTS {
        let doc = contract(name);
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, op) in item.as_object().expect("path item") {
                let mut bodies: Vec<(String, &Value)> = Vec::new();
                if let Some(body) = op.get("requestBody") {
                    bodies.push(("request".into(), resolve(&doc, body)));
                }
                for (status, response) in op["responses"].as_object().expect("responses") {
                    bodies.push((status.clone(), resolve(&doc, response)));
                }
                for (what, body) in bodies {
                    for (media, m) in body
                        .get("content")
                        .and_then(Value::as_object)
                        .into_iter()
                        .flatten()
                    {
                        let shown = m.get("example").is_some()
                            || m.get("examples").is_some()
                            || m.get("schema")
                                .is_some_and(|s| resolve(&doc, s).get("example").is_some());
                        if !shown {
                            missing.push(format!("{name}.yaml {method} {path} {what} {media}"));
                        }
                    }
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "no example for:\n{}",
        missing.join("\n")
    );
}
