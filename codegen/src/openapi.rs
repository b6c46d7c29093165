//! OpenAPI 3.0 contracts -> Rust: serde/poem-openapi models, a server trait with typed response
//! enums, a poem-openapi adapter that mounts an implementation, and a typed reqwest client.
//!
//! Supported subset (anything else is an error naming the file and place): object schemas with
//! `required`, string enums, `integer` (int32/int64), `number`, `boolean`, `string` (formats
//! `date-time`, `uuid`, `email`, none), arrays, `$ref` to component schemas and responses;
//! path parameters of integer type, query parameters of scalar type; JSON request bodies;
//! validators `minimum`, `maximum`, `minLength`, `maxLength`, `pattern`, `maxItems`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use heck::{ToSnakeCase, ToUpperCamelCase};
use openapiv3::{
    IntegerFormat, OpenAPI, Parameter, ParameterSchemaOrContent, ReferenceOr, Schema, SchemaKind,
    StatusCode, StringFormat, Type, VariantOrUnknownOrEmpty,
};
use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use crate::rust::{docs, ident};
use crate::{CodegenError, GeneratedFile, Result, layout};

/// A parsed contract ready to generate from.
#[derive(Debug, Clone)]
pub struct Api {
    /// Contract path relative to the workspace root (used in headers and errors).
    pub source: PathBuf,
    /// Rust module name, from the file stem (`orders`).
    pub module: String,
    /// `info.title`.
    pub title: String,
    /// `info.version`.
    pub version: String,
    /// `info.description`.
    pub description: Option<String>,
    /// Tags declared at the top level.
    pub tags: Vec<(String, Option<String>)>,
    /// Component schemas, in contract order.
    pub schemas: Vec<SchemaDef>,
    /// Operations, in contract order.
    pub operations: Vec<Operation>,
    /// The bearer scheme of `components.securitySchemes`, if the contract declares one.
    pub bearer: Option<BearerScheme>,
}

/// The contract's one security scheme: an HTTP bearer JWT.
#[derive(Debug, Clone)]
pub struct BearerScheme {
    /// Its key in `components.securitySchemes` (`bearerAuth`).
    pub name: String,
    /// Its description.
    pub description: Option<String>,
}

/// Who may call an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// `security: []`: anyone.
    Public,
    /// The bearer scheme: a verified caller whose role satisfies this one (`x-required-role`:
    /// `user` unless set, `admin`, or `service` for the platform's own services).
    Bearer {
        /// The role the caller's token must satisfy.
        role: RequiredRole,
    },
}

/// The `shopmesh_identity::Role` an operation requires, as its contract names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequiredRole {
    /// A person: a shopper, or an admin.
    User,
    /// An admin.
    Admin,
    /// A platform service (client credentials).
    Service,
}

impl std::str::FromStr for RequiredRole {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "user" => Ok(Self::User),
            "admin" => Ok(Self::Admin),
            "service" => Ok(Self::Service),
            other => Err(format!("`{other}` is no role (user, admin or service)")),
        }
    }
}

/// A named component schema.
#[derive(Debug, Clone)]
pub enum SchemaDef {
    /// An object with fields.
    Object {
        /// Component name, also the Rust type name.
        name: String,
        /// Description.
        description: Option<String>,
        /// Properties.
        fields: Vec<Field>,
    },
    /// A string enum.
    Enum {
        /// Component name.
        name: String,
        /// Description.
        description: Option<String>,
        /// Wire values.
        values: Vec<String>,
        /// The lifecycle the values form (`x-state-machine`), when they are states.
        machine: Option<StateMachine>,
    },
}

/// States and the transitions allowed between them, declared once on an enum of states
/// (`x-state-machine: {initial, transitions: [{from, to, on}]}`): the generated enum checks
/// transitions with it and the README's diagram is drawn from it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateMachine {
    /// The state everything starts in.
    pub initial: String,
    /// Every allowed transition.
    pub transitions: Vec<Transition>,
}

/// One allowed transition.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transition {
    /// From this state.
    pub from: String,
    /// To this one.
    pub to: String,
    /// What causes it, in a few words (the diagram's label).
    pub on: String,
}

impl StateMachine {
    /// Checks the machine against the enum's `values`: known states, no transition twice or
    /// onto itself, every state reachable from the initial one.
    fn check(&self, values: &[String]) -> std::result::Result<(), String> {
        let known = |state: &String| {
            values
                .contains(state)
                .then_some(())
                .ok_or_else(|| format!("`{state}` is not one of the enum's values"))
        };
        known(&self.initial)?;
        let mut seen = std::collections::BTreeSet::new();
        for t in &self.transitions {
            known(&t.from)?;
            known(&t.to)?;
            if t.from == t.to {
                return Err(format!("`{}` -> `{}` goes nowhere", t.from, t.to));
            }
            if !seen.insert((&t.from, &t.to)) {
                return Err(format!("`{}` -> `{}` is declared twice", t.from, t.to));
            }
        }
        let mut reached = vec![&self.initial];
        let mut i = 0;
        while let Some(state) = reached.get(i).copied() {
            for t in self.transitions.iter().filter(|t| &t.from == state) {
                if !reached.contains(&&t.to) {
                    reached.push(&t.to);
                }
            }
            i += 1;
        }
        match values.iter().find(|v| !reached.contains(v)) {
            Some(unreachable) => Err(format!(
                "`{unreachable}` cannot be reached from `{}`",
                self.initial
            )),
            None => Ok(()),
        }
    }

    /// A Mermaid `stateDiagram-v2` of the machine, states named as on the wire.
    pub fn mermaid(&self) -> String {
        let mut out = String::from("stateDiagram-v2\n");
        out.push_str(&format!("    [*] --> {}\n", self.initial));
        for t in &self.transitions {
            out.push_str(&format!("    {} --> {}: {}\n", t.from, t.to, t.on));
        }
        let finals = self
            .transitions
            .iter()
            .map(|t| &t.to)
            .filter(|state| !self.transitions.iter().any(|t| &t.from == *state));
        let mut done = Vec::new();
        for state in finals {
            if !done.contains(&state) {
                out.push_str(&format!("    {state} --> [*]\n"));
                done.push(state);
            }
        }
        out
    }
}

/// A property of an object schema.
#[derive(Debug, Clone)]
pub struct Field {
    /// Name on the wire.
    pub json_name: String,
    /// Field type.
    pub ty: TypeRef,
    /// Whether `required` lists it.
    pub required: bool,
    /// Description.
    pub description: Option<String>,
    /// Constraints.
    pub validators: Validators,
}

/// A type as the generator understands it.
#[derive(Debug, Clone, PartialEq)]
pub enum TypeRef {
    /// `integer/int32`.
    I32,
    /// `integer/int64` or `integer`.
    I64,
    /// `number`.
    F64,
    /// `boolean`.
    Bool,
    /// `string`.
    String,
    /// `string/email` (validated).
    Email,
    /// `string/date-time`.
    DateTime,
    /// `string/uuid`.
    Uuid,
    /// `$ref` to a component schema.
    Named(String),
    /// `array`.
    Array(Box<TypeRef>),
}

/// Constraints that poem-openapi enforces and the served spec documents.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Validators {
    /// `minimum`.
    pub minimum: Option<f64>,
    /// `maximum`.
    pub maximum: Option<f64>,
    /// `minLength`.
    pub min_length: Option<usize>,
    /// `maxLength`.
    pub max_length: Option<usize>,
    /// `pattern`.
    pub pattern: Option<String>,
    /// `maxItems`.
    pub max_items: Option<usize>,
}

/// Where a parameter travels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamIn {
    /// In the path template.
    Path,
    /// In the query string.
    Query,
    /// In a request header (strings only, e.g. `Idempotency-Key`).
    Header,
}

/// An operation parameter.
#[derive(Debug, Clone)]
pub struct Param {
    /// Wire name.
    pub name: String,
    /// Path or query.
    pub location: ParamIn,
    /// Type.
    pub ty: TypeRef,
    /// Whether it must be present.
    pub required: bool,
    /// Default value (integers only).
    pub default: Option<i64>,
    /// Description.
    pub description: Option<String>,
    /// Constraints.
    pub validators: Validators,
}

