//! The contract's rules for TypeScript clients, `sdk/typescript/src/gen/contract.ts`: the
//! constraints on each field of the gateway's REST schemas (so a form checks what the gateway
//! will check, from the same source) and every lifecycle declared with `x-state-machine` (so a
//! page offers only the transitions the service will accept). openapi-typescript emits types
//! only; these are the values.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::openapi::{self, SchemaDef, TypeRef, Validators};
use crate::{GeneratedFile, Result, layout};

/// Where the module goes.
pub const CONTRACT_TS: &str = "sdk/typescript/src/gen/contract.ts";

/// The contract whose fields the SDK's clients send; the services' contracts add the schemas
/// the gateway passes through (an admin's `ProductInput`, `StockAdjustment`).
const GATEWAY_CONTRACT: &str = "gateway.yaml";

/// One field's rules: only what the contract declares. Typed, and maps sorted, so the output
/// is the same whatever features `serde_json` was built with (`preserve_order` changes how its
/// maps iterate).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FieldRule {
    required: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    format: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    minimum: Option<serde_json::Number>,
    #[serde(skip_serializing_if = "Option::is_none")]
    maximum: Option<serde_json::Number>,
    #[serde(skip_serializing_if = "Option::is_none")]
    min_length: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_length: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pattern: Option<String>,
}

/// A bound as JSON: integral bounds print as integers (`1000`, not `1000.0`).
fn number(n: f64) -> Option<serde_json::Number> {
    if n.fract() == 0.0 {
        Some((n as i64).into())
    } else {
        serde_json::Number::from_f64(n)
    }
}

fn field_rules(ty: &TypeRef, required: bool, v: &Validators) -> FieldRule {
    FieldRule {
        required,
        format: (*ty == TypeRef::Email).then_some("email"),
        minimum: v.minimum.and_then(number),
        maximum: v.maximum.and_then(number),
        min_length: v.min_length,
        max_length: v.max_length,
        pattern: v.pattern.clone(),
    }
}

#[derive(Serialize)]
struct Lifecycle<'a> {
    initial: &'a str,
    transitions: Vec<Move<'a>>,
}

#[derive(Serialize)]
struct Move<'a> {
    from: &'a str,
    to: &'a str,
    on: &'a str,
}

/// `value` as indented JSON.
fn pretty(value: &impl Serialize) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| "{}".to_owned())
}

/// Generates the module from every contract under `root`.
pub fn generate(root: &Path) -> Result<GeneratedFile> {
    let mut fields: BTreeMap<String, BTreeMap<String, FieldRule>> = BTreeMap::new();
    let mut contracts = crate::contracts_in(root, layout::OPENAPI_DIR, "yaml")?;
    // The gateway's schemas first: a name it shares with a service's contract is the gateway's.
    contracts.sort_by_key(|rel| rel.file_name().is_none_or(|n| n != GATEWAY_CONTRACT));
    let mut apis = Vec::new();
    for rel in contracts {
        apis.push(openapi::parse(&rel, &crate::read_contract(root, &rel)?)?);
    }
    let mut lifecycles = BTreeMap::new();
    for schema in apis.iter().flat_map(|api| &api.schemas) {
        match schema {
            SchemaDef::Object {
                name,
                fields: props,
                ..
            } if !fields.contains_key(name) => {
                let rules = props
                    .iter()
                    .map(|f| {
                        let rules = field_rules(&f.ty, f.required, &f.validators);
                        (f.json_name.clone(), rules)
                    })
                    .collect();
                fields.insert(name.clone(), rules);
            }
            SchemaDef::Enum {
                name,
                machine: Some(machine),
                ..
            } => {
                let transitions = machine
                    .transitions
                    .iter()
                    .map(|t| Move {
                        from: &t.from,
                        to: &t.to,
                        on: &t.on,
                    })
                    .collect();
                let lifecycle = Lifecycle {
                    initial: &machine.initial,
                    transitions,
                };
                lifecycles.insert(name.as_str(), lifecycle);
            }
            _ => {}
        }
    }
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
        fields = pretty(&fields),
        lifecycles = pretty(&lifecycles),
    );
    Ok(GeneratedFile::text(CONTRACT_TS, text))
}
