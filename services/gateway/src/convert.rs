//! Conversions between the downstream contracts and the gateway's own contracts. Each hop has
//! its own generated types, so a change to one contract shows up here as a compile error.

use async_graphql::ID;
use shopmesh_graphql as gql;
use shopmesh_openapi::{catalog, gateway as rest, orders, users};
use shopmesh_proto::shopmesh::notification::v1 as pb;

use crate::error::GatewayError;

/// Parses a GraphQL `ID` argument as a positive integer id.
pub fn parse_id(what: &str, id: &ID) -> Result<i64, GatewayError> {
    match id.parse::<i64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(GatewayError::InvalidInput(format!(
            "{what} must be a positive integer id, got {:?}",
            id.as_str()
        ))),
    }
}

fn timestamp(t: Option<prost_types::Timestamp>) -> Option<chrono::DateTime<chrono::Utc>> {
    t.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).unwrap_or(0)))
}

/// The same status in the GraphQL contract: `stock_reserved` is `STOCK_RESERVED`. A status
/// one contract lacks is the gateway's fault (`every_order_status_maps_both_ways` checks).
fn gql_order_status(s: orders::OrderStatus) -> Result<gql::OrderStatus, GatewayError> {
    gql::OrderStatus::parse(&s.as_str().to_ascii_uppercase()).ok_or_else(|| {
        GatewayError::Internal(format!("order status {} is not in GraphQL", s.as_str()))
    })
}

/// A status change from the orders service's event, in the GraphQL contract.
pub fn gql_status_change(
    c: &shopmesh_events::OrderStatusChangedV1,
) -> Result<gql::OrderStatusChange, GatewayError> {
    let status = |s: &str| {
        orders::OrderStatus::parse(s)
            .ok_or_else(|| {
                GatewayError::Internal(format!("order status {s} is not in the contract"))
            })
            .and_then(gql_order_status)
    };
    Ok(gql::OrderStatusChange {
        order_id: c.order_id.into(),
        user_id: c.user_id.into(),
        version: c.version,
        sequence: c.user_sequence.map(sequence_of).transpose()?,
        shop_sequence: c.shop_sequence.map(sequence_of).transpose()?,
        from: status(&c.from)?,
        to: status(&c.to)?,
        cause: c.cause.clone(),
        at: c.changed_at,
    })
}

/// A change sequence number (a user's or the shop's) as GraphQL's `Int`.
fn sequence_of(n: i64) -> Result<i32, GatewayError> {
    i32::try_from(n).map_err(|_| GatewayError::Internal(format!("sequence {n} exceeds Int")))
}

/// Entry `t` of the timeline of order `order_id` (placed by `user_id`) as a change of status;
/// none for placing it.
pub fn gql_transition_change(
    order_id: i64,
    user_id: i64,
    t: orders::OrderTransition,
) -> Result<Option<gql::OrderStatusChange>, GatewayError> {
    let Some(from) = t.from else {
        return Ok(None);
    };
    Ok(Some(gql::OrderStatusChange {
        order_id: order_id.into(),
        user_id: user_id.into(),
        version: t.version,
        sequence: t.sequence.map(sequence_of).transpose()?,
        shop_sequence: t.shop_sequence.map(sequence_of).transpose()?,
        from: gql_order_status(from)?,
        to: gql_order_status(t.to)?,
        cause: t.cause,
        at: t.at,
    }))
}

/// A change the orders service listed after a sequence number.
pub fn gql_listed_change(c: orders::OrderChange) -> Result<gql::OrderStatusChange, GatewayError> {
    let t = orders::OrderTransition {
        version: c.version,
        from: Some(c.from),
        to: c.to,
        cause: c.cause,
        at: c.at,
        trace_id: None,
        sequence: Some(c.sequence),
        shop_sequence: c.shop_sequence,
    };
    gql_transition_change(c.order_id, c.user_id, t)?
        .ok_or_else(|| GatewayError::Internal("a listed change without `from`".into()))
}

/// The same status in the gateway's REST contract, which uses the orders service's names.
fn rest_order_status(s: orders::OrderStatus) -> Result<rest::OrderStatus, GatewayError> {
    rest::OrderStatus::parse(s.as_str()).ok_or_else(|| {
        GatewayError::Internal(format!("order status {} is not in REST", s.as_str()))
    })
}

/// Order for GraphQL.
pub fn gql_order(o: orders::Order) -> Result<gql::Order, GatewayError> {
    Ok(gql::Order {
        id: ID::from(o.id),
        user_id: ID::from(o.user_id),
        product_id: ID::from(o.product_id),
        quantity: o.quantity,
        status: gql_order_status(o.status)?,
        version: o.version,
        total: o.total.map(|t| gql_money("total", t)).transpose()?,
        created_at: o.created_at,
    })
}

/// A page of orders for GraphQL.
pub fn gql_order_page(page: orders::OrderPage) -> Result<gql::OrderConnection, GatewayError> {
    Ok(gql::OrderConnection {
        nodes: page
            .items
            .into_iter()
            .map(gql_order)
            .collect::<Result<_, _>>()?,
        page_info: gql::PageInfo {
            has_next_page: page.next_cursor.is_some(),
            end_cursor: page.next_cursor,
        },
    })
}

