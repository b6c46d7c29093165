//! Per-operation limits that depth and complexity do not catch: how many root fields (aliases
//! included, through fragments too) one operation may select. Each root field is at least one
//! downstream call, so aliases would otherwise multiply the calls one request makes.
//!
//! Every error raised before execution gets a conventional `extensions.code`:
//! `GRAPHQL_PARSE_FAILED`, `GRAPHQL_VALIDATION_FAILED`, or `QUERY_LIMIT_EXCEEDED` for depth,
//! complexity and root-field limits.
//!
//! And the rate limit charged per operation rather than per HTTP request: a request counts as
//! many requests as it runs mutations, or, for a query, one per started [`COST_PER_REQUEST`]
//! of its complexity, whichever is more (the HTTP request itself already counted one).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_graphql::ValidationResult;
use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextPrepareRequest,
    NextValidation,
};
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, FragmentDefinition, OperationType, Selection,
    SelectionSet,
};
use async_graphql::{Name, Positioned, ServerError, ServerResult, Variables};

use crate::ratelimit::Left;

/// `extensions.code` of a rejected operation.
pub const LIMIT_CODE: &str = "QUERY_LIMIT_EXCEEDED";

/// `extensions.code` of a request that is not valid GraphQL.
pub const PARSE_FAILED_CODE: &str = "GRAPHQL_PARSE_FAILED";

/// `extensions.code` of a request that does not fit the schema.
pub const VALIDATION_FAILED_CODE: &str = "GRAPHQL_VALIDATION_FAILED";

/// `extensions.code` of a request whose operation cannot be chosen: an unknown
/// `operationName`, or several operations and none named.
pub const OPERATION_RESOLUTION_CODE: &str = "OPERATION_RESOLUTION_FAILURE";

/// `extensions.code` of a request whose variables do not fit its operation.
pub const BAD_USER_INPUT_CODE: &str = "BAD_USER_INPUT";

/// `extensions.code` of any other error of the request as a whole.
pub const BAD_REQUEST_CODE: &str = "BAD_REQUEST";

/// Gives a code to the errors the executor raises with text only: those of the request as a
/// whole (no `path`: choosing the operation, or anything else about the request), and a
/// variable the operation uses but the request did not send, which the executor notices only
/// when the field that reads it runs.
pub fn code_request_errors(response: &mut async_graphql::Response) {
    for error in response.errors.iter_mut() {
        let message = error.message.as_str();
        let code = if message.starts_with("Variable ") && message.ends_with(" is not defined.") {
            BAD_USER_INPUT_CODE
        } else if !error.path.is_empty() {
            continue;
        } else if message.starts_with("Unknown operation named")
            || message.starts_with("Operation name required")
        {
            OPERATION_RESOLUTION_CODE
        } else {
            BAD_REQUEST_CODE
        };
        *error = with_code(std::mem::replace(error, ServerError::new("", None)), code);
    }
}

/// Whether `response` answers a request that did not run: no data, and errors of the request
/// as a whole only (a field that failed has a `path`, and keeps `data`, even when null).
pub fn is_request_error(response: &async_graphql::Response) -> bool {
    response.data == async_graphql::Value::Null
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty())
}

/// `error` with `extensions.code` set to `code`, unless it already has one.
fn with_code(mut error: ServerError, code: &str) -> ServerError {
    let extensions = error.extensions.get_or_insert_with(Default::default);
    if extensions.get("code").is_none() {
        extensions.set("code", code);
    }
    error
}

/// The setting that bounds downstream calls per GraphQL request.
pub const MAX_DOWNSTREAM_CALLS_NAME: &str = "GRAPHQL_MAX_DOWNSTREAM_CALLS";

/// `extensions.code` of an operation over the client's rate limit.
pub const RATE_LIMITED_CODE: &str = "RATE_LIMITED";

/// Complexity one rate-limited request pays for: a query costing 250 counts as 3 requests.
pub const COST_PER_REQUEST: usize = 100;

/// Who a GraphQL request is charged to (request data, set by the handler).
pub struct RateCharge {
    /// The gateway's limiter.
    pub limiter: Arc<crate::ratelimit::ClientRateLimiter>,
    /// The client, as the rate-limit middleware saw it.
    pub client: crate::ratelimit::RateKey,
    /// What the client has left after this operation's charge, for the `RateLimit` field
    /// (unset when the operation cost no more than the request the middleware counted).
    pub left: Arc<std::sync::Mutex<Option<Left>>>,
}

impl RateCharge {
    fn record(&self, left: Left) {
        if let Ok(mut slot) = self.left.lock() {
            *slot = Some(left);
        }
    }
}

