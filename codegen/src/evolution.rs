//! Contract evolution: what changed between two versions of a contract, and whether a client
//! (or, for events, a consumer) built against the old version keeps working with the new one.
//!
//! [`openapi::diff`], [`events::diff`] and [`graphql::findings`] (over graphql-inspector's
//! diff) return [`Finding`]s; `cargo xtask lint` runs them
//! against the contracts at a git ref and fails on any breaking finding that `BREAKING.md` does
//! not name ([`Overrides`]).

use std::collections::BTreeSet;
use std::fmt;

use serde_json::Value;

/// Whether a change breaks clients or only announces that it will.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// A client built against the old contract fails against the new one.
    Breaking,
    /// Something is marked `deprecated`; nothing breaks yet.
    Deprecated,
}

/// One change between two versions of a contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The contract's path, relative to the workspace root.
    pub contract: String,
    /// Where in the contract: a JSON pointer (OpenAPI, events) or a schema coordinate (GraphQL).
    pub location: String,
    /// Breaking or a deprecation.
    pub severity: Severity,
    /// What changed and why it matters to clients.
    pub message: String,
}

impl Finding {
    /// `contract#location`: how `BREAKING.md` names this change.
    pub fn id(&self) -> String {
        format!("{}#{}", self.contract, self.location)
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label = match self.severity {
            Severity::Breaking => "breaking",
            Severity::Deprecated => "deprecated",
        };
        write!(f, "{label}: {}\n    {}", self.id(), self.message)
    }
}

/// The intentional breaks a change declares: every `` `contract#location` `` that its
/// `BREAKING.md` names and the base's `BREAKING.md` did not. An entry therefore covers the
/// change that adds it, and never silently covers a later break of the same place.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides(BTreeSet<String>);

impl Overrides {
    /// Entries of `current` (this change's `BREAKING.md`) missing from `base` (the base's).
    pub fn added(current: &str, base: &str) -> Self {
        let before = Self::names(base);
        Self(
            Self::names(current)
                .into_iter()
                .filter(|n| !before.contains(n))
                .collect(),
        )
    }

    /// The `contract#location` each entry of a `BREAKING.md` names: a list item at the start
    /// of a line, `` - `contract#location`: why ``. Indented examples and prose name nothing.
    fn names(text: &str) -> BTreeSet<String> {
        text.lines()
            .filter_map(|line| line.strip_prefix("- `"))
            .filter_map(|rest| rest.split_once('`'))
            .map(|(name, _)| name)
            .filter(|name| name.contains('#') && !name.contains(char::is_whitespace))
            .map(str::to_owned)
            .collect()
    }

    /// Whether this change declares `finding` intentional.
    pub fn covers(&self, finding: &Finding) -> bool {
        self.0.contains(&finding.id())
    }
}

