//! The answer's keys in the order of the query. The GraphQL spec ("Serialized Map Ordering")
//! orders an object's keys as its fields are collected from the query; async-graphql 7 resolves
//! a selection's fields at once and adds each to the answer as it finishes
//! (async-graphql/async-graphql#612), so a field that waits on a service lands after those that
//! did not. Clients that read keys in order, and people reading answers, see them reordered.

use async_graphql::Name;
use async_graphql::parser::types::{
    DocumentOperations, ExecutableDocument, OperationDefinition, Selection, SelectionSet,
};
use async_graphql_value::ConstValue;

/// Puts the keys of `data` (the answer to `document`'s operation `operation_name`) back in the
/// order of the operation's selections, at every depth. Keys the selections do not name keep
/// their place after those they do.
pub fn restore(data: &mut ConstValue, document: &ExecutableDocument, operation_name: Option<&str>) {
    if let Some(operation) = selected(document, operation_name) {
        order(data, &[&operation.selection_set.node], document);
    }
}

fn selected<'a>(
    document: &'a ExecutableDocument,
    name: Option<&str>,
) -> Option<&'a OperationDefinition> {
    match (&document.operations, name) {
        (DocumentOperations::Single(op), _) => Some(&op.node),
        (DocumentOperations::Multiple(ops), Some(name)) => ops.get(name).map(|op| &op.node),
        (DocumentOperations::Multiple(ops), None) if ops.len() == 1 => {
            ops.values().next().map(|op| &op.node)
        }
        (DocumentOperations::Multiple(_), None) => None,
    }
}

/// The response keys a selection gives, in order, each with the shape of what it holds: worked
/// out once per answer from the query, whatever the number of list elements.
struct Shape(Vec<(Name, Shape)>);

impl Shape {
    /// The shape of the fields `sets` select (a key selected in several merges them).
    fn of(sets: &[&SelectionSet], document: &ExecutableDocument) -> Self {
        let mut fields: Vec<(Name, Vec<&SelectionSet>)> = Vec::new();
        for set in sets {
            collect(set, document, &mut fields, 0);
        }
        Self(
            fields
                .into_iter()
                .map(|(key, subs)| (key, Self::of(&subs, document)))
                .collect(),
        )
    }
}

/// Orders `value` (an object, or a list of them) by the fields `sets` select.
fn order(value: &mut ConstValue, sets: &[&SelectionSet], document: &ExecutableDocument) {
    order_by(value, &Shape::of(sets, document));
}

/// Orders `value` (an object, or lists of them) and what its fields hold by `shape`.
fn order_by(value: &mut ConstValue, shape: &Shape) {
    match value {
        ConstValue::List(items) => {
            for item in items {
                order_by(item, shape);
            }
        }
        ConstValue::Object(map) => {
            let named: Vec<&Name> = shape
                .0
                .iter()
                .map(|(key, _)| key)
                .filter(|key| map.contains_key(*key))
                .collect();
            let in_order = map.keys().take(named.len()).eq(named.iter().copied());
            if !in_order {
                let mut old = std::mem::take(map);
                for (key, _) in &shape.0 {
                    if let Some((key, value)) = old.shift_remove_entry(key) {
                        map.insert(key, value);
                    }
                }
                map.extend(old);
            }
            for (key, sub) in &shape.0 {
                if let Some(child) = map.get_mut(key)
                    && !sub.0.is_empty()
                {
                    order_by(child, sub);
                }
            }
        }
        _ => {}
    }
}

/// Fragments nest at most this deep here (validation refuses cycles; this bounds the walk).
const MAX_FRAGMENT_DEPTH: usize = 32;

/// Each response key `set` selects, first appearance first, with the selection sets under it
/// (a key selected twice merges both).
fn collect<'a>(
    set: &'a SelectionSet,
    document: &'a ExecutableDocument,
    fields: &mut Vec<(Name, Vec<&'a SelectionSet>)>,
    depth: usize,
) {
    if depth > MAX_FRAGMENT_DEPTH {
        return;
    }
    for item in &set.items {
        match &item.node {
            Selection::Field(field) => {
                let field = &field.node;
                let key = field.response_key().node.clone();
                let sub = &field.selection_set.node;
                match fields.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, subs)) => subs.push(sub),
                    None => fields.push((key, vec![sub])),
                }
            }
            Selection::FragmentSpread(spread) => {
                if let Some(fragment) = document.fragments.get(&spread.node.fragment_name.node) {
                    collect(
                        &fragment.node.selection_set.node,
                        document,
                        fields,
                        depth + 1,
                    );
                }
            }
            Selection::InlineFragment(inline) => {
                collect(&inline.node.selection_set.node, document, fields, depth + 1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ordered(query: &str, data: serde_json::Value) -> String {
        let document = async_graphql::parser::parse_query(query).unwrap_or_else(|e| panic!("{e}"));
        let mut value = ConstValue::from_json(data).unwrap_or_else(|e| panic!("{e}"));
        restore(&mut value, &document, None);
        // Serialized as it is: a serde_json::Value may sort its keys.
        serde_json::to_string(&value).unwrap_or_default()
    }

    #[test]
    fn keys_follow_the_query_at_every_depth_through_fragments() {
        let query = "{ z: a { y x } ...F b { ... on T { q p } } } fragment F on Query { m }";
        let data = serde_json::json!({
            "b": [{"p": 1, "q": 2}],
            "m": 3,
            "z": {"x": 4, "y": 5},
        });
        assert_eq!(
            ordered(query, data),
            r#"{"z":{"y":5,"x":4},"m":3,"b":[{"q":2,"p":1}]}"#
        );
    }

    #[test]
    fn keys_the_query_does_not_name_stay_after_the_others() {
        let data = serde_json::json!({"extra": 1, "b": 2, "a": 3});
        assert_eq!(ordered("{ a b }", data), r#"{"a":3,"b":2,"extra":1}"#);
    }
}