/// Installs [`OperationLimit`] on a schema.
#[derive(Debug, Clone, Copy)]
pub struct OperationLimits {
    /// Deepest selection an operation may make; introspection (`__schema`, `__type`) is not
    /// counted, so standard tools' introspection query (15 levels) works with the limit on.
    pub max_depth: usize,
    /// Root fields a query may select.
    pub max_root_fields: usize,
    /// Longest query text, in bytes.
    pub max_query_bytes: usize,
    /// Root fields (each one a write) a mutation may select.
    pub max_mutations: usize,
}

impl ExtensionFactory for OperationLimits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(OperationLimit {
            limits: *self,
            mutations: AtomicUsize::new(0),
            operation_name: std::sync::Mutex::new(None),
        })
    }
}

/// Rejects, after parsing and before anything runs, an operation over its root-field limit,
/// and, after validation, one its client's rate limit cannot pay for. One per request.
pub struct OperationLimit {
    limits: OperationLimits,
    /// Mutations the request runs.
    mutations: AtomicUsize,
    /// The operation the request selects, when it names one.
    operation_name: std::sync::Mutex<Option<String>>,
}

#[async_trait::async_trait]
impl Extension for OperationLimit {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: async_graphql::Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<async_graphql::Request> {
        if let Ok(mut slot) = self.operation_name.lock() {
            slot.clone_from(&request.operation_name);
        }
        next.run(ctx, request).await
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        if query.len() > self.limits.max_query_bytes {
            let error = ServerError::new(
                format!(
                    "the query text is {} bytes; at most {} are allowed",
                    query.len(),
                    self.limits.max_query_bytes
                ),
                None,
            );
            return Err(with_code(error, LIMIT_CODE));
        }
        // Before the parser recurses: a deep enough document would overflow the stack.
        shopmesh_common::nesting::check_graphql(
            query,
            shopmesh_common::nesting::MAX_GRAPHQL_NESTING,
        )
        .map_err(|e| with_code(ServerError::new(e.to_string(), None), PARSE_FAILED_CODE))?;
        let mut document = next
            .run(ctx, query, variables)
            .await
            .map_err(|e| with_code(e, PARSE_FAILED_CODE))?;
        // Only the selected operation's variables are coerced (GraphQL spec,
        // "CoerceVariableValues"); the validator would coerce every operation's, so the other
        // operations of the document are set aside before it runs.
        let selected = self.operation_name.lock().ok().and_then(|n| n.clone());
        if let (Some(name), DocumentOperations::Multiple(operations)) =
            (selected, &mut document.operations)
        {
            let name = Name::new(name);
            if operations.contains_key(&name) {
                operations.retain(|n, _| *n == name);
            }
        }
        for (_, operation) in document.operations.iter() {
            let depth = depth(
                &operation.node.selection_set.node,
                &document.fragments,
                &mut HashSet::new(),
            );
            if depth > self.limits.max_depth {
                let error = ServerError::new(
                    format!(
                        "the operation is nested {depth} levels deep; at most {} are allowed (introspection is not counted)",
                        self.limits.max_depth
                    ),
                    Some(operation.pos),
                );
                return Err(with_code(error, LIMIT_CODE));
            }
            let (limit, what) = match operation.node.ty {
                OperationType::Mutation => (self.limits.max_mutations, "mutations"),
                _ => (self.limits.max_root_fields, "root fields"),
            };
            let count = root_fields(
                &operation.node.selection_set.node,
                &document.fragments,
                &mut HashSet::new(),
            );
            if operation.node.ty == OperationType::Mutation {
                self.mutations.fetch_add(count, Ordering::Relaxed);
            }
            if count > limit {
                let mut error = ServerError::new(
                    format!(
                        "the operation selects {count} {what} (aliases included); at most {limit} are allowed per request"
                    ),
                    Some(operation.pos),
                );
                error
                    .extensions
                    .get_or_insert_with(Default::default)
                    .set("code", LIMIT_CODE);
                return Err(error);
            }
        }
        Ok(document)
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await.map_err(|errors| {
            errors
                .into_iter()
                .map(|e| {
                    // async-graphql's own depth and complexity checks report in prose only.
                    let over_limit =
                        e.message.contains("nested too deep") || e.message.contains("too complex");
                    let code = if over_limit {
                        LIMIT_CODE
                    } else {
                        VALIDATION_FAILED_CODE
                    };
                    with_code(e, code)
                })
                .collect::<Vec<_>>()
        })?;
        let Some(charge) = ctx.data_opt::<RateCharge>() else {
            return Ok(result);
        };
        let requests = self
            .mutations
            .load(Ordering::Relaxed)
            .max(1 + result.complexity / COST_PER_REQUEST);
        let extra = u32::try_from(requests - 1).unwrap_or(u32::MAX);
        match charge.limiter.charge(charge.client, extra).await {
            crate::ratelimit::Decision::Allow(left) => {
                if let Some(left) = left {
                    charge.record(left);
                }
                Ok(result)
            }
            crate::ratelimit::Decision::Reject { retry_after_secs } => {
                charge.record(Left {
                    requests: 0,
                    reset_secs: retry_after_secs,
                });
                let mut error = ServerError::new(
                    format!(
                        "this operation counts as {requests} requests (its mutations or its cost) and exceeds the rate limit; retry in {retry_after_secs} s"
                    ),
                    None,
                );
                let ext = error.extensions.get_or_insert_with(Default::default);
                ext.set("code", RATE_LIMITED_CODE);
                ext.set("retryAfter", retry_after_secs);
                Err(vec![error])
            }
            // Fail-closed without Redis is the middleware's call; it already let this through.
            crate::ratelimit::Decision::Unavailable => Ok(result),
        }
    }
}

