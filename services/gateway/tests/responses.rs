//! The shape of GraphQL answers over real downstream data, as the spec's "Response Format"
//! and "Handling Field Errors" have it and normalizing caches (urql's graphcache, Apollo)
//! rely on: every selected key present, in the order of the query, a failed nullable field
//! null with its error under its path.

mod platform;
use platform::*;

/// The answer's `data` keys as they come on the wire (a parsed map may reorder them).
fn keys_in_wire_order(text: &str) -> Vec<String> {
    let mut de = serde_json::Deserializer::from_str(text);
    let ordered: Ordered = serde::Deserialize::deserialize(&mut de).unwrap();
    ordered.data.0
}

#[derive(serde::Deserialize)]
struct Ordered {
    data: Keys,
}

/// The keys of a JSON object, in order.
struct Keys(Vec<String>);

impl<'de> serde::Deserialize<'de> for Keys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Keys;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Keys, A::Error> {
                let mut keys = Vec::new();
                while let Some((k, _)) = map.next_entry::<String, serde::de::IgnoredAny>()? {
                    keys.push(k);
                }
                Ok(Keys(keys))
            }
        }
        d.deserialize_map(Visit)
    }
}

#[tokio::test]
async fn failed_fields_are_null_in_place_and_keys_keep_the_querys_order() {
    let backend = Backend::start().await;
    let gw = Running::start(&backend, backend.config()).await;
    let alice = backend.token(1, Role::User);
    let query = r#"{ z: user(id: "2") { id } b: me { id } a: userName(id: "999999") m: userName(id: "2") }"#;
    let text = reqwest::Client::new()
        .post(format!("{}/graphql", gw.server.base_url))
        .bearer_auth(alice.expose())
        .json(&json!({ "query": query }))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    gw.server.stop().await;
    backend.stop().await;
    assert_eq!(keys_in_wire_order(&text), ["z", "b", "a", "m"], "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    let data = &body["data"];
    assert_eq!(data["z"], Value::Null, "another user's account: {text}");
    assert_eq!(data["b"]["id"], "1", "{text}");
    assert_eq!(data["a"], Value::Null, "no such user: {text}");
    assert_eq!(data["m"], "Bob Smith", "{text}");
    let errors = body["errors"].as_array().cloned().unwrap_or_default();
    assert_eq!(errors.len(), 1, "only the forbidden field errs: {text}");
    assert_eq!(errors[0]["path"], json!(["z"]), "{text}");
    assert_eq!(errors[0]["extensions"]["code"], "FORBIDDEN", "{text}");
}
