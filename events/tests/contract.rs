//! The committed event schema and the Rust event type must agree, and the validator must
//! accept exactly what the schema allows.

use chrono::{TimeZone, Utc};
use shopmesh_events::{Event, EventError, OrderCreatedV1, OrderStatusChangedV1};
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

fn status_changed() -> OrderStatusChangedV1 {
    OrderStatusChangedV1 {
        event_id: Uuid::from_u128(0x5678),
        order_id: 7,
        user_id: 3,
        from: "pending".into(),
        to: "cancelled".into(),
        cause: "cancelled by the shopper".into(),
        version: 2,
        changed_at: Utc.with_ymd_and_hms(2026, 12, 7, 10, 0, 0).unwrap(),
        user_sequence: Some(5),
        shop_sequence: Some(12),
    }
}

fn committed_schema_matches<E: Event>() {
    let committed: serde_json::Value = serde_json::from_str(E::SCHEMA).unwrap();
    let derived = E::derived_schema();
    assert_eq!(
        committed,
        derived,
        "schema/events/{} and its Rust type disagree; derived:\n{}",
        E::SCHEMA_FILE,
        serde_json::to_string_pretty(&derived).unwrap()
    );
}

#[test]
fn committed_schema_matches_rust_type() {
    committed_schema_matches::<OrderCreatedV1>();
    committed_schema_matches::<OrderStatusChangedV1>();
}

#[test]
fn a_status_change_round_trips_and_its_rules_hold() {
    let event = status_changed();
    assert_eq!(
        OrderStatusChangedV1::from_json(&event.to_json()).unwrap(),
        event
    );
    let base: serde_json::Value = serde_json::from_slice(&event.to_json()).unwrap();
    for (name, key, value) in [
        (
            "a first change is version 2",
            "version",
            serde_json::json!(1),
        ),
        (
            "a status is a wire name",
            "to",
            serde_json::json!("Cancelled"),
        ),
        ("a cause says something", "cause", serde_json::json!("")),
        ("an order id is positive", "orderId", serde_json::json!(0)),
        (
            "a sequence starts at 1",
            "userSequence",
            serde_json::json!(0),
        ),
    ] {
        let mut v = base.clone();
        v[key] = value;
        let result = OrderStatusChangedV1::from_json(&serde_json::to_vec(&v).unwrap());
        assert!(
            matches!(result, Err(EventError::SchemaViolation { .. })),
            "{name}: expected a schema violation, got {result:?}"
        );
    }
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