/// One response of an operation.
#[derive(Debug, Clone)]
pub struct ResponseDef {
    /// HTTP status.
    pub status: u16,
    /// Description.
    pub description: String,
    /// Content type and body type, if it has a body.
    pub body: Option<(String, TypeRef)>,
    /// Response headers the contract declares (set by the service or its middleware).
    pub headers: Vec<HeaderDef>,
}

/// One response header.
#[derive(Debug, Clone)]
pub struct HeaderDef {
    /// Header name as the contract spells it.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// Scalar type.
    pub ty: TypeRef,
    /// Whether every such response carries it.
    pub required: bool,
}

/// One operation.
#[derive(Debug, Clone)]
pub struct Operation {
    /// `operationId` (camelCase).
    pub id: String,
    /// HTTP method, lower case.
    pub method: String,
    /// Path template as in the contract (`/orders/{id}`).
    pub path: String,
    /// `summary`.
    pub summary: Option<String>,
    /// `description`.
    pub description: Option<String>,
    /// First tag, if any.
    pub tag: Option<String>,
    /// Parameters.
    pub params: Vec<Param>,
    /// JSON request body type.
    pub body: Option<TypeRef>,
    /// Responses by status.
    pub responses: Vec<ResponseDef>,
    /// Who may call it.
    pub access: Access,
    /// `x-max-body-bytes`: the largest request body this operation takes, when it takes more
    /// than a service's default.
    pub max_body_bytes: Option<usize>,
}

impl Operation {
    /// Whether the caller must present a token.
    pub fn secured(&self) -> bool {
        matches!(self.access, Access::Bearer { .. })
    }

    /// The one 2xx response (parsing guarantees there is exactly one).
    pub fn success(&self) -> &ResponseDef {
        self.responses
            .iter()
            .find(|r| (200..300).contains(&r.status))
            .expect("parse checked: one 2xx response")
    }

    /// The documented error statuses, each answered with a problem body.
    pub fn problem_statuses(&self) -> Vec<u16> {
        self.responses
            .iter()
            .map(|r| r.status)
            .filter(|s| !(200..300).contains(s))
            .collect()
    }
}

/// The shape every contract's `Problem` schema must have: it is generated once, as
/// `runtime::Problem`, and shared by every module.
const PROBLEM_FIELDS: [(&str, bool); 5] = [
    ("type", true),
    ("title", true),
    ("status", true),
    ("detail", false),
    ("instance", false),
];

/// The description the shared `Problem` type carries into every served spec.
const PROBLEM_DESCRIPTION: &str = "An RFC 9457 problem detail.";

impl Api {
    /// Name of the server trait (`OrdersApi`).
    pub fn trait_name(&self) -> syn::Ident {
        format_ident!("{}Api", self.module.to_upper_camel_case())
    }
}

/// Parses and checks one contract. `source` is the path shown in errors and headers.
pub fn parse(source: &Path, text: &str) -> Result<Api> {
    let err = |location: String, problem: String| CodegenError::schema(source, location, problem);
    let doc: OpenAPI = serde_yaml::from_str(text).map_err(|e| {
        let location = e
            .location()
            .map(|l| format!("line {} column {}", l.line(), l.column()))
            .unwrap_or_else(|| "document".to_owned());
        err(location, format!("not a valid OpenAPI 3 document: {e}"))
    })?;
    if !doc.openapi.starts_with("3.") {
        return Err(err(
            "openapi".into(),
            format!("version {} is not 3.x", doc.openapi),
        ));
    }
    let module = source
        .file_stem()
        .and_then(|s| s.to_str())
        .map(|s| s.to_snake_case())
        .ok_or_else(|| err("file name".into(), "cannot derive a module name".into()))?;
    let ctx = Ctx { doc: &doc, source };

    let mut schemas = Vec::new();
    if let Some(components) = &doc.components {
        for (name, schema) in &components.schemas {
            let at = format!("components.schemas.{name}");
            let ReferenceOr::Item(schema) = schema else {
                return Err(err(at, "a component schema must not be a bare $ref".into()));
            };
            let def = ctx.schema_def(name, schema, &at)?;
            if name == "Problem" {
                ctx.check_problem(&def, &at)?;
            }
            schemas.push(def);
        }
    }

    let bearer = ctx.bearer_scheme()?;
    let mut operations = Vec::new();
    let mut seen_ids = BTreeSet::new();
    for (path, item) in &doc.paths.paths {
        let ReferenceOr::Item(item) = item else {
            return Err(err(
                format!("paths.{path}"),
                "path item $ref is not supported".into(),
            ));
        };
        for (method, op) in item.iter() {
            let at = format!("paths.{path}.{method}");
            let op = ctx.operation(path, method, op, bearer.as_ref(), &at)?;
            if !seen_ids.insert(op.id.clone()) {
                return Err(err(at, format!("operationId {} is used twice", op.id)));
            }
            operations.push(op);
        }
    }
    Ok(Api {
        source: source.to_owned(),
        module,
        title: doc.info.title.clone(),
        version: doc.info.version.clone(),
        description: doc.info.description.clone(),
        tags: doc
            .tags
            .iter()
            .map(|t| (t.name.clone(), t.description.clone()))
            .collect(),
        schemas,
        operations,
        bearer,
    })
}

struct Ctx<'a> {
    doc: &'a OpenAPI,
    source: &'a Path,
}

