//! The committed event schema and the Rust event type must agree, and the validator must
//! accept exactly what the schema allows.

use chrono::{TimeZone, Utc};
use shopmesh_events::{EventError, ORDER_CREATED_V1_SCHEMA, OrderCreatedV1};
use uuid::Uuid;

fn sample() -> OrderCreatedV1 {
    OrderCreatedV1 {
        event_id: Uuid::from_u128(0x1234),
        order_id: 7,
        user_id: 3,
        product_id: 42,
        quantity: 2,
        created_at: Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0).unwrap(),
    }
}

#[test]
fn committed_schema_matches_rust_type() {
    let committed: serde_json::Value = serde_json::from_str(ORDER_CREATED_V1_SCHEMA).unwrap();
    let derived = OrderCreatedV1::derived_schema();
    assert_eq!(
        committed,
        derived,
        "schema/events/order-created.v1.json and OrderCreatedV1 disagree; derived:\n{}",
        serde_json::to_string_pretty(&derived).unwrap()
    );
}

#[test]
fn valid_event_round_trips() {
    let event = sample();
    assert_eq!(OrderCreatedV1::from_json(&event.to_json()).unwrap(), event);
}

#[test]
fn wire_names_are_camel_case() {
    let value: serde_json::Value = serde_json::from_slice(&sample().to_json()).unwrap();
    for key in [
        "eventId",
        "orderId",
        "userId",
        "productId",
        "quantity",
        "createdAt",
    ] {
        assert!(value.get(key).is_some(), "missing {key} in {value}");
    }
}

#[test]
fn not_json_is_rejected() {
    assert!(matches!(
        OrderCreatedV1::from_json(b"{nope"),
        Err(EventError::NotJson(_))
    ));
}

#[test]
fn fields_a_newer_producer_adds_are_ignored() {
    let mut v: serde_json::Value = serde_json::from_slice(&sample().to_json()).unwrap();
    v["giftWrap"] = true.into();
    let event = OrderCreatedV1::from_json(&serde_json::to_vec(&v).unwrap())
        .expect("an old consumer accepts a newer producer's optional field");
    assert_eq!(event, sample());
}

#[test]
fn schema_violations_are_rejected() {
    let base: serde_json::Value = serde_json::from_slice(&sample().to_json()).unwrap();
    type Mutation = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(&str, Mutation)> = vec![
        ("quantity 0", Box::new(|v| v["quantity"] = 0.into())),
        ("quantity 1001", Box::new(|v| v["quantity"] = 1001.into())),
        ("orderId 0", Box::new(|v| v["orderId"] = 0.into())),
        (
            "missing userId",
            Box::new(|v| {
                v.as_object_mut().unwrap().remove("userId");
            }),
        ),
        (
            "eventId not a uuid",
            Box::new(|v| v["eventId"] = "abc".into()),
        ),
        (
            "createdAt not a date",
            Box::new(|v| v["createdAt"] = "yesterday".into()),
        ),
        (
            "quantity as string",
            Box::new(|v| v["quantity"] = "2".into()),
        ),
    ];
    for (name, mutate) in cases {
        let mut v = base.clone();
        mutate(&mut v);
        let result = OrderCreatedV1::from_json(&serde_json::to_vec(&v).unwrap());
        assert!(
            matches!(result, Err(EventError::SchemaViolation { .. })),
            "{name}: expected a schema violation, got {result:?}"
        );
    }
}