/// How deep `set` nests fields (`{ a { b } }` is 2), not counting introspection fields and
/// what they select; a fragment spread already on the path counts as nothing (a cycle, which
/// validation rejects later).
fn depth(
    set: &SelectionSet,
    fragments: &std::collections::HashMap<Name, Positioned<FragmentDefinition>>,
    path: &mut HashSet<Name>,
) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(f) if f.node.name.node.starts_with("__") => 0,
            Selection::Field(f) => 1 + depth(&f.node.selection_set.node, fragments, path),
            Selection::InlineFragment(f) => depth(&f.node.selection_set.node, fragments, path),
            Selection::FragmentSpread(s) => {
                let name = &s.node.fragment_name.node;
                match fragments.get(name) {
                    Some(f) if path.insert(name.clone()) => {
                        let d = depth(&f.node.selection_set.node, fragments, path);
                        path.remove(name);
                        d
                    }
                    _ => 0,
                }
            }
        })
        .max()
        .unwrap_or(0)
}

/// Fields selected at the root of `set`, counting each alias and the fields of spread and
/// inline fragments (each fragment once, so a cycle, which validation rejects later, ends).
fn root_fields(
    set: &SelectionSet,
    fragments: &std::collections::HashMap<Name, Positioned<FragmentDefinition>>,
    seen: &mut HashSet<Name>,
) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(_) => 1,
            Selection::InlineFragment(f) => {
                root_fields(&f.node.selection_set.node, fragments, seen)
            }
            Selection::FragmentSpread(s) => {
                let name = &s.node.fragment_name.node;
                match fragments.get(name) {
                    Some(f) if seen.insert(name.clone()) => {
                        root_fields(&f.node.selection_set.node, fragments, seen)
                    }
                    _ => 0,
                }
            }
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(query: &str) -> usize {
        let doc = async_graphql::parser::parse_query(query).unwrap();
        let (_, op) = doc.operations.iter().next().unwrap();
        root_fields(
            &op.node.selection_set.node,
            &doc.fragments,
            &mut HashSet::new(),
        )
    }

    fn depth_of(query: &str) -> usize {
        let doc = async_graphql::parser::parse_query(query).unwrap();
        let (_, op) = doc.operations.iter().next().unwrap();
        depth(
            &op.node.selection_set.node,
            &doc.fragments,
            &mut HashSet::new(),
        )
    }

    #[test]
    fn depth_skips_introspection_and_follows_fragments() {
        assert_eq!(depth_of("{ a { b { c } } }"), 3);
        assert_eq!(depth_of("{ a { ...F } } fragment F on T { b { c } }"), 3);
        assert_eq!(
            depth_of("{ __schema { types { fields { type { ofType { name } } } } } }"),
            0
        );
        assert_eq!(depth_of("{ a { __typename } }"), 1);
        assert_eq!(
            depth_of("{ ...F } fragment F on Query { a ...F }"),
            1,
            "a cycle ends"
        );
    }

    #[test]
    fn aliases_and_fragments_count_at_the_root() {
        assert_eq!(count("{ a: user(id: 1) { id } b: user(id: 2) { id } }"), 2);
        assert_eq!(
            count(
                "{ ...F ... on Query { c: userName(id: 3) } } fragment F on Query { a: userName(id: 1) b: userName(id: 2) }"
            ),
            3
        );
        assert_eq!(
            count("{ ...F } fragment F on Query { a: userName(id: 1) ...F }"),
            1
        );
    }
}
