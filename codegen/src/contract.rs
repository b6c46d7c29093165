//! Checks that the OpenAPI document the generated routes derive says the same as the committed
//! contract: same operations, parameters, bodies, response statuses, content types, headers
//! and security requirements, and the same schemas with the same constraints. Cosmetic differences
//! (descriptions, summaries, tags, key order, `1` vs `1.0`, content-type parameters) are
//! ignored.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

/// Parses YAML or JSON into a JSON value.
pub fn load(text: &str) -> Result<Value, String> {
    serde_yaml::from_str::<Value>(text).map_err(|e| format!("not YAML/JSON: {e}"))
}

const SCHEMA_KEYS: [&str; 9] = [
    "type",
    "format",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "enum",
    "default",
];

fn number(v: &Value) -> Value {
    match v.as_f64() {
        Some(f) => json!(f),
        None => v.clone(),
    }
}

/// The meaning of a schema object, without cosmetics.
fn schema_summary(schema: &Value) -> Value {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        return json!({ "$ref": r.rsplit('/').next().unwrap_or(r) });
    }
    if let Some([only]) = schema
        .get("allOf")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
    {
        return schema_summary(only);
    }
    let mut out = Map::new();
    for key in SCHEMA_KEYS {
        if let Some(v) = schema.get(key) {
            let v = match key {
                "minimum" | "maximum" | "minLength" | "maxLength" | "default" => number(v),
                _ => v.clone(),
            };
            out.insert(key.to_owned(), v);
        }
    }
    if let Some(items) = schema.get("items") {
        out.insert("items".into(), schema_summary(items));
    }
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let props: BTreeMap<_, _> = props
            .iter()
            .map(|(k, v)| (k.clone(), json!({ "schema": schema_summary(v), "required": required.contains(&k.as_str()) })))
            .collect();
        out.insert("properties".into(), json!(props));
    }
    Value::Object(out)
}

fn media_summary(content: Option<&Value>) -> Value {
    let Some(content) = content.and_then(Value::as_object) else {
        return Value::Null;
    };
    let media: BTreeMap<_, _> = content
        .iter()
        .map(|(ct, m)| {
            let ct = ct.split(';').next().unwrap_or(ct).trim().to_owned();
            (
                ct,
                m.get("schema").map(schema_summary).unwrap_or(Value::Null),
            )
        })
        .collect();
    json!(media)
}

/// Response headers by lower-case name (HTTP names are case-insensitive), with whether they
/// are required and their schema.
fn headers_summary(doc: &Value, headers: Option<&Value>) -> Value {
    let Some(headers) = headers.and_then(Value::as_object) else {
        return json!({});
    };
    let headers: BTreeMap<_, _> = headers
        .iter()
        .map(|(name, h)| {
            let h = resolve(doc, h);
            (
                name.to_ascii_lowercase(),
                json!({
                    "required": h.get("required").and_then(Value::as_bool).unwrap_or(false),
                    "schema": h.get("schema").map(schema_summary).unwrap_or(Value::Null),
                }),
            )
        })
        .collect();
    json!(headers)
}

fn resolve<'a>(doc: &'a Value, node: &'a Value) -> &'a Value {
    match node
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/"))
    {
        Some(path) => path.split('/').fold(doc, |v, key| &v[key]),
        None => node,
    }
}

/// Reduces an OpenAPI document to what a contract promises.
pub fn summary(doc: &Value) -> Value {
    let mut ops = BTreeMap::new();
    if let Some(paths) = doc.get("paths").and_then(Value::as_object) {
        for (path, item) in paths {
            for method in ["get", "put", "post", "delete", "patch", "head", "options"] {
                let Some(op) = item.get(method) else { continue };
                let mut params: Vec<Value> = op
                    .get("parameters")
                    .and_then(Value::as_array)
                    .map(|ps| {
                        ps.iter()
                            .map(|p| {
                                let p = resolve(doc, p);
                                json!({
                                    "name": p["name"],
                                    "in": p["in"],
                                    "required": p.get("required").and_then(Value::as_bool).unwrap_or(false),
                                    "schema": p.get("schema").map(schema_summary).unwrap_or(Value::Null),
                                })
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                params.sort_by_key(|p| p.to_string());
                let body = op.get("requestBody").map(|b| {
                    let b = resolve(doc, b);
                    json!({
                        "required": b.get("required").and_then(Value::as_bool).unwrap_or(false),
                        "content": media_summary(b.get("content")),
                    })
                });
                let responses: BTreeMap<_, _> = op
                    .get("responses")
                    .and_then(Value::as_object)
                    .map(|rs| {
                        rs.iter()
                            .map(|(status, r)| {
                                let r = resolve(doc, r);
                                (
                                    status.clone(),
                                    json!({
                                        "content": media_summary(r.get("content")),
                                        "headers": headers_summary(doc, r.get("headers")),
                                    }),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                // An operation without `security` and one with `security: []` are both public.
                let mut security: Vec<String> = op
                    .get("security")
                    .and_then(Value::as_array)
                    .map(|reqs| {
                        reqs.iter()
                            .filter_map(Value::as_object)
                            .flat_map(|r| r.keys().cloned())
                            .collect()
                    })
                    .unwrap_or_default();
                security.sort();
                ops.insert(
                    format!("{} {path}", method.to_uppercase()),
                    json!({
                        "operationId": op["operationId"],
                        "security": security,
                        "parameters": params,
                        "requestBody": body,
                        "responses": responses,
                    }),
                );
            }
        }
    }
    let schemas: BTreeMap<_, _> = doc
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .map(|s| {
            s.iter()
                .map(|(k, v)| (k.clone(), schema_summary(v)))
                .collect()
        })
        .unwrap_or_default();
    let schemes: BTreeMap<_, _> = doc
        .pointer("/components/securitySchemes")
        .and_then(Value::as_object)
        .map(|s| {
            s.iter()
                .map(|(k, v)| {
                    let scheme = v.get("scheme").and_then(Value::as_str).map(str::to_lowercase);
                    (
                        k.clone(),
                        json!({ "type": v["type"], "scheme": scheme, "bearerFormat": v["bearerFormat"] }),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    json!({ "operations": ops, "schemas": schemas, "securitySchemes": schemes })
}

/// `Ok` when both documents promise the same; otherwise a line-by-line diff of the summaries.
pub fn assert_equivalent(committed: &str, served: &str) -> Result<(), String> {
    let a = serde_json::to_string_pretty(&summary(&load(committed)?)).map_err(|e| e.to_string())?;
    let b = serde_json::to_string_pretty(&summary(&load(served)?)).map_err(|e| e.to_string())?;
    if a == b {
        return Ok(());
    }
    let diff = similar::TextDiff::from_lines(&a, &b);
    Err(format!(
        "served spec differs from the committed contract (- committed, + served):\n{}",
        diff.unified_diff().context_radius(3)
    ))
}

/// `Ok` when `served` is the committed contract itself (as JSON or YAML, same values, every
/// field: OpenAPI version, servers, descriptions, headers); otherwise a diff.
pub fn assert_served(committed: &str, served: &str) -> Result<(), String> {
    let (committed, served) = (load(committed)?, load(served)?);
    if committed == served {
        return Ok(());
    }
    let a = serde_json::to_string_pretty(&committed).map_err(|e| e.to_string())?;
    let b = serde_json::to_string_pretty(&served).map_err(|e| e.to_string())?;
    let diff = similar::TextDiff::from_lines(&a, &b);
    Err(format!(
        "served spec is not the committed contract (- committed, + served):\n{}",
        diff.unified_diff().context_radius(3)
    ))
}
