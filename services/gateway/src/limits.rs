//! Per-operation limits that depth and complexity do not catch: how many root fields (aliases
//! included, through fragments too) one operation may select. Each root field is at least one
//! downstream call, so aliases would otherwise multiply the calls one request makes, and every
//! aliased mutation would write while the rate limit counts one HTTP request.

use std::collections::HashSet;
use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{
    ExecutableDocument, FragmentDefinition, OperationType, Selection, SelectionSet,
};
use async_graphql::{Name, Positioned, ServerError, ServerResult, Variables};

/// `extensions.code` of a rejected operation.
pub const LIMIT_CODE: &str = "QUERY_LIMIT_EXCEEDED";

/// Installs [`OperationLimit`] on a schema.
#[derive(Debug, Clone, Copy)]
pub struct OperationLimits {
    /// Root fields a query may select.
    pub max_root_fields: usize,
    /// Root fields (each one a write) a mutation may select.
    pub max_mutations: usize,
}

impl ExtensionFactory for OperationLimits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(OperationLimit(*self))
    }
}

/// Rejects, after parsing and before anything runs, an operation over its root-field limit.
pub struct OperationLimit(OperationLimits);

#[async_trait::async_trait]
impl Extension for OperationLimit {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let document = next.run(ctx, query, variables).await?;
        for (_, operation) in document.operations.iter() {
            let (limit, what) = match operation.node.ty {
                OperationType::Mutation => (self.0.max_mutations, "mutations"),
                _ => (self.0.max_root_fields, "root fields"),
            };
            let count = root_fields(
                &operation.node.selection_set.node,
                &document.fragments,
                &mut HashSet::new(),
            );
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