/// An amount for GraphQL, whose `Int` holds 32 bits.
fn gql_money(what: &str, m: orders::Money) -> Result<gql::Money, GatewayError> {
    Ok(gql::Money {
        amount_minor: i32::try_from(m.amount_minor).map_err(|_| {
            GatewayError::Internal(format!(
                "{what} {} does not fit GraphQL's Int",
                m.amount_minor
            ))
        })?,
        currency: m.currency,
    })
}

/// The lines of order `o` for GraphQL; each line's id is `order:product`.
pub fn gql_order_lines(o: orders::Order) -> Result<Vec<gql::OrderLine>, GatewayError> {
    o.lines
        .into_iter()
        .map(|l| {
            Ok(gql::OrderLine {
                id: ID::from(format!("{}:{}", o.id, l.product_id)),
                product_id: ID::from(l.product_id),
                quantity: l.quantity,
                unit_price: l
                    .unit_price
                    .map(|p| gql_money("unit price", p))
                    .transpose()?,
            })
        })
        .collect()
}

/// A cart for GraphQL; each line's id is `user:product`, its product resolved on demand.
pub fn gql_cart(cart: orders::Cart) -> gql::Cart {
    gql::Cart {
        lines: cart
            .lines
            .into_iter()
            .map(|l| gql::CartLine {
                id: ID::from(format!("{}:{}", cart.user_id, l.product_id)),
                product_id: ID::from(l.product_id),
                quantity: l.quantity,
                added_at: l.added_at,
            })
            .collect(),
    }
}

/// A cart for REST, each line with its product as the catalog has it now (`None` for a
/// product the catalog no longer has).
pub fn rest_cart(cart: orders::Cart, products: Vec<Option<catalog::Product>>) -> rest::Cart {
    let lines = cart
        .lines
        .into_iter()
        .zip(products)
        .map(|(l, product)| rest::CartLine {
            product_id: l.product_id,
            quantity: l.quantity,
            added_at: l.added_at,
            product: product.map(rest_product),
        })
        .collect();
    rest::Cart {
        user_id: cart.user_id,
        lines,
    }
}

/// An order's timeline for GraphQL; each entry's id is `order:version`.
pub fn gql_timeline(
    order_id: i64,
    timeline: orders::OrderTimeline,
) -> Result<Vec<gql::OrderTransition>, GatewayError> {
    timeline
        .items
        .into_iter()
        .map(|t| {
            Ok(gql::OrderTransition {
                id: ID::from(format!("{order_id}:{}", t.version)),
                version: t.version,
                from: t.from.map(gql_order_status).transpose()?,
                to: gql_order_status(t.to)?,
                cause: t.cause,
                at: t.at,
                trace_id: t.trace_id,
            })
        })
        .collect()
}

/// An order's timeline for REST.
pub fn rest_timeline(timeline: orders::OrderTimeline) -> Result<rest::OrderTimeline, GatewayError> {
    let items = timeline
        .items
        .into_iter()
        .map(|t| {
            Ok(rest::OrderTransition {
                version: t.version,
                from: t.from.map(rest_order_status).transpose()?,
                to: rest_order_status(t.to)?,
                cause: t.cause,
                at: t.at,
                trace_id: t.trace_id,
            })
        })
        .collect::<Result<_, GatewayError>>()?;
    Ok(rest::OrderTimeline { items })
}

/// User for GraphQL.
pub fn gql_user(u: users::User) -> gql::User {
    gql::User {
        id: ID::from(u.id),
        name: u.name,
        email: u.email,
        created_at: u.created_at,
    }
}

/// A count or amount from the catalog in GraphQL's 32-bit `Int`; the catalog's contract
/// bounds prices to fit, so only a stock count past two billion units would not.
pub fn int(what: &str, value: i64) -> Result<i32, GatewayError> {
    i32::try_from(value)
        .map_err(|_| GatewayError::Internal(format!("{what} {value} exceeds GraphQL's Int")))
}

/// What an admin sends for a product, as the catalog takes it (the catalog checks every rule).
pub fn catalog_input(input: gql::ProductInput) -> catalog::ProductInput {
    catalog::ProductInput {
        sku: input.sku,
        name: input.name,
        description: input.description,
        price: catalog::Money {
            amount_minor: i64::from(input.price.amount_minor),
            currency: input.price.currency,
        },
        active: input.active,
        image_url: input.image_url,
    }
}

/// An import's report for GraphQL.
pub fn gql_import_report(r: catalog::ImportReport) -> gql::ImportReport {
    gql::ImportReport {
        imported: r.imported,
        created: r.created,
        updated: r.updated,
        rejected: r
            .rejected
            .into_iter()
            .map(|row| gql::RejectedRow {
                row: row.row,
                sku: row.sku,
                reason: row.reason,
            })
            .collect(),
    }
}