/// Escapes one JSON pointer token (RFC 6901).
fn token(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn str_set(v: Option<&Value>) -> BTreeSet<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|x| match x {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// An object schema's properties (none when it declares none) and the names it requires.
fn fields(schema: &Value) -> (serde_json::Map<String, Value>, BTreeSet<String>) {
    let properties = schema.get("properties").and_then(Value::as_object);
    (
        properties.cloned().unwrap_or_default(),
        str_set(schema.get("required")),
    )
}

fn number(schema: &Value, key: &str) -> Option<f64> {
    schema.get(key).and_then(Value::as_f64)
}

fn flag(node: &Value, key: &str) -> bool {
    node.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// OpenAPI 3.0 contracts: what a client generated from the old document relies on.
pub mod openapi {
    use std::cmp::Ordering;
    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::{Finding, Severity, fields, flag, number, str_set, token};

    const METHODS: [&str; 7] = ["get", "put", "post", "delete", "patch", "head", "options"];

    /// Which way data flows through a schema: clients send requests and read responses, so a
    /// change that is safe in one direction breaks in the other.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    enum Flow {
        Request,
        Response,
    }

    struct Diff<'a> {
        contract: &'a str,
        old: &'a Value,
        new: &'a Value,
        /// Component pairs already compared, so shared and recursive schemas are reported once.
        compared: BTreeSet<(String, String, Flow)>,
        out: Vec<Finding>,
    }

    /// Every breaking change and new deprecation from `old` to `new` (both parsed documents).
    pub fn diff(contract: &str, old: &Value, new: &Value) -> Vec<Finding> {
        let mut d = Diff {
            contract,
            old,
            new,
            compared: BTreeSet::new(),
            out: Vec::new(),
        };
        d.paths();
        d.out
    }

    impl Diff<'_> {
        fn push(&mut self, severity: Severity, location: String, message: String) {
            self.out.push(Finding {
                contract: self.contract.to_owned(),
                location,
                severity,
                message,
            });
        }

        fn breaking(&mut self, location: String, message: String) {
            self.push(Severity::Breaking, location, message);
        }

        /// Follows a local `$ref`, returning the target and its pointer.
        fn resolve<'v>(doc: &'v Value, node: &'v Value, at: &str) -> (&'v Value, String) {
            match node.get("$ref").and_then(Value::as_str) {
                Some(r) => match r.strip_prefix('#') {
                    Some(pointer) => (doc.pointer(pointer).unwrap_or(&Value::Null), pointer.into()),
                    None => (node, at.to_owned()),
                },
                None => (node, at.to_owned()),
            }
        }

        fn paths(&mut self) {
            let (old, new) = (self.old, self.new);
            let Some(old_paths) = old.get("paths").and_then(Value::as_object) else {
                return;
            };
            for (path, old_item) in old_paths {
                let at = format!("/paths/{}", token(path));
                let Some(new_item) = new.pointer(&at) else {
                    self.breaking(
                        at,
                        format!("path {path} was removed: clients calling it get 404"),
                    );
                    continue;
                };
                for method in METHODS {
                    let Some(old_op) = old_item.get(method) else {
                        continue;
                    };
                    let op_at = format!("{at}/{method}");
                    match new_item.get(method) {
                        None => self.breaking(
                            op_at,
                            format!(
                                "operation {} {path} ({}) was removed",
                                method.to_uppercase(),
                                old_op["operationId"].as_str().unwrap_or("unnamed")
                            ),
                        ),
                        Some(new_op) => self.operation(&op_at, old_op, new_op),
                    }
                }
            }
        }

        fn operation(&mut self, at: &str, old_op: &Value, new_op: &Value) {
            if old_op.get("operationId") != new_op.get("operationId") {
                self.breaking(
                    format!("{at}/operationId"),
                    format!(
                        "operation renamed from {} to {}: generated clients' method names change",
                        old_op["operationId"], new_op["operationId"]
                    ),
                );
            }
            if flag(new_op, "deprecated") && !flag(old_op, "deprecated") {
                self.push(
                    Severity::Deprecated,
                    at.to_owned(),
                    "operation deprecated".into(),
                );
            }
            let public = |op: &Value| {
                op.get("security")
                    .and_then(Value::as_array)
                    .is_none_or(|reqs| {
                        reqs.iter()
                            .all(|r| r.as_object().is_some_and(|o| o.is_empty()))
                    })
            };
            if public(old_op) && !public(new_op) {
                self.breaking(
                    format!("{at}/security"),
                    "a public operation now requires credentials".into(),
                );
            } else if !public(old_op) && !public(new_op) {
                // The roles whose tokens pass (`Role::satisfies`): a person's role admits
                // admins too; a service's admits only services.
                let admitted = |op: &Value| match op.get("x-required-role").and_then(Value::as_str)
                {
                    None | Some("user") => &["user", "admin"][..],
                    Some("admin") => &["admin"][..],
                    Some("service") => &["service"][..],
                    Some(_) => &[][..],
                };
                let (before, after) = (admitted(old_op), admitted(new_op));
                if let Some(lost) = before.iter().find(|r| !after.contains(r)) {
                    self.breaking(
                        format!("{at}/x-required-role"),
                        format!("callers with the {lost} role may no longer call it"),
                    );
                }
            }
            self.parameters(at, old_op, new_op);
            self.request_body(at, old_op, new_op);
            self.responses(at, old_op, new_op);
        }

        fn parameters(&mut self, at: &str, old_op: &Value, new_op: &Value) {
            let (old_doc, new_doc) = (self.old, self.new);
            let params = |doc: &'_ Value, op: &'_ Value| -> Vec<(String, String, Value)> {
                op.get("parameters")
                    .and_then(Value::as_array)
                    .map(|ps| {
                        ps.iter()
                            .enumerate()
                            .map(|(i, p)| {
                                let (p, _) = Self::resolve(doc, p, "");
                                let key = format!(
                                    "{} parameter `{}`",
                                    p["in"].as_str().unwrap_or("?"),
                                    p["name"].as_str().unwrap_or("?")
                                );
                                (key, format!("{at}/parameters/{i}"), p.clone())
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            };
            let old_params = params(old_doc, old_op);
            for (key, p_at, new_p) in params(new_doc, new_op) {
                let old_p = old_params.iter().find(|(k, _, _)| *k == key);
                let required = flag(&new_p, "required");
                match old_p {
                    None if required => {
                        self.breaking(p_at, format!("new required {key}: existing calls omit it"))
                    }
                    None => {}
                    Some((_, _, old_p)) => {
                        if required && !flag(old_p, "required") {
                            self.breaking(
                                p_at.clone(),
                                format!("{key} became required: existing calls may omit it"),
                            );
                        }
                        if flag(&new_p, "deprecated") && !flag(old_p, "deprecated") {
                            self.push(
                                Severity::Deprecated,
                                p_at.clone(),
                                format!("{key} deprecated"),
                            );
                        }
                        if let (Some(o), Some(n)) = (old_p.get("schema"), new_p.get("schema")) {
                            self.schema(&format!("{p_at}/schema"), o, n, Flow::Request);
                        }
                    }
                }
            }
        }

        fn request_body(&mut self, at: &str, old_op: &Value, new_op: &Value) {
            let at = format!("{at}/requestBody");
            let (old_doc, new_doc) = (self.old, self.new);
            let Some(new_body) = new_op.get("requestBody") else {
                return;
            };
            let (new_body, _) = Self::resolve(new_doc, new_body, &at);
            let Some(old_body) = old_op.get("requestBody") else {
                if flag(new_body, "required") {
                    self.breaking(at, "a request body is now required".into());
                }
                return;
            };
            let (old_body, _) = Self::resolve(old_doc, old_body, &at);
            if flag(new_body, "required") && !flag(old_body, "required") {
                self.breaking(at.clone(), "the request body became required".into());
            }
            self.content(&at, old_body, new_body, Flow::Request);
        }

        fn responses(&mut self, at: &str, old_op: &Value, new_op: &Value) {
            let (old_doc, new_doc) = (self.old, self.new);
            let (Some(old_rs), Some(new_rs)) = (
                old_op.get("responses").and_then(Value::as_object),
                new_op.get("responses").and_then(Value::as_object),
            ) else {
                return;
            };
            let success = |rs: &serde_json::Map<String, Value>| -> Vec<String> {
                rs.keys().filter(|s| s.starts_with('2')).cloned().collect()
            };
            for status in success(old_rs) {
                if !new_rs.contains_key(&status) {
                    self.breaking(
                        format!("{at}/responses/{status}"),
                        format!(
                            "success status changed from {status} to {}: clients checking for {status} fail",
                            success(new_rs).join(", ")
                        ),
                    );
                }
            }
            for (status, old_r) in old_rs {
                let Some(new_r) = new_rs.get(status) else {
                    continue;
                };
                let r_at = format!("{at}/responses/{status}");
                let (old_r, _) = Self::resolve(old_doc, old_r, &r_at);
                let (new_r, _) = Self::resolve(new_doc, new_r, &r_at);
                self.content(&r_at, old_r, new_r, Flow::Response);
            }
        }

        fn content(&mut self, at: &str, old: &Value, new: &Value, flow: Flow) {
            let Some(old_content) = old.get("content").and_then(Value::as_object) else {
                return;
            };
            let new_content = new.get("content").and_then(Value::as_object);
            for (media, old_m) in old_content {
                let m_at = format!("{at}/content/{}", token(media));
                match new_content.and_then(|c| c.get(media)) {
                    None => self.breaking(
                        m_at,
                        match flow {
                            Flow::Request => format!("{media} bodies are no longer accepted"),
                            Flow::Response => format!("the response is no longer {media}"),
                        },
                    ),
                    Some(new_m) => {
                        if let (Some(o), Some(n)) = (old_m.get("schema"), new_m.get("schema")) {
                            self.schema(&format!("{m_at}/schema"), o, n, flow);
                        }
                    }
                }
            }
        }

        /// Compares one schema; `at` is where the new schema sits (a `$ref` moves it to the
        /// component, so a shared schema is reported once, where it is defined).
        fn schema(&mut self, at: &str, old: &Value, new: &Value, flow: Flow) {
            let (old_doc, new_doc) = (self.old, self.new);
            let (old, old_at) = Self::resolve(old_doc, old, at);
            let (new, at) = Self::resolve(new_doc, new, at);
            if at.starts_with("/components") && !self.compared.insert((old_at, at.clone(), flow)) {
                return;
            }
            let unwrap = |s: &'_ Value| -> Value {
                match s.get("allOf").and_then(Value::as_array).map(Vec::as_slice) {
                    Some([only]) => only.clone(),
                    _ => s.clone(),
                }
            };
            let (old, new) = (unwrap(old), unwrap(new));
            if new.get("$ref").is_some() || old.get("$ref").is_some() {
                // An `allOf` around one `$ref` (a described reference).
                return self.schema(&at, &old, &new, flow);
            }
            self.scalar(&at, &old, &new, flow);
            self.object(&at, &old, &new, flow);
            if let (Some(o), Some(n)) = (old.get("items"), new.get("items")) {
                self.schema(&format!("{at}/items"), o, n, flow);
            }
            if let (Some(o @ Value::Object(_)), Some(n @ Value::Object(_))) = (
                old.get("additionalProperties"),
                new.get("additionalProperties"),
            ) {
                self.schema(&format!("{at}/additionalProperties"), o, n, flow);
            }
        }

        fn scalar(&mut self, at: &str, old: &Value, new: &Value, flow: Flow) {
            if let (Some(o), Some(n)) = (old.get("type"), new.get("type"))
                && o != n
            {
                self.breaking(
                    format!("{at}/type"),
                    format!("type changed from {o} to {n}"),
                );
            }
            match (old.get("format"), new.get("format"), flow) {
                (Some(o), Some(n), _) if o != n => self.breaking(
                    format!("{at}/format"),
                    format!("format changed from {o} to {n}"),
                ),
                (None, Some(n), Flow::Request) => self.breaking(
                    format!("{at}/format"),
                    format!("values are now restricted to format {n}"),
                ),
                _ => {}
            }
            match flow {
                Flow::Request if flag(old, "nullable") && !flag(new, "nullable") => self.breaking(
                    format!("{at}/nullable"),
                    "null is no longer accepted".into(),
                ),
                Flow::Response if flag(new, "nullable") && !flag(old, "nullable") => self.breaking(
                    format!("{at}/nullable"),
                    "the value may now be null: clients expecting a value fail".into(),
                ),
                _ => {}
            }
            if flag(new, "deprecated") && !flag(old, "deprecated") {
                self.push(Severity::Deprecated, at.to_owned(), "deprecated".into());
            }
            let (old_enum, new_enum) = (old.get("enum"), new.get("enum"));
            if new_enum.is_some() || old_enum.is_some() {
                let (o, n) = (str_set(old_enum), str_set(new_enum));
                if old_enum.is_none() {
                    if flow == Flow::Request {
                        self.breaking(
                            format!("{at}/enum"),
                            format!("values are now restricted to {n:?}"),
                        );
                    }
                } else if new_enum.is_some() {
                    for removed in o.difference(&n) {
                        self.breaking(
                            format!("{at}/enum"),
                            format!("enum value {removed:?} was removed"),
                        );
                    }
                    if flow == Flow::Response {
                        for added in n.difference(&o) {
                            self.breaking(
                                format!("{at}/enum"),
                                format!(
                                    "enum value {added:?} was added to a response: clients with an exhaustive enum reject it"
                                ),
                            );
                        }
                    }
                }
            }
            if flow == Flow::Request {
                self.narrowed(at, old, new);
            }
        }

        /// Constraints that reject a request the old contract accepted.
        fn narrowed(&mut self, at: &str, old: &Value, new: &Value) {
            for (key, stricter) in [
                ("minimum", Ordering::Greater),
                ("exclusiveMinimum", Ordering::Greater),
                ("minLength", Ordering::Greater),
                ("minItems", Ordering::Greater),
                ("maximum", Ordering::Less),
                ("exclusiveMaximum", Ordering::Less),
                ("maxLength", Ordering::Less),
                ("maxItems", Ordering::Less),
            ] {
                let narrower = match (number(old, key), number(new, key)) {
                    (None, Some(_)) => true,
                    (Some(o), Some(n)) => n.partial_cmp(&o) == Some(stricter),
                    _ => false,
                };
                if narrower {
                    self.breaking(
                        format!("{at}/{key}"),
                        format!(
                            "{key} narrowed from {} to {}: requests valid before are now rejected",
                            old.get(key).map_or("none".into(), Value::to_string),
                            new[key]
                        ),
                    );
                }
            }
            if let Some(n) = new.get("pattern")
                && old.get("pattern") != Some(n)
            {
                self.breaking(
                    format!("{at}/pattern"),
                    format!("pattern changed to {n}: requests valid before may be rejected"),
                );
            }
        }

        fn object(&mut self, at: &str, old: &Value, new: &Value, flow: Flow) {
            let ((old_props, old_req), (new_props, new_req)) = (fields(old), fields(new));
            match flow {
                Flow::Request => {
                    for name in new_req.difference(&old_req) {
                        self.breaking(
                            format!("{at}/properties/{}", token(name)),
                            format!(
                                "request field `{name}` is now required: existing requests omit it"
                            ),
                        );
                    }
                    if new.get("additionalProperties") == Some(&Value::Bool(false)) {
                        for name in old_props.keys().filter(|k| !new_props.contains_key(*k)) {
                            self.breaking(
                                format!("{at}/properties/{}", token(name)),
                                format!("request field `{name}` was removed and unknown fields are rejected"),
                            );
                        }
                    }
                }
                Flow::Response => {
                    for name in old_props.keys() {
                        let p_at = format!("{at}/properties/{}", token(name));
                        if !new_props.contains_key(name) {
                            self.breaking(p_at, format!("response field `{name}` was removed"));
                        } else if old_req.contains(name) && !new_req.contains(name) {
                            self.breaking(
                                p_at,
                                format!("response field `{name}` is no longer required: clients expecting it fail when it is absent"),
                            );
                        }
                    }
                }
            }
            for (name, old_p) in &old_props {
                if let Some(new_p) = new_props.get(name) {
                    self.schema(
                        &format!("{at}/properties/{}", token(name)),
                        old_p,
                        new_p,
                        flow,
                    );
                }
            }
        }
    }
}

/// Event JSON Schemas: both old and new consumers must accept what producers of either
/// version publish (a rolling deploy runs both), so the one compatible change is a new
/// optional field, and only where the old schema lets unknown fields through.
pub mod events {
    use serde_json::Value;

    use super::{Finding, Severity, fields, token};

    /// Keys that document a schema without constraining it.
    const COSMETIC: [&str; 4] = ["description", "title", "$comment", "examples"];

    fn constraints(schema: &Value) -> Value {
        match schema {
            Value::Object(map) => Value::Object(
                map.iter()
                    .filter(|(k, _)| !COSMETIC.contains(&k.as_str()))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// Every breaking change from `old` to `new` (both parsed JSON Schemas of one event).
    pub fn diff(contract: &str, old: &Value, new: &Value) -> Vec<Finding> {
        let mut out = Vec::new();
        let mut breaking = |location: String, message: String| {
            out.push(Finding {
                contract: contract.to_owned(),
                location,
                severity: Severity::Breaking,
                message,
            })
        };
        let ((old_props, old_req), (new_props, new_req)) = (fields(old), fields(new));
        let closed = old.get("additionalProperties") == Some(&Value::Bool(false));
        for (name, new_p) in &new_props {
            let at = format!("/properties/{}", token(name));
            match old_props.get(name) {
                None if new_req.contains(name) => breaking(
                    at,
                    format!(
                        "new required field `{name}`: events already queued lack it, and old consumers reject it"
                    ),
                ),
                None if closed => breaking(
                    at,
                    format!(
                        "new field `{name}`: consumers of the old version reject it (additionalProperties: false); publish a new version file instead"
                    ),
                ),
                None => {}
                Some(old_p) if constraints(old_p) != constraints(new_p) => breaking(
                    at,
                    format!(
                        "field `{name}` changed from {} to {}: one version's consumers reject the other's events",
                        constraints(old_p),
                        constraints(new_p)
                    ),
                ),
                Some(_) => {}
            }
        }
        for name in old_props.keys().filter(|k| !new_props.contains_key(*k)) {
            breaking(
                format!("/properties/{}", token(name)),
                format!("field `{name}` was removed: consumers reading it fail"),
            );
        }
        for name in new_req
            .difference(&old_req)
            .filter(|n| old_props.contains_key(*n))
        {
            breaking(
                format!("/properties/{}", token(name)),
                format!(
                    "field `{name}` became required: events already published without it are rejected"
                ),
            );
        }
        for name in old_req
            .difference(&new_req)
            .filter(|n| new_props.contains_key(*n))
        {
            breaking(
                format!("/properties/{}", token(name)),
                format!(
                    "field `{name}` is no longer required: consumers of the old version reject events without it"
                ),
            );
        }
        let rest = |s: &Value| {
            let mut c = constraints(s);
            if let Value::Object(map) = &mut c {
                map.remove("properties");
                map.remove("required");
                map.remove("additionalProperties");
            }
            c
        };
        if !closed && new.get("additionalProperties") == Some(&Value::Bool(false)) {
            breaking(
                "/additionalProperties".into(),
                "unknown fields are now rejected: events with fields added since are refused"
                    .into(),
            );
        }
        if rest(old) != rest(new) {
            breaking(
                String::new(),
                format!(
                    "the event's own constraints changed from {} to {}",
                    rest(old),
                    rest(new)
                ),
            );
        }
        out
    }
}

/// GraphQL schemas, as graphql-inspector's diff classifies their changes (`xtask/node`
/// prints them as JSON).
pub mod graphql {
    use serde::Deserialize;

    use super::{Finding, Severity};

    /// One change graphql-inspector reports.
    #[derive(Debug, Clone, Deserialize)]
    pub struct Change {
        /// `BREAKING`, `DANGEROUS` or `NON_BREAKING`.
        pub criticality: String,
        /// Its change type, e.g. `FIELD_REMOVED`.
        #[serde(rename = "type")]
        pub kind: String,
        /// Schema coordinate, e.g. `Order.note`.
        pub path: String,
        /// What changed.
        pub message: String,
        /// Why that matters to clients, when graphql-inspector says.
        pub reason: String,
    }

    /// The breaking changes and new deprecations among `changes`, and, apart, the dangerous
    /// ones (a client may mishandle them, e.g. a new enum value it does not know), which are
    /// reported but do not fail the gate.
    pub fn findings(contract: &str, changes: Vec<Change>) -> (Vec<Finding>, Vec<String>) {
        let mut findings = Vec::new();
        let mut dangerous = Vec::new();
        for c in changes {
            let severity = match c.criticality.as_str() {
                "BREAKING" => Severity::Breaking,
                _ if c.kind.ends_with("DEPRECATION_ADDED") => Severity::Deprecated,
                "DANGEROUS" => {
                    dangerous.push(format!("{contract}#{}: {}", c.path, c.message));
                    continue;
                }
                _ => continue,
            };
            let message = if c.reason.is_empty() {
                c.message
            } else {
                format!("{} ({})", c.message, c.reason)
            };
            findings.push(Finding {
                contract: contract.to_owned(),
                location: c.path.trim_end_matches(".@deprecated").to_owned(),
                severity,
                message,
            });
        }
        (findings, dangerous)
    }
}