impl Ctx<'_> {
    fn err(&self, at: &str, problem: impl Into<String>) -> CodegenError {
        CodegenError::schema(self.source, at, problem)
    }

    /// `Problem` is one shared type: its schema must be the RFC 9457 shape exactly.
    fn check_problem(&self, def: &SchemaDef, at: &str) -> Result<()> {
        let shared = match def {
            SchemaDef::Object {
                description,
                fields,
                ..
            } => {
                description.as_deref() == Some(PROBLEM_DESCRIPTION)
                    && fields.len() == PROBLEM_FIELDS.len()
                    && fields
                        .iter()
                        .zip(PROBLEM_FIELDS)
                        .all(|(f, (name, required))| {
                            let ty = if name == "status" {
                                TypeRef::I32
                            } else {
                                TypeRef::String
                            };
                            f.json_name == name
                                && f.required == required
                                && f.ty == ty
                                && f.validators == Validators::default()
                        })
            }
            SchemaDef::Enum { .. } => false,
        };
        if shared {
            Ok(())
        } else {
            Err(self.err(
                at,
                format!(
                    "Problem is shared by every contract and must be exactly: description \"{PROBLEM_DESCRIPTION}\", \
                     required string type, string title, int32 status, optional string detail and instance"
                ),
            ))
        }
    }

    fn schema_ref_name(&self, reference: &str, at: &str) -> Result<String> {
        let name = reference
            .strip_prefix("#/components/schemas/")
            .ok_or_else(|| self.err(at, format!("unsupported $ref {reference}: only #/components/schemas/... is allowed here")))?;
        let exists = self
            .doc
            .components
            .as_ref()
            .is_some_and(|c| c.schemas.contains_key(name));
        if !exists {
            return Err(self.err(
                at,
                format!("unknown $ref {reference}: no such component schema"),
            ));
        }
        Ok(name.to_owned())
    }

    fn schema_def(&self, name: &str, schema: &Schema, at: &str) -> Result<SchemaDef> {
        let description = schema.schema_data.description.clone();
        match &schema.schema_kind {
            SchemaKind::Type(Type::Object(obj)) => {
                if obj.additional_properties.is_some() {
                    return Err(self.err(at, "unsupported: additionalProperties"));
                }
                for req in &obj.required {
                    if !obj.properties.contains_key(req) {
                        return Err(self.err(at, format!("required property {req} is not defined")));
                    }
                }
                let mut fields = Vec::new();
                for (prop, schema) in &obj.properties {
                    let at = format!("{at}.properties.{prop}");
                    let (ty, validators, description) = match schema {
                        ReferenceOr::Reference { reference } => (
                            TypeRef::Named(self.schema_ref_name(reference, &at)?),
                            Validators::default(),
                            None,
                        ),
                        ReferenceOr::Item(s) => {
                            if s.schema_data.default.is_some() {
                                // The generated model would not apply it, and the served spec
                                // would not show it: say it in the description instead.
                                return Err(self.err(
                                    &at,
                                    "unsupported: a default on an object property (describe what absence means)",
                                ));
                            }
                            let (ty, v) = self.inline_type(s, &at)?;
                            (ty, v, s.schema_data.description.clone())
                        }
                    };
                    fields.push(Field {
                        json_name: prop.clone(),
                        ty,
                        required: obj.required.contains(prop),
                        description,
                        validators,
                    });
                }
                Ok(SchemaDef::Object {
                    name: name.to_owned(),
                    description,
                    fields,
                })
            }
            SchemaKind::Type(Type::String(s)) if !s.enumeration.is_empty() => {
                let values = s
                    .enumeration
                    .iter()
                    .map(|v| {
                        v.clone()
                            .ok_or_else(|| self.err(at, "null enum value is not supported"))
                    })
                    .collect::<Result<Vec<_>>>()?;
                let machine = match schema.schema_data.extensions.get("x-state-machine") {
                    None => None,
                    Some(declared) => {
                        let at = format!("{at}.x-state-machine");
                        let machine: StateMachine = serde_json::from_value(declared.clone())
                            .map_err(|e| self.err(&at, e.to_string()))?;
                        machine.check(&values).map_err(|e| self.err(&at, e))?;
                        Some(machine)
                    }
                };
                Ok(SchemaDef::Enum {
                    name: name.to_owned(),
                    description,
                    values,
                    machine,
                })
            }
            _ => Err(self.err(
                at,
                "unsupported component schema: only objects and string enums can be named types",
            )),
        }
    }

    fn inline_type(&self, schema: &Schema, at: &str) -> Result<(TypeRef, Validators)> {
        let mut v = Validators::default();
        let ty = match &schema.schema_kind {
            SchemaKind::Type(Type::Integer(i)) => {
                v.minimum = i.minimum.map(|m| m as f64);
                v.maximum = i.maximum.map(|m| m as f64);
                match &i.format {
                    VariantOrUnknownOrEmpty::Item(IntegerFormat::Int32) => TypeRef::I32,
                    VariantOrUnknownOrEmpty::Item(IntegerFormat::Int64)
                    | VariantOrUnknownOrEmpty::Empty => TypeRef::I64,
                    VariantOrUnknownOrEmpty::Unknown(f) => {
                        return Err(self.err(at, format!("unsupported integer format {f}")));
                    }
                }
            }
            SchemaKind::Type(Type::Number(n)) => {
                v.minimum = n.minimum;
                v.maximum = n.maximum;
                TypeRef::F64
            }
            SchemaKind::Type(Type::Boolean(_)) => TypeRef::Bool,
            SchemaKind::Type(Type::String(s)) => {
                if !s.enumeration.is_empty() {
                    return Err(self.err(
                        at,
                        "unsupported: inline enum; declare it as a component schema",
                    ));
                }
                v.min_length = s.min_length;
                v.max_length = s.max_length;
                v.pattern = s.pattern.clone();
                match &s.format {
                    VariantOrUnknownOrEmpty::Empty => TypeRef::String,
                    VariantOrUnknownOrEmpty::Item(StringFormat::DateTime) => TypeRef::DateTime,
                    VariantOrUnknownOrEmpty::Unknown(f) if f == "uuid" => TypeRef::Uuid,
                    VariantOrUnknownOrEmpty::Unknown(f) if f == "email" => TypeRef::Email,
                    other => {
                        return Err(self.err(at, format!("unsupported string format {other:?}")));
                    }
                }
            }
            SchemaKind::Type(Type::Array(a)) => {
                v.max_items = a.max_items;
                let item = match &a.items {
                    None => return Err(self.err(at, "array without items")),
                    Some(ReferenceOr::Reference { reference }) => {
                        TypeRef::Named(self.schema_ref_name(reference, at)?)
                    }
                    Some(ReferenceOr::Item(s)) => self.inline_type(s, &format!("{at}.items"))?.0,
                };
                TypeRef::Array(Box::new(item))
            }
            SchemaKind::Type(Type::Object(_)) => {
                return Err(self.err(
                    at,
                    "unsupported: inline object; declare it as a component schema",
                ));
            }
            SchemaKind::OneOf { .. } => return Err(self.err(at, "unsupported type: oneOf")),
            SchemaKind::AnyOf { .. } => return Err(self.err(at, "unsupported type: anyOf")),
            SchemaKind::AllOf { .. } => return Err(self.err(at, "unsupported type: allOf")),
            SchemaKind::Not { .. } => return Err(self.err(at, "unsupported type: not")),
            SchemaKind::Any(_) => {
                return Err(self.err(at, "unsupported type: schema without a type"));
            }
        };
        Ok((ty, v))
    }

    /// `components.securitySchemes`: none, or one HTTP bearer scheme.
    fn bearer_scheme(&self) -> Result<Option<BearerScheme>> {
        let Some(components) = &self.doc.components else {
            return Ok(None);
        };
        let mut schemes = components.security_schemes.iter();
        let Some((name, scheme)) = schemes.next() else {
            return Ok(None);
        };
        let at = format!("components.securitySchemes.{name}");
        if schemes.next().is_some() {
            return Err(self.err(&at, "one security scheme is supported"));
        }
        match scheme {
            ReferenceOr::Item(openapiv3::SecurityScheme::HTTP {
                scheme,
                bearer_format,
                description,
                ..
            }) if scheme.eq_ignore_ascii_case("bearer")
                && bearer_format.as_deref() == Some("JWT") =>
            {
                Ok(Some(BearerScheme {
                    name: name.clone(),
                    description: description.clone(),
                }))
            }
            _ => Err(self.err(
                &at,
                "only `type: http, scheme: bearer, bearerFormat: JWT` is supported",
            )),
        }
    }

    /// Who may call `op`: it must say so itself (`security: []` for anyone), so that no
    /// operation is public by omission.
    fn access(
        &self,
        op: &openapiv3::Operation,
        bearer: Option<&BearerScheme>,
        responses: &[ResponseDef],
        at: &str,
    ) -> Result<Access> {
        let role = op.extensions.get("x-required-role");
        let requirements = op.security.as_ref().ok_or_else(|| {
            self.err(
                at,
                "declare who may call this operation: `security: [{bearerAuth: []}]`, or `security: []` for anyone",
            )
        })?;
        if requirements.is_empty() {
            if role.is_some() {
                return Err(self.err(at, "x-required-role needs a security requirement"));
            }
            return Ok(Access::Public);
        }
        let Some(bearer) = bearer else {
            return Err(self.err(at, "security names a scheme the contract does not declare"));
        };
        let [requirement] = requirements.as_slice() else {
            return Err(self.err(at, "one security requirement is supported"));
        };
        if requirement.len() != 1 || !requirement.contains_key(&bearer.name) {
            return Err(self.err(
                at,
                format!(
                    "the security requirement must be exactly `{}: []`",
                    bearer.name
                ),
            ));
        }
        if !responses.iter().any(|r| r.status == 401) {
            return Err(self.err(at, "a secured operation must document 401"));
        }
        if !responses.iter().any(|r| r.status == 403) {
            // Every secured operation refuses a verified caller of the wrong role.
            return Err(self.err(at, "a secured operation must document 403"));
        }
        let role = match role.map(|v| v.as_str()) {
            None => RequiredRole::User,
            Some(Some(name)) => name
                .parse()
                .map_err(|e: String| self.err(at, format!("x-required-role: {e}")))?,
            Some(other) => {
                return Err(self.err(
                    at,
                    format!("x-required-role must be `user`, `admin` or `service`, not {other:?}"),
                ));
            }
        };
        Ok(Access::Bearer { role })
    }

    fn operation(
        &self,
        path: &str,
        method: &str,
        op: &openapiv3::Operation,
        bearer: Option<&BearerScheme>,
        at: &str,
    ) -> Result<Operation> {
        let id = op
            .operation_id
            .clone()
            .ok_or_else(|| self.err(at, "operationId is required"))?;
        let mut params = Vec::new();
        for (i, p) in op.parameters.iter().enumerate() {
            let at = format!("{at}.parameters[{i}]");
            let ReferenceOr::Item(p) = p else {
                return Err(self.err(&at, "parameter $ref is not supported"));
            };
            let (location, data) = match p {
                Parameter::Path { parameter_data, .. } => (ParamIn::Path, parameter_data),
                Parameter::Query { parameter_data, .. } => (ParamIn::Query, parameter_data),
                Parameter::Header { parameter_data, .. } => (ParamIn::Header, parameter_data),
                _ => {
                    return Err(self.err(
                        &at,
                        "unsupported parameter location: only path, query and header",
                    ));
                }
            };
            let ParameterSchemaOrContent::Schema(ReferenceOr::Item(schema)) = &data.format else {
                return Err(self.err(&at, "parameter needs an inline schema"));
            };
            let (ty, validators) = self.inline_type(schema, &at)?;
            if !matches!(
                ty,
                TypeRef::I32 | TypeRef::I64 | TypeRef::String | TypeRef::Bool | TypeRef::Uuid
            ) {
                return Err(self.err(&at, format!("unsupported parameter type {ty:?}")));
            }
            if location == ParamIn::Header && ty != TypeRef::String {
                return Err(self.err(&at, "unsupported: header parameters must be strings"));
            }
            if location == ParamIn::Path {
                if !matches!(ty, TypeRef::I32 | TypeRef::I64) {
                    return Err(self.err(&at, "unsupported: path parameters must be integers"));
                }
                if !path.contains(&format!("{{{}}}", data.name)) {
                    return Err(self.err(
                        &at,
                        format!("path parameter {} is not in {path}", data.name),
                    ));
                }
            }
            let default = match &schema.schema_data.default {
                None => None,
                Some(serde_json::Value::Number(n)) if n.is_i64() => n.as_i64(),
                Some(other) => {
                    return Err(
                        self.err(&at, format!("unsupported default {other}: only integers"))
                    );
                }
            };
            params.push(Param {
                name: data.name.clone(),
                location,
                ty,
                required: data.required || location == ParamIn::Path,
                default,
                description: data.description.clone(),
                validators,
            });
        }
        let declared = |name: &str| {
            params
                .iter()
                .any(|p| p.location == ParamIn::Path && p.name == name)
        };
        if let Some(name) = path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .find(|name| !declared(name))
        {
            return Err(self.err(at, format!("path parameter {{{name}}} is not declared")));
        }
        let body = match &op.request_body {
            None => None,
            Some(ReferenceOr::Reference { .. }) => {
                return Err(self.err(at, "requestBody $ref is not supported"));
            }
            Some(ReferenceOr::Item(rb)) => {
                let at = format!("{at}.requestBody");
                let media = rb.content.get("application/json").ok_or_else(|| {
                    self.err(&at, "only application/json request bodies are supported")
                })?;
                match &media.schema {
                    Some(ReferenceOr::Reference { reference }) => {
                        Some(TypeRef::Named(self.schema_ref_name(reference, &at)?))
                    }
                    _ => return Err(self.err(&at, "request body must $ref a component schema")),
                }
            }
        };
        let mut responses = Vec::new();
        for (status, resp) in &op.responses.responses {
            let StatusCode::Code(code) = status else {
                return Err(self.err(at, "status ranges are not supported"));
            };
            let at = format!("{at}.responses.{code}");
            let resp = self.resolve_response(resp, &at)?;
            let body = match resp.content.iter().next() {
                None => None,
                Some((ct, media)) => {
                    if resp.content.len() > 1 {
                        return Err(self.err(&at, "a response may have one content type"));
                    }
                    let ty = match &media.schema {
                        Some(ReferenceOr::Reference { reference }) => {
                            TypeRef::Named(self.schema_ref_name(reference, &at)?)
                        }
                        Some(ReferenceOr::Item(s)) => self.inline_type(s, &at)?.0,
                        None => return Err(self.err(&at, "response content without schema")),
                    };
                    if !ct.ends_with("json") {
                        return Err(self.err(&at, format!("unsupported content type {ct}")));
                    }
                    Some((ct.clone(), ty))
                }
            };
            let headers = resp
                .headers
                .iter()
                .map(|(name, header)| self.header(name, header, &format!("{at}.headers.{name}")))
                .collect::<Result<Vec<_>>>()?;
            responses.push(ResponseDef {
                status: *code,
                description: resp.description.clone(),
                body,
                headers,
            });
        }
        if op.responses.default.is_some() {
            return Err(self.err(at, "default responses are not supported; list the statuses"));
        }
        if responses.is_empty() {
            return Err(self.err(at, "an operation needs at least one response"));
        }
        self.check_responses(&responses, at)?;
        let access = self.access(op, bearer, &responses, at)?;
        let max_body_bytes = match op.extensions.get("x-max-body-bytes") {
            None => None,
            Some(value) => {
                let bytes = value.as_u64().filter(|b| *b > 0).ok_or_else(|| {
                    self.err(at, "x-max-body-bytes must be a positive number of bytes")
                })?;
                if body.is_none() || path.contains('{') {
                    return Err(self.err(
                        at,
                        "x-max-body-bytes is for an operation with a body on a path without parameters",
                    ));
                }
                if !responses.iter().any(|r| r.status == 413) {
                    return Err(
                        self.err(at, "an operation with x-max-body-bytes must document 413")
                    );
                }
                Some(usize::try_from(bytes).map_err(|e| self.err(at, e.to_string()))?)
            }
        };
        Ok(Operation {
            id,
            method: method.to_owned(),
            path: path.to_owned(),
            summary: op.summary.clone(),
            description: op.description.clone(),
            tag: op.tags.first().cloned(),
            params,
            body,
            responses,
            access,
            max_body_bytes,
        })
    }

    /// One success response (its value is what the server trait returns and the client
    /// yields), and every error answered with a `Problem`, including a 500, so that any
    /// problem a service raises maps onto a documented status.
    fn check_responses(&self, responses: &[ResponseDef], at: &str) -> Result<()> {
        let successes = responses
            .iter()
            .filter(|r| (200..300).contains(&r.status))
            .count();
        if successes != 1 {
            return Err(self.err(
                at,
                format!("an operation needs exactly one 2xx response, found {successes}"),
            ));
        }
        for r in responses.iter().filter(|r| !(200..300).contains(&r.status)) {
            if !matches!(&r.body, Some((_, TypeRef::Named(n))) if n == "Problem") {
                return Err(self.err(
                    &format!("{at}.responses.{}", r.status),
                    "error responses must have a Problem body",
                ));
            }
        }
        if !responses.iter().any(|r| r.status == 500) {
            return Err(self.err(
                at,
                "every operation must document 500 with a Problem body, the status of errors it does not list",
            ));
        }
        Ok(())
    }

    /// A response header: inline or a `$ref` to `components/headers`, with a scalar schema.
    fn header(
        &self,
        name: &str,
        header: &ReferenceOr<openapiv3::Header>,
        at: &str,
    ) -> Result<HeaderDef> {
        let header = self.component(header, "headers", |c, key| c.headers.get(key), at)?;
        let ParameterSchemaOrContent::Schema(ReferenceOr::Item(schema)) = &header.format else {
            return Err(self.err(at, "a header needs an inline scalar schema"));
        };
        let (ty, validators) = self.inline_type(schema, at)?;
        if !matches!(ty, TypeRef::I32 | TypeRef::I64 | TypeRef::String) {
            return Err(self.err(at, "a header must be an integer or a string"));
        }
        if validators != Validators::default() {
            // Declared headers are documented, not checked: a constraint would be a promise
            // nothing keeps.
            return Err(self.err(at, "response headers cannot carry validators"));
        }
        Ok(HeaderDef {
            name: name.to_owned(),
            description: header.description.clone(),
            ty,
            required: header.required,
        })
    }

    fn resolve_response<'b>(
        &'b self,
        resp: &'b ReferenceOr<openapiv3::Response>,
        at: &str,
    ) -> Result<&'b openapiv3::Response> {
        self.component(resp, "responses", |c, key| c.responses.get(key), at)
    }

    /// `item` itself, or the entry of `components/<kind>` its `$ref` names (`entry` looks it
    /// up), which must not be a `$ref` again.
    fn component<'b, T>(
        &'b self,
        item: &'b ReferenceOr<T>,
        kind: &str,
        entry: impl Fn(&'b openapiv3::Components, &str) -> Option<&'b ReferenceOr<T>>,
        at: &str,
    ) -> Result<&'b T> {
        let reference = match item {
            ReferenceOr::Item(it) => return Ok(it),
            ReferenceOr::Reference { reference } => reference,
        };
        let key = reference
            .strip_prefix(&format!("#/components/{kind}/"))
            .ok_or_else(|| self.err(at, format!("unsupported $ref {reference}")))?;
        match self.doc.components.as_ref().and_then(|c| entry(c, key)) {
            Some(ReferenceOr::Item(it)) => Ok(it),
            Some(_) => Err(self.err(at, format!("{reference} must not itself be a $ref"))),
            None => Err(self.err(
                at,
                format!("unknown $ref {reference}: no such component in {kind}"),
            )),
        }
    }
}