/// Product for GraphQL.
pub fn gql_product(p: catalog::Product) -> Result<gql::Product, GatewayError> {
    Ok(gql::Product {
        id: ID::from(p.id),
        sku: p.sku,
        name: p.name,
        description: p.description,
        price: gql::Money {
            amount_minor: int("price", p.price.amount_minor)?,
            currency: p.price.currency,
        },
        active: p.active,
        image_url: p.image_url,
        stock: gql::Stock {
            on_hand: int("on hand", p.stock.on_hand)?,
            reserved: int("reserved", p.stock.reserved)?,
            available: int("available", p.stock.available)?,
            sold: int("sold", p.stock.sold)?,
        },
        created_at: p.created_at,
        updated_at: p.updated_at,
    })
}

/// Product for REST.
pub fn rest_product(p: catalog::Product) -> rest::Product {
    rest::Product {
        id: p.id,
        sku: p.sku,
        name: p.name,
        description: p.description,
        price: rest::Money {
            amount_minor: p.price.amount_minor,
            currency: p.price.currency,
        },
        active: p.active,
        image_url: p.image_url,
        stock: rest::Stock {
            on_hand: p.stock.on_hand,
            reserved: p.stock.reserved,
            available: p.stock.available,
            sold: p.stock.sold,
        },
        created_at: p.created_at,
        updated_at: p.updated_at,
    }
}

/// Notification for GraphQL.
pub fn gql_notification(n: pb::Notification) -> gql::Notification {
    let status = match pb::NotificationStatus::try_from(n.status) {
        Ok(pb::NotificationStatus::Sent) => gql::NotificationStatus::Sent,
        Ok(pb::NotificationStatus::Failed) => gql::NotificationStatus::Failed,
        _ => gql::NotificationStatus::Pending,
    };
    gql::Notification {
        id: ID::from(n.id),
        order_id: ID::from(n.order_id),
        user_id: ID::from(n.user_id),
        message: n.message,
        status,
        sent_at: timestamp(n.sent_at),
    }
}

/// Order for REST.
pub fn rest_order(o: orders::Order) -> Result<rest::Order, GatewayError> {
    Ok(rest::Order {
        id: o.id,
        user_id: o.user_id,
        product_id: o.product_id,
        quantity: o.quantity,
        status: rest_order_status(o.status)?,
        version: o.version,
        lines: o
            .lines
            .into_iter()
            .map(|l| rest::OrderLine {
                product_id: l.product_id,
                quantity: l.quantity,
                unit_price: l.unit_price.map(rest_money),
            })
            .collect(),
        total: o.total.map(rest_money),
        created_at: o.created_at,
    })
}

fn rest_money(m: orders::Money) -> rest::Money {
    rest::Money {
        amount_minor: m.amount_minor,
        currency: m.currency,
    }
}

/// User for REST.
pub fn rest_user(u: users::User) -> rest::User {
    rest::User {
        id: u.id,
        name: u.name,
        email: u.email,
        created_at: u.created_at,
    }
}

/// Tokens for REST.
pub fn rest_tokens(t: users::TokenResponse) -> rest::TokenResponse {
    rest::TokenResponse {
        access_token: t.access_token,
        token_type: t.token_type,
        expires_in: t.expires_in,
        refresh_token: t.refresh_token,
    }
}

/// Tokens for GraphQL.
pub fn gql_tokens(t: users::TokenResponse) -> gql::AuthPayload {
    gql::AuthPayload {
        access_token: t.access_token,
        token_type: t.token_type,
        expires_in: t.expires_in,
        refresh_token: t.refresh_token,
    }
}

/// Notification for REST.
pub fn rest_notification(n: pb::Notification) -> rest::Notification {
    let status = match pb::NotificationStatus::try_from(n.status) {
        Ok(pb::NotificationStatus::Sent) => rest::NotificationStatus::Sent,
        Ok(pb::NotificationStatus::Failed) => rest::NotificationStatus::Failed,
        _ => rest::NotificationStatus::Pending,
    };
    rest::Notification {
        id: n.id,
        order_id: n.order_id,
        user_id: n.user_id,
        message: n.message,
        status,
        sent_at: timestamp(n.sent_at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_must_be_positive_integers() {
        assert_eq!(parse_id("id", &ID::from("42")).unwrap(), 42);
        for bad in ["0", "-1", "abc", "", "9223372036854775808"] {
            assert!(
                matches!(
                    parse_id("id", &ID::from(bad)),
                    Err(GatewayError::InvalidInput(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn every_order_status_maps_both_ways() {
        for s in orders::OrderStatus::ALL {
            assert_eq!(rest_order_status(*s).unwrap().as_str(), s.as_str());
            assert_eq!(
                gql_order_status(*s).unwrap().as_str(),
                s.as_str().to_ascii_uppercase()
            );
        }
        assert_eq!(gql::OrderStatus::ALL.len(), orders::OrderStatus::ALL.len());
        assert_eq!(rest::OrderStatus::ALL.len(), orders::OrderStatus::ALL.len());
    }
}
