//! Parsed GraphQL documents, kept by their text. Clients send the same few operation texts
//! over and over with different variables, and parsing (a PEG parser) was the largest single
//! cost of serving a cached read. Only documents that parsed are kept; the limits in
//! [`crate::limits`] and validation still run on every request.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{ServerResult, Variables};

/// Bytes of query text the cache holds at most (each entry weighs its text's length).
pub const DOCUMENT_CACHE_BYTES: u64 = 4 * 1024 * 1024;

/// The cache, shared by every request of a schema.
#[derive(Clone)]
pub struct ParsedDocuments {
    documents: moka::sync::Cache<Arc<str>, Arc<ExecutableDocument>>,
    hits: Arc<AtomicU64>,
}

impl ParsedDocuments {
    /// An empty cache of at most [`DOCUMENT_CACHE_BYTES`] of query text.
    pub fn new() -> Self {
        Self {
            documents: moka::sync::Cache::builder()
                .max_capacity(DOCUMENT_CACHE_BYTES)
                .weigher(|text: &Arc<str>, _| u32::try_from(text.len()).unwrap_or(u32::MAX))
                .build(),
            hits: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Requests whose document came from the cache.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }
}

impl Default for ParsedDocuments {
    fn default() -> Self {
        Self::new()
    }
}

impl ExtensionFactory for ParsedDocuments {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Extension for ParsedDocuments {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        if let Some(document) = self.documents.get(query) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(ExecutableDocument::clone(&document));
        }
        let document = next.run(ctx, query, variables).await?;
        self.documents
            .insert(Arc::from(query), Arc::new(document.clone()));
        Ok(document)
    }
}