/// What a parameter's value must be, in words, for error messages.
fn type_in_words(ty: &TypeRef) -> &'static str {
    match ty {
        TypeRef::I32 | TypeRef::I64 => "an integer",
        TypeRef::F64 => "a number",
        TypeRef::Bool => "true or false",
        TypeRef::DateTime => "an RFC 3339 date-time",
        TypeRef::Uuid => "a UUID",
        TypeRef::Email => "an email address",
        _ => "a string",
    }
}

/// Rust name of the response variant for a status.
fn variant_name(status: u16) -> syn::Ident {
    let name = match status {
        200 => "Ok",
        201 => "Created",
        202 => "Accepted",
        204 => "NoContent",
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        409 => "Conflict",
        413 => "PayloadTooLarge",
        415 => "UnsupportedMediaType",
        422 => "UnprocessableEntity",
        429 => "TooManyRequests",
        500 => "InternalServerError",
        502 => "BadGateway",
        503 => "ServiceUnavailable",
        504 => "GatewayTimeout",
        other => return format_ident!("Status{other}"),
    };
    format_ident!("{name}")
}

fn rust_type(ty: &TypeRef) -> TokenStream {
    match ty {
        TypeRef::I32 => quote!(i32),
        TypeRef::I64 => quote!(i64),
        TypeRef::F64 => quote!(f64),
        TypeRef::Bool => quote!(bool),
        TypeRef::String => quote!(String),
        TypeRef::Email => quote!(crate::runtime::Email),
        TypeRef::DateTime => quote!(chrono::DateTime<chrono::Utc>),
        TypeRef::Uuid => quote!(uuid::Uuid),
        TypeRef::Named(n) => {
            let n = ident(n);
            quote!(#n)
        }
        TypeRef::Array(inner) => {
            let inner = rust_type(inner);
            quote!(Vec<#inner>)
        }
    }
}

fn number_literal(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{}", v as i64)
    } else {
        v.to_string()
    }
}

fn validator_attr(v: &Validators) -> TokenStream {
    let mut parts = Vec::new();
    if let Some(m) = v.minimum {
        let s = number_literal(m);
        parts.push(quote!(minimum(value = #s)));
    }
    if let Some(m) = v.maximum {
        let s = number_literal(m);
        parts.push(quote!(maximum(value = #s)));
    }
    if let Some(m) = v.min_length {
        parts.push(quote!(min_length = #m));
    }
    if let Some(m) = v.max_length {
        parts.push(quote!(max_length = #m));
    }
    if let Some(p) = &v.pattern {
        parts.push(quote!(pattern = #p));
    }
    if let Some(m) = v.max_items {
        parts.push(quote!(max_items = #m));
    }
    if parts.is_empty() {
        quote!()
    } else {
        quote!(validator(#(#parts),*))
    }
}

/// Generates the Rust module for one contract.
pub fn generate_module(api: &Api) -> Result<String> {
    let source = api.source.display().to_string();
    let models = api.schemas.iter().map(gen_schema);
    let tags = gen_tags(api);
    let responses = api.operations.iter().map(gen_response_enum);
    let server = gen_server(api);
    let client = gen_client(api);
    let title = &api.title;
    let version = &api.version;
    let description = api.description.clone().unwrap_or_default();
    let yaml_path = format!("../../{source}");
    let json_file = contract_json_name(api);
    let mut routes: Vec<(String, Vec<String>)> = Vec::new();
    for op in &api.operations {
        let method = op.method.to_uppercase();
        match routes.iter_mut().find(|(p, _)| *p == op.path) {
            Some((_, methods)) => methods.push(method),
            None => routes.push((op.path.clone(), vec![method])),
        }
    }
    let route_entries = routes
        .iter()
        .map(|(path, methods)| quote!((#path, &[#(#methods),*])));
    let body_limits = api.operations.iter().filter_map(|op| {
        let (path, bytes) = (&op.path, op.max_body_bytes?);
        Some(quote!((#path, #bytes)))
    });
    let tokens = quote! {
        #[cfg(feature = "server")]
        use poem_openapi::payload::Json;

        /// The contract this module was generated from, verbatim.
        pub const CONTRACT_YAML: &str = include_str!(#yaml_path);
        /// The same contract as JSON, as services serve it.
        pub const CONTRACT_JSON: &str = include_str!(#json_file);
        /// `info.title` of the contract.
        pub const TITLE: &str = #title;
        /// `info.version` of the contract.
        pub const VERSION: &str = #version;
        /// `info.description` of the contract.
        pub const DESCRIPTION: &str = #description;
        /// Every path template of the contract with its methods, for `Allow` headers.
        pub const ROUTES: &[(&str, &[&str])] = &[#(#route_entries),*];
        /// Paths whose requests may carry more than a service's default body limit
        /// (`x-max-body-bytes`), with their limit in bytes.
        pub const BODY_LIMITS: &[(&str, usize)] = &[#(#body_limits),*];

        #(#models)*
        #tags
        #(#responses)*
        #server
        #client
    };
    let body = crate::rust::format(tokens, &source)?;
    Ok(format!("{}{}", crate::header(&source), body))
}

fn gen_schema(schema: &SchemaDef) -> TokenStream {
    match schema {
        SchemaDef::Object { name, .. } if name == "Problem" => quote! {
            /// The shared RFC 9457 problem type (parsing checked this contract's shape).
            pub use crate::runtime::Problem;
        },
        SchemaDef::Object {
            name,
            description,
            fields,
        } => {
            let name_ident = ident(name);
            let doc = docs(description.as_deref());
            let fields = fields.iter().map(|f| {
                let rust_name = ident(&f.json_name.to_snake_case());
                let json = &f.json_name;
                let doc = docs(f.description.as_deref());
                let base = rust_type(&f.ty);
                let validator = validator_attr(&f.validators);
                let sep = if validator.is_empty() {
                    quote!()
                } else {
                    quote!(,)
                };
                // serde carries the model on the wire for clients; poem-openapi (servers
                // only) also checks the contract's rules and describes it.
                if f.required {
                    quote! {
                        #doc
                        #[serde(rename = #json)]
                        #[cfg_attr(feature = "server", oai(rename = #json #sep #validator))]
                        pub #rust_name: #base,
                    }
                } else {
                    quote! {
                        #doc
                        #[serde(rename = #json, default, skip_serializing_if = "Option::is_none")]
                        #[cfg_attr(feature = "server", oai(rename = #json, skip_serializing_if_is_none #sep #validator))]
                        pub #rust_name: Option<#base>,
                    }
                }
            });
            quote! {
                #doc
                #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
                #[cfg_attr(feature = "server", derive(poem_openapi::Object), oai(rename = #name))]
                pub struct #name_ident { #(#fields)* }
            }
        }
        SchemaDef::Enum {
            name,
            description,
            values,
            machine,
        } => {
            let name_ident = ident(name);
            let doc = docs(description.as_deref());
            let variants: Vec<_> = values
                .iter()
                .map(|v| ident(&v.to_upper_camel_case()))
                .collect();
            let decls = values.iter().zip(&variants).map(|(v, id)| {
                quote! { #[serde(rename = #v)] #[cfg_attr(feature = "server", oai(rename = #v))] #id, }
            });
            let as_str = values
                .iter()
                .zip(&variants)
                .map(|(v, id)| quote!(Self::#id => #v,));
            let parse = values
                .iter()
                .zip(&variants)
                .map(|(v, id)| quote!(#v => Some(Self::#id),));
            let lifecycle = machine
                .as_ref()
                .map(|m| gen_state_machine(&name_ident, m))
                .unwrap_or_default();
            quote! {
                #doc
                #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
                #[cfg_attr(feature = "server", derive(poem_openapi::Enum), oai(rename = #name))]
                pub enum #name_ident { #(#decls)* }

                impl #name_ident {
                    /// Every value, in contract order.
                    pub const ALL: &'static [Self] = &[#(Self::#variants),*];
                    /// The wire value.
                    pub const fn as_str(self) -> &'static str { match self { #(#as_str)* } }
                    /// Parses a wire value.
                    pub fn parse(value: &str) -> Option<Self> { match value { #(#parse)* _ => None } }
                }
                #lifecycle
            }
        }
    }
}

/// The transition check of an enum of states, from its `x-state-machine`.
fn gen_state_machine(name: &syn::Ident, machine: &StateMachine) -> TokenStream {
    let variant = |state: &str| ident(&state.to_upper_camel_case());
    let initial = variant(&machine.initial);
    let transitions = machine.transitions.iter().map(|t| {
        let (from, to, on) = (variant(&t.from), variant(&t.to), &t.on);
        quote!((Self::#from, Self::#to, #on),)
    });
    quote! {
        impl #name {
            /// The state everything starts in.
            pub const INITIAL: Self = Self::#initial;
            /// Every allowed transition (from, to, what causes it), as the contract declares.
            pub const TRANSITIONS: &'static [(Self, Self, &'static str)] = &[#(#transitions)*];
            /// Whether the contract allows going from `self` to `next`.
            pub fn may_become(self, next: Self) -> bool {
                Self::TRANSITIONS.iter().any(|&(from, to, _)| from == self && to == next)
            }
            /// Whether no transition leaves this state.
            pub fn is_final(self) -> bool {
                !Self::TRANSITIONS.iter().any(|&(from, _, _)| from == self)
            }
        }
    }
}

fn tag_enum_name(api: &Api) -> syn::Ident {
    format_ident!("{}Tag", api.module.to_upper_camel_case())
}

fn gen_tags(api: &Api) -> TokenStream {
    if api.tags.is_empty() {
        return quote!();
    }
    let name = tag_enum_name(api);
    let variants = api.tags.iter().map(|(tag, desc)| {
        let id = ident(&tag.to_upper_camel_case());
        let doc = docs(desc.as_deref());
        quote!(#doc #[oai(rename = #tag)] #id,)
    });
    quote! {
        /// Tags that group this contract's operations.
        #[cfg(feature = "server")]
        #[derive(Debug, poem_openapi::Tags)]
        pub enum #name { #(#variants)* }
    }
}

fn response_enum_name(op: &Operation) -> syn::Ident {
    format_ident!("{}Response", op.id.to_upper_camel_case())
}

/// The type an operation's success yields: its body type, or `NoContent`.
fn success_type(op: &Operation) -> TokenStream {
    match &op.success().body {
        Some((_, ty)) => rust_type(ty),
        None => quote!(crate::runtime::NoContent),
    }
}

/// The poem-openapi response enum of an operation. It is built only from a success value or
/// from a [`Problem`] (`From<Problem>`), which picks the variant by the problem's status after
/// folding it onto the documented ones, so a variant's status and its body always agree.
fn gen_response_enum(op: &Operation) -> TokenStream {
    let name = response_enum_name(op);
    let variants = op.responses.iter().map(|r| {
        let variant = variant_name(r.status);
        let doc = docs(Some(&r.description));
        let status = r.status;
        // Headers are declared, not carried: the middleware that owns them (the rate limit)
        // sets them on the way out.
        let headers = r.headers.iter().map(|h| {
            let name = &h.name;
            let base = rust_type(&h.ty);
            let ty = if h.required {
                base.to_string()
            } else {
                format!("Option<{base}>")
            };
            match &h.description {
                Some(d) => quote!(, header(name = #name, ty = #ty, description = #d)),
                None => quote!(, header(name = #name, ty = #ty)),
            }
        });
        let headers = quote!(#(#headers)*);
        match &r.body {
            None => quote!(#doc #[oai(status = #status #headers)] #variant,),
            Some((ct, ty)) => {
                let ty = rust_type(ty);
                if ct == "application/json" {
                    quote!(#doc #[oai(status = #status #headers)] #variant(Json<#ty>),)
                } else {
                    quote!(#doc #[oai(status = #status, content_type = #ct #headers)] #variant(Json<#ty>),)
                }
            }
        }
    });
    let problem_statuses = op.problem_statuses();
    let problem_arms: Vec<TokenStream> = problem_statuses
        .iter()
        .filter(|s| **s != 500)
        .map(|s| {
            let v = variant_name(*s);
            quote!(#s => Self::#v(Json(problem)),)
        })
        .collect();
    // With 500 the only error, every problem is answered as 500.
    let problem_match = if problem_arms.is_empty() {
        quote!(Self::InternalServerError(Json(problem)))
    } else {
        quote! {
            match problem.status() {
                #(#problem_arms)*
                _ => Self::InternalServerError(Json(problem)),
            }
        }
    };
    let (attr, handler) = if problem_statuses.contains(&400) || op.secured() {
        let fn_name = format_ident!("{}_bad_request", op.id.to_snake_case());
        let fn_str = fn_name.to_string();
        let params = op.params.iter().map(|p| {
            let name = &p.name;
            let place = match p.location {
                ParamIn::Path => "path parameter",
                ParamIn::Query => "query parameter",
                ParamIn::Header => "header",
            };
            let kind = type_in_words(&p.ty);
            quote!(crate::runtime::ParamInfo { name: #name, place: #place, kind: #kind })
        });
        (
            // The handler is server code; a client-only build must not name it.
            quote!(#[cfg_attr(feature = "server", oai(bad_request_handler = #fn_str))]),
            quote! {
                #[cfg(feature = "server")]
                fn #fn_name(err: poem::Error) -> #name {
                    let detail = crate::runtime::bad_request_detail(&err, &[#(#params),*]);
                    Problem::new(err.status().as_u16(), detail).into()
                }
            },
        )
    } else {
        (quote!(), quote!())
    };
    let success = op.success();
    let success_variant = variant_name(success.status);
    let from_success = match &success.body {
        Some(_) => quote!(Self::#success_variant(Json(value))),
        None => quote!({ let crate::runtime::NoContent = value; Self::#success_variant }),
    };
    let success_ty = success_type(op);
    let status_arms = op.responses.iter().map(|r| {
        let variant = variant_name(r.status);
        let status = r.status;
        match &r.body {
            None => quote!(Self::#variant => #status,),
            Some(_) => quote!(Self::#variant(_) => #status,),
        }
    });
    let doc = format!(" Every response of `{}` the contract allows.", op.id);
    quote! {
        #[doc = #doc]
        #[cfg(feature = "server")]
        #[derive(Debug, poem_openapi::ApiResponse)]
        #attr
        pub enum #name { #(#variants)* }

        #handler

        #[cfg(feature = "server")]
        impl #name {
            /// The error statuses this operation documents, each with a problem body.
            pub const PROBLEM_STATUSES: &'static [u16] = &[#(#problem_statuses),*];

            /// The HTTP status of this response.
            pub fn status(&self) -> u16 { match self { #(#status_arms)* } }
        }

        #[cfg(feature = "server")]
        impl From<#success_ty> for #name {
            fn from(value: #success_ty) -> Self { #from_success }
        }

        #[cfg(feature = "server")]
        impl From<Problem> for #name {
            fn from(problem: Problem) -> Self {
                let problem = problem.answered_as(Self::PROBLEM_STATUSES);
                #problem_match
            }
        }

        #[cfg(feature = "server")]
        impl From<Result<#success_ty, Problem>> for #name {
            fn from(result: Result<#success_ty, Problem>) -> Self {
                match result {
                    Ok(value) => value.into(),
                    Err(problem) => problem.into(),
                }
            }
        }
    }
}

/// `(rust arg name, type tokens for the trait, param)` for each parameter.
fn param_rust(p: &Param) -> (syn::Ident, TokenStream) {
    let name = ident(&p.name.to_snake_case());
    let base = rust_type(&p.ty);
    let ty = if p.required || p.default.is_some() {
        base
    } else {
        quote!(Option<#base>)
    };
    (name, ty)
}

fn default_fn_name(op: &Operation, p: &Param) -> syn::Ident {
    format_ident!(
        "{}_{}_default",
        op.id.to_snake_case(),
        p.name.to_snake_case()
    )
}

fn gen_server(api: &Api) -> TokenStream {
    let trait_name = api.trait_name();
    let endpoints = format_ident!("{}Endpoints", api.module.to_upper_camel_case());
    let tag_enum = tag_enum_name(api);
    let mut trait_methods = Vec::new();
    let mut adapter_methods = Vec::new();
    let mut defaults = Vec::new();
    let mut unimplemented = Vec::new();
    for op in &api.operations {
        let method_name = ident(&op.id.to_snake_case());
        let resp = response_enum_name(op);
        let doc_text = match (&op.summary, &op.description) {
            (Some(s), Some(d)) => Some(format!("{s}\n\n{d}")),
            (Some(s), None) => Some(s.clone()),
            (None, d) => d.clone(),
        };
        let doc = docs(doc_text.as_deref());
        let mut trait_args = Vec::new();
        let mut adapter_args = Vec::new();
        let mut call_args = Vec::new();
        let mut checks = Vec::new();
        if let Access::Bearer { role } = op.access {
            trait_args.push(quote!(principal: shopmesh_identity::Principal));
            adapter_args.push(quote!(auth: BearerAuth));
            call_args.push(quote!(auth.0));
            let role = format_ident!("{role:?}");
            checks.push(quote! {
                if let Err(forbidden) = auth.0.check_role(shopmesh_identity::Role::#role) {
                    return Problem::new(403, forbidden.0).into();
                }
            });
        }
        for p in &op.params {
            let (name, ty) = param_rust(p);
            trait_args.push(quote!(#name: #ty));
            let wire = &p.name;
            let validator = validator_attr(&p.validators);
            let mut oai = vec![quote!(name = #wire)];
            if !validator.is_empty() {
                oai.push(validator);
            }
            if let Some(d) = p.default {
                let f = default_fn_name(op, p);
                let f_str = f.to_string();
                oai.push(quote!(default = #f_str));
                let base = rust_type(&p.ty);
                let lit = proc_macro2::Literal::i64_unsuffixed(d);
                defaults.push(quote!(fn #f() -> #base { #lit }));
            }
            let pdoc = docs(p.description.as_deref());
            let extractor = match p.location {
                ParamIn::Path => quote!(poem_openapi::param::Path<#ty>),
                ParamIn::Query => quote!(poem_openapi::param::Query<#ty>),
                ParamIn::Header => quote!(poem_openapi::param::Header<#ty>),
            };
            adapter_args.push(quote!(#pdoc #[oai(#(#oai),*)] #name: #extractor));
            call_args.push(quote!(#name.0));
        }
        if let Some(body) = &op.body {
            let ty = rust_type(body);
            trait_args.push(quote!(body: #ty));
            adapter_args.push(quote!(body: crate::runtime::ContractJson<#ty>));
            call_args.push(quote!(body.0));
        }
        let success = success_type(op);
        trait_methods.push(quote! {
            #doc
            async fn #method_name(&self, #(#trait_args),*) -> Result<#success, Problem>;
        });
        unimplemented.push(quote! {
            async fn #method_name(&self, #(#trait_args),*) -> Result<#success, Problem> {
                Err(Problem::new(501, "not implemented"))
            }
        });
        let path = op.path.replace('{', ":").replace('}', "");
        let http_method = op.method.as_str();
        let op_id = &op.id;
        let tag = match &op.tag {
            Some(t) => {
                let t = ident(&t.to_upper_camel_case());
                quote!(, tag = #tag_enum::#t)
            }
            None => quote!(),
        };
        adapter_methods.push(quote! {
            #doc
            #[oai(path = #path, method = #http_method, operation_id = #op_id #tag)]
            async fn #method_name(&self, #(#adapter_args),*) -> #resp {
                #(#checks)*
                self.api.#method_name(#(#call_args),*).await.into()
            }
        });
    }
    let trait_doc = format!(
        " The {} contract as a trait: implement it, then serve it with [`{}`].",
        api.module, endpoints
    );
    let defaults = defaults
        .iter()
        .map(|d| quote!(#[cfg(feature = "server")] #d));
    let scheme = api.bearer.as_ref().map(|b| {
        let name = &b.name;
        let doc = docs(b.description.as_deref());
        quote! {
            #doc
            #[cfg(feature = "server")]
            #[derive(poem_openapi::SecurityScheme)]
            #[oai(ty = "bearer", bearer_format = "JWT", rename = #name, checker = "crate::runtime::authenticate")]
            pub struct BearerAuth(pub shopmesh_identity::Principal);
        }
    });
    quote! {
        #scheme

        #[doc = #trait_doc]
        #[cfg(feature = "server")]
        #[async_trait::async_trait]
        pub trait #trait_name: Send + Sync + 'static {
            #(#trait_methods)*
        }

        #(#defaults)*

        /// Mounts an implementation of the trait as poem-openapi routes that parse and validate
        /// requests exactly as the contract says.
        #[cfg(feature = "server")]
        #[derive(Clone)]
        pub struct #endpoints {
            api: std::sync::Arc<dyn #trait_name>,
        }

        #[cfg(feature = "server")]
        impl #endpoints {
            /// Wraps an implementation.
            pub fn new(api: std::sync::Arc<dyn #trait_name>) -> Self { Self { api } }

            /// An OpenAPI service (routes, spec, Swagger UI) titled as the contract.
            pub fn into_service(self) -> poem_openapi::OpenApiService<Self, ()> {
                poem_openapi::OpenApiService::new(self, TITLE, VERSION).description(DESCRIPTION)
            }

            /// `GET` endpoint serving the committed contract as JSON.
            pub fn contract_endpoint() -> impl poem::Endpoint {
                crate::runtime::contract_endpoint(CONTRACT_JSON)
            }

            /// Swagger UI showing the committed contract; the page is built on its first request.
            pub fn swagger_ui() -> impl poem::Endpoint {
                crate::runtime::swagger_ui(
                    || Self::new(std::sync::Arc::new(Unimplemented)).into_service(),
                    CONTRACT_JSON,
                )
            }

            /// The document poem-openapi derives from these routes, for tests to check against
            /// the contract (it must promise the same).
            pub fn implemented_spec() -> String {
                Self::new(std::sync::Arc::new(Unimplemented)).into_service().spec()
            }
        }

        /// An implementation that answers every call with 501: routes and their document
        /// exist without a service behind them.
        #[cfg(feature = "server")]
        struct Unimplemented;

        #[cfg(feature = "server")]
        #[async_trait::async_trait]
        #[allow(unused_variables)]
        impl #trait_name for Unimplemented {
            #(#unimplemented)*
        }

        #[cfg(feature = "server")]
        #[poem_openapi::OpenApi]
        impl #endpoints {
            #(#adapter_methods)*
        }
    }
}

fn gen_client(api: &Api) -> TokenStream {
    let client = format_ident!("{}Client", api.module.to_upper_camel_case());
    let mut methods = Vec::new();
    for op in &api.operations {
        let method_name = ident(&op.id.to_snake_case());
        let problem_statuses = op.problem_statuses();
        let doc = docs(op.summary.as_deref());
        let mut args = Vec::new();
        let auth = op.secured().then(|| {
            args.push(quote!(token: &shopmesh_identity::AccessToken));
            quote!(.bearer_auth(token.expose()))
        });
        let mut path_fmt = op.path.clone();
        let mut path_args = Vec::new();
        let mut query = Vec::new();
        let mut header_calls = Vec::new();
        for p in &op.params {
            let name = ident(&p.name.to_snake_case());
            let base = rust_type(&p.ty);
            match p.location {
                ParamIn::Header => {
                    let wire = &p.name;
                    // A value that is not a valid header fails the call as a transport error.
                    if p.required {
                        args.push(quote!(#name: &str));
                        header_calls.push(quote!(let request = request.header(#wire, #name);));
                    } else {
                        args.push(quote!(#name: Option<&str>));
                        header_calls.push(quote! {
                            let request = match #name { Some(v) => request.header(#wire, v), None => request };
                        });
                    }
                }
                ParamIn::Path => {
                    path_fmt = path_fmt.replace(&format!("{{{}}}", p.name), "{}");
                    path_args.push(quote!(#name));
                    args.push(quote!(#name: #base));
                }
                ParamIn::Query => {
                    let wire = &p.name;
                    if p.required {
                        args.push(quote!(#name: #base));
                        query.push(quote!(Some((#wire, #name.to_string()))));
                    } else {
                        args.push(quote!(#name: Option<#base>));
                        query.push(quote!(#name.map(|v| (#wire, v.to_string()))));
                    }
                }
            }
        }
        let body_arg = op.body.as_ref().map(|b| {
            let ty = rust_type(b);
            quote!(body: &#ty)
        });
        let body_call = op.body.as_ref().map(|_| quote!(.json(body)));
        args.extend(body_arg);
        let http_method = format_ident!("{}", op.method);
        let fmt = format!("{{}}{path_fmt}");
        let wire_method = op.method.to_uppercase();
        let span_name = format!("{wire_method} {}", op.path);
        let template = &op.path;
        let operation_id = &op.id;
        let success = success_type(op);
        let success_status = op.success().status;
        let query_count = query.len();
        methods.push(quote! {
            #doc
            pub async fn #method_name(&self, #(#args),*) -> Result<#success, crate::runtime::ClientError> {
                let span = tracing::info_span!(
                    "http.client",
                    otel.name = #span_name,
                    otel.kind = "client",
                    otel.status_code = tracing::field::Empty,
                    http.request.method = #wire_method,
                    url.template = #template,
                    http.response.status_code = tracing::field::Empty,
                    shopmesh.operation = #operation_id,
                );
                let url = format!(#fmt, self.base_url #(, #path_args)*);
                let query_pairs: [Option<(&str, String)>; #query_count] = [#(#query),*];
                let headers = span.in_scope(|| self.hook_headers());
                let request = self.http.#http_method(url).query(&query_pairs.into_iter().flatten().collect::<Vec<_>>()).headers(headers) #auth #body_call;
                #(#header_calls)*
                let call = async move {
                    let response = request.send().await.map_err(crate::runtime::ClientError::from_reqwest);
                    crate::runtime::record_response(&tracing::Span::current(), &response);
                    crate::runtime::decode_response(response?, #success_status, &[#(#problem_statuses),*]).await
                };
                tracing::Instrument::instrument(call, span).await
            }
        });
    }
    let doc = format!(" Typed client (SDK) for the {} contract.", api.module);
    quote! {
        #[doc = #doc]
        #[cfg(feature = "client")]
        #[derive(Debug, Clone)]
        pub struct #client {
            base_url: String,
            http: reqwest::Client,
            hook: Option<crate::runtime::RequestHook>,
        }

        #[cfg(feature = "client")]
        impl #client {
            /// A client for the service at `base_url` (e.g. `http://localhost:3002`), with a
            /// 2 second timeout.
            pub fn new(base_url: impl Into<String>) -> Self {
                let http = reqwest::Client::builder()
                    .timeout(std::time::Duration::from_secs(2))
                    .build()
                    .expect("a default reqwest client builds");
                Self::with_http_client(base_url, http)
            }

            /// A client that sends through `http` (its timeouts, default headers, pool).
            pub fn with_http_client(base_url: impl Into<String>, http: reqwest::Client) -> Self {
                Self { base_url: base_url.into().trim_end_matches('/').to_owned(), http, hook: None }
            }

            /// Runs `hook` on the headers of every request, inside the call's span (used to
            /// propagate trace context).
            pub fn with_request_hook(mut self, hook: crate::runtime::RequestHook) -> Self {
                self.hook = Some(hook);
                self
            }

            /// The base URL requests go to.
            pub fn base_url(&self) -> &str { &self.base_url }

            fn hook_headers(&self) -> reqwest::header::HeaderMap {
                let mut headers = reqwest::header::HeaderMap::new();
                if let Some(hook) = &self.hook {
                    hook.apply(&mut headers);
                }
                headers
            }

            #(#methods)*
        }
    }
}

/// The runtime support module shared by all generated REST modules.
const RUNTIME: &str = include_str!("openapi_runtime.rs.txt");

/// Parses every contract in `schema/openapi/` and generates the `openapi` crate's sources.
/// File name of a module's contract as JSON, next to the module.
fn contract_json_name(api: &Api) -> String {
    format!("{}.openapi.json", api.module)
}

/// The contract as pretty JSON (what services serve at their spec path).
fn contract_json(api: &Api, text: &str) -> Result<String> {
    // serde_yaml's value keeps the contract's key order, whatever serde_json's features are.
    let value: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| {
        CodegenError::schema(&api.source, "", format!("cannot convert to JSON: {e}"))
    })?;
    serde_json::to_string_pretty(&value)
        .map(|json| json + "\n")
        .map_err(|e| CodegenError::schema(&api.source, "", e.to_string()))
}

pub fn generate_crate(root: &Path) -> Result<Vec<GeneratedFile>> {
    let mut files = Vec::new();
    let mut modules = Vec::new();
    let mut diagrams = Vec::new();
    for rel in crate::contracts_in(root, layout::OPENAPI_DIR, "yaml")? {
        let text = crate::read_contract(root, &rel)?;
        let api = parse(&rel, &text)?;
        for schema in &api.schemas {
            if let SchemaDef::Enum {
                name,
                machine: Some(machine),
                ..
            } = schema
            {
                diagrams.push((format!("{}#{name}", rel.display()), machine.mermaid()));
            }
        }
        let out = Path::new(layout::OPENAPI_OUT).join(format!("{}.rs", api.module));
        files.push(GeneratedFile::text(out, generate_module(&api)?));
        files.push(GeneratedFile::text(
            Path::new(layout::OPENAPI_OUT).join(contract_json_name(&api)),
            contract_json(&api, &text)?,
        ));
        modules.push(api.module);
    }
    let mods: String = modules
        .iter()
        .map(|m| format!("#[cfg(feature = \"{m}\")]\n#[rustfmt::skip]\npub mod {m};\n"))
        .collect();
    let lib = format!(
        "{}//! Generated REST contracts: for each file in `schema/openapi/`, a module (feature named\n\
         //! like the contract) with the models and response types, the server trait and poem-openapi\n\
         //! adapter (feature `server`) and a typed client (feature `client`).\n\n\
         #[rustfmt::skip]\npub mod runtime;\n{mods}",
        crate::header(layout::OPENAPI_DIR)
    );
    files.push(GeneratedFile::text(
        Path::new(layout::OPENAPI_OUT).join("lib.rs"),
        lib,
    ));
    files.push(GeneratedFile::text(
        Path::new(layout::OPENAPI_OUT).join("runtime.rs"),
        format!(
            "{}{RUNTIME}",
            crate::header("codegen/src/openapi_runtime.rs.txt")
        ),
    ));
    files.extend(readme_with_diagrams(root, &diagrams)?);
    Ok(files)
}

/// The README with each state machine's diagram drawn between the markers that name it
/// (`<!-- state machine: schema/openapi/orders.yaml#OrderStatus -->` ... `<!-- end -->`): a
/// machine without its markers is an error, so the README cannot lose its diagram unnoticed.
fn readme_with_diagrams(
    root: &Path,
    diagrams: &[(String, String)],
) -> Result<Option<GeneratedFile>> {
    if diagrams.is_empty() {
        return Ok(None);
    }
    let path = root.join("README.md");
    let mut text = std::fs::read_to_string(&path).map_err(|e| CodegenError::io(&path, e))?;
    for (source, mermaid) in diagrams {
        let open = format!("<!-- state machine: {source} (drawn by cargo xtask gen) -->\n");
        let close = "<!-- end of state machine -->";
        let start = text.find(&open).ok_or_else(|| {
            CodegenError::schema(
                "README.md",
                source.as_str(),
                format!(
                    "the README must show this state machine: add a line `{}` followed by `{close}`",
                    open.trim_end()
                ),
            )
        })? + open.len();
        let end = text[start..]
            .find(close)
            .map(|i| start + i)
            .ok_or_else(|| {
                CodegenError::schema(
                    "README.md",
                    source.as_str(),
                    format!("`{}` has no `{close}` after it", open.trim_end()),
                )
            })?;
        text.replace_range(start..end, &format!("```mermaid\n{mermaid}```\n"));
    }
    Ok(Some(GeneratedFile::text("README.md", text)))
}
