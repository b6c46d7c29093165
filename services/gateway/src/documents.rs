//! Parsed GraphQL documents, kept by their text. Clients send the same few operation texts
//! over and over with different variables, and parsing (a PEG parser) was the largest single
//! cost of serving a cached read. The limits in [`crate::limits`] and validation still run on
//! every request.
//!
//! The document a request runs is also what puts its answer's keys back in the query's order
//! ([`crate::response_order`]).
//!
//! Only documents that passed validation are kept, so text an attacker makes up cannot fill
//! the cache, and each is weighed by an estimate of the memory its parsed tree holds, not by
//! its text: a dense document's tree is tens of times larger than its text.

use std::mem::size_of;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextValidation,
};
use async_graphql::parser::types::{
    Directive, ExecutableDocument, OperationDefinition, Selection, SelectionSet,
};
use async_graphql::{Name, Positioned, ServerError, ServerResult, ValidationResult, Variables};
use async_graphql_value::Value;

/// Memory the cache holds at most, as [`weight`] estimates it.
pub const DOCUMENT_CACHE_BYTES: u64 = 16 * 1024 * 1024;

/// The cache, shared by every request of a schema.
#[derive(Clone)]
pub struct ParsedDocuments {
    documents: moka::sync::Cache<Arc<str>, Arc<ExecutableDocument>>,
    hits: Arc<AtomicU64>,
}

impl ParsedDocuments {
    /// An empty cache of at most [`DOCUMENT_CACHE_BYTES`].
    pub fn new() -> Self {
        Self {
            documents: moka::sync::Cache::builder()
                .max_capacity(DOCUMENT_CACHE_BYTES)
                .weigher(|text: &Arc<str>, document: &Arc<ExecutableDocument>| {
                    u32::try_from(text.len() + weight(document)).unwrap_or(u32::MAX)
                })
                .build(),
            hits: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Requests whose document came from the cache.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// What the cache holds, as estimated (entries written lazily are counted once settled).
    pub fn weighted_size(&self) -> u64 {
        self.documents.run_pending_tasks();
        self.documents.weighted_size()
    }
}

impl Default for ParsedDocuments {
    fn default() -> Self {
        Self::new()
    }
}

impl ExtensionFactory for ParsedDocuments {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(DocumentLookup {
            cache: self.clone(),
            parsed: Mutex::new(None),
            running: Mutex::new(None),
        })
    }
}

/// One request's use of the cache: a document it had to parse is kept once it validated.
struct DocumentLookup {
    cache: ParsedDocuments,
    parsed: Mutex<Option<(Arc<str>, Arc<ExecutableDocument>)>>,
    /// The request's document, to order its answer by.
    running: Mutex<Option<Arc<ExecutableDocument>>>,
}

#[async_trait::async_trait]
impl Extension for DocumentLookup {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        if let Some(document) = self.cache.documents.get(query) {
            self.cache.hits.fetch_add(1, Ordering::Relaxed);
            let copy = ExecutableDocument::clone(&document);
            if let Ok(mut running) = self.running.lock() {
                *running = Some(document);
            }
            return Ok(copy);
        }
        let document = next.run(ctx, query, variables).await?;
        let kept = Arc::new(document.clone());
        if let Ok(mut running) = self.running.lock() {
            *running = Some(kept.clone());
        }
        if let Ok(mut parsed) = self.parsed.lock() {
            *parsed = Some((Arc::from(query), kept));
        }
        Ok(document)
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        let result = next.run(ctx).await?;
        if let Some((text, document)) = self.parsed.lock().ok().and_then(|mut p| p.take()) {
            self.cache.documents.insert(text, document);
        }
        Ok(result)
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> async_graphql::Response {
        let mut response = next.run(ctx, operation_name).await;
        let document = self.running.lock().ok().and_then(|mut r| r.take());
        if let Some(document) = document {
            crate::response_order::restore(&mut response.data, &document, operation_name);
        }
        response
    }
}

/// Bytes a parsed document holds on the heap, estimated from its nodes: each node's own size
/// plus the names and strings it owns. Values nest at most
/// [`shopmesh_common::nesting::MAX_GRAPHQL_NESTING`] deep, so the recursion is bounded.
pub fn weight(document: &ExecutableDocument) -> usize {
    let operations: usize = document
        .operations
        .iter()
        .map(|(name, op)| name.map_or(0, name_weight) + operation(&op.node))
        .sum();
    let fragments: usize = document
        .fragments
        .iter()
        .map(|(name, f)| {
            name_weight(name)
                + size_of_val(f)
                + directives(&f.node.directives)
                + selections(&f.node.selection_set.node)
        })
        .sum();
    size_of::<ExecutableDocument>() + operations + fragments
}

fn name_weight(name: &Name) -> usize {
    size_of::<Positioned<Name>>() + name.len()
}

fn operation(op: &OperationDefinition) -> usize {
    let variables: usize = op
        .variable_definitions
        .iter()
        .map(|v| {
            size_of_val(v)
                + name_weight(&v.node.name.node)
                + v.node
                    .default_value
                    .as_ref()
                    .map_or(0, |d| value(&d.node.clone().into_value()))
        })
        .sum();
    size_of::<Positioned<OperationDefinition>>()
        + variables
        + directives(&op.directives)
        + selections(&op.selection_set.node)
}

fn directives(list: &[Positioned<Directive>]) -> usize {
    list.iter()
        .map(|d| size_of_val(d) + name_weight(&d.node.name.node) + arguments(&d.node.arguments))
        .sum()
}

fn arguments(list: &[(Positioned<Name>, Positioned<Value>)]) -> usize {
    list.iter()
        .map(|(name, v)| name_weight(&name.node) + size_of_val(v) + value(&v.node))
        .sum()
}

fn selections(set: &SelectionSet) -> usize {
    set.items
        .iter()
        .map(|item| {
            size_of_val(item)
                + match &item.node {
                    Selection::Field(f) => {
                        f.node.alias.as_ref().map_or(0, |a| name_weight(&a.node))
                            + name_weight(&f.node.name.node)
                            + arguments(&f.node.arguments)
                            + directives(&f.node.directives)
                            + selections(&f.node.selection_set.node)
                    }
                    Selection::FragmentSpread(s) => {
                        name_weight(&s.node.fragment_name.node) + directives(&s.node.directives)
                    }
                    Selection::InlineFragment(f) => {
                        directives(&f.node.directives) + selections(&f.node.selection_set.node)
                    }
                }
        })
        .sum()
}

fn value(v: &Value) -> usize {
    size_of::<Value>()
        + match v {
            Value::String(s) => s.len(),
            Value::Variable(n) | Value::Enum(n) => n.len(),
            Value::Binary(b) => b.len(),
            Value::List(items) => items.iter().map(value).sum(),
            Value::Object(fields) => fields.iter().map(|(k, v)| name_weight(k) + value(v)).sum(),
            Value::Null | Value::Number(_) | Value::Boolean(_) => 0,
        }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weigh(query: &str) -> usize {
        weight(&async_graphql::parser::parse_query(query).unwrap())
    }

    #[test]
    fn a_dense_document_weighs_many_times_its_text() {
        let small = "{ me { id } }";
        assert!(weigh(small) > small.len());
        let dense = format!("{{ {} }}", "a ".repeat(5000));
        assert!(
            weigh(&dense) > 10 * dense.len(),
            "{} for {} bytes of text",
            weigh(&dense),
            dense.len()
        );
        let values = format!("{{ a(x: [{}]) }}", "1,".repeat(5000));
        assert!(weigh(&values) > 10 * values.len());
    }
}
