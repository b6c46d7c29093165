//! The contract's rules for TypeScript clients, `sdk/typescript/src/gen/contract.ts`: the
//! constraints on each field of the gateway's REST schemas (so a form checks what the gateway
//! will check, from the same source) and every lifecycle declared with `x-state-machine` (so a
//! page offers only the transitions the service will accept). openapi-typescript emits types
//! only; these are the values.

use std::path::Path;

use serde_json::{Map, Value, json};

use crate::openapi::{self, SchemaDef, TypeRef, Validators};
use crate::{GeneratedFile, Result, layout};

/// Where the module goes.
pub const CONTRACT_TS: &str = "sdk/typescript/src/gen/contract.ts";

/// The contract whose fields the SDK's clients send; the services' contracts add the schemas
/// the gateway passes through (an admin's `ProductInput`, `StockAdjustment`).
const GATEWAY_CONTRACT: &str = "gateway.yaml";

/// One field's rules, as JSON: only what the contract declares.
fn field_rules(ty: &TypeRef, required: bool, v: &Validators) -> Value {
    let mut rules = Map::new();
    rules.insert("required".into(), required.into());
    if *ty == TypeRef::Email {
        rules.insert("format".into(), "email".into());
    }
    let numbers = [("minimum", v.minimum), ("maximum", v.maximum)];
    for (key, n) in numbers.into_iter().filter_map(|(k, n)| Some((k, n?))) {
        // Integral bounds print as integers (`1000`, not `1000.0`).
        let n = if n.fract() == 0.0 {
            json!(n as i64)
        } else {
            json!(n)
        };
        rules.insert(key.into(), n);
    }
    let lengths = [("minLength", v.min_length), ("maxLength", v.max_length)];
    for (key, n) in lengths.into_iter().filter_map(|(k, n)| Some((k, n?))) {
        rules.insert(key.into(), n.into());
    }
    if let Some(p) = &v.pattern {
        rules.insert("pattern".into(), p.as_str().into());
    }
    Value::Object(rules)
}

/// Generates the module from every contract under `root`.
pub fn generate(root: &Path) -> Result<GeneratedFile> {
    let mut fields = Map::new();
    let mut lifecycles = Map::new();
    let mut contracts = crate::contracts_in(root, layout::OPENAPI_DIR, "yaml")?;
    // The gateway's schemas first: a name it shares with a service's contract is the gateway's.
    contracts.sort_by_key(|rel| rel.file_name().is_none_or(|n| n != GATEWAY_CONTRACT));
    for rel in contracts {
        let api = openapi::parse(&rel, &crate::read_contract(root, &rel)?)?;
        for schema in &api.schemas {
            match schema {
                SchemaDef::Object {
                    name,
                    fields: props,
                    ..
                } if !fields.contains_key(name) => {
                    let rules: Map<String, Value> = props
                        .iter()
                        .map(|f| {
                            let rules = field_rules(&f.ty, f.required, &f.validators);
                            (f.json_name.clone(), rules)
                        })
                        .collect();
                    fields.insert(name.clone(), Value::Object(rules));
                }
                SchemaDef::Enum {
                    name,
                    machine: Some(machine),
                    ..
                } => {
                    let transitions: Vec<Value> = machine
                        .transitions
                        .iter()
                        .map(|t| json!({"from": t.from, "to": t.to, "on": t.on}))
                        .collect();
                    let lifecycle = json!({"initial": machine.initial, "transitions": transitions});
                    lifecycles.insert(name.clone(), lifecycle);
                }
                _ => {}
            }
        }
    }
    let pretty = |v: Map<String, Value>| {
        serde_json::to_string_pretty(&Value::Object(v)).unwrap_or_else(|_| "{}".to_owned())
    };
    let text = format!(
        "{header}\
/** What the gateway's REST contract declares about one field of a request or response body. */
export interface FieldRule {{
  readonly required: boolean;
  readonly format?: \"email\";
  readonly minimum?: number;
  readonly maximum?: number;
  readonly minLength?: number;
  readonly maxLength?: number;
  readonly pattern?: string;
}}

/**
 * The rules of every field of every schema of `schema/openapi/`, by schema and field: the
 * gateway's (`gateway.yaml`), then the services' schemas the gateway does not name itself.
 */
export const fieldRules = {fields} as const satisfies Record<string, Record<string, FieldRule>>;

/** A lifecycle a contract declares with `x-state-machine`: where it starts and every allowed move. */
export interface Lifecycle {{
  readonly initial: string;
  readonly transitions: ReadonlyArray<{{ readonly from: string; readonly to: string; readonly on: string }}>;
}}

/** Every lifecycle of `schema/openapi/`, by the enum's name (`OrderStatus`: an order's). */
export const lifecycles = {lifecycles} as const satisfies Record<string, Lifecycle>;

/**
 * Whether `lifecycle` allows moving from `from` to `to`. States compare case-insensitively, so
 * GraphQL's `CANCELLED` and REST's `cancelled` are the same state.
 */
export function canMove(lifecycle: Lifecycle, from: string, to: string): boolean {{
  const f = from.toLowerCase();
  const t = to.toLowerCase();
  return lifecycle.transitions.some((m) => m.from === f && m.to === t);
}}
",
        header = crate::header(layout::OPENAPI_DIR),
        fields = pretty(fields),
        lifecycles = pretty(lifecycles),
    );
    Ok(GeneratedFile::text(CONTRACT_TS, text))
}
