//! Domain rules of the orders service, as plain functions unit tests reach without a server.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Datelike, SubsecRound, Utc};

use shopmesh_openapi::orders::{Money, OrderLine};

use crate::error::OrdersError;

/// Default page size of `GET /orders/user/{userId}`.
pub const DEFAULT_PAGE_SIZE: i32 = 20;
/// Largest page size.
pub const MAX_PAGE_SIZE: i32 = 100;

/// Position after the last order of a page: orders are sorted by `(created_at, id)` descending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// `created_at` of the last order returned.
    pub created_at: DateTime<Utc>,
    /// `id` of the last order returned.
    pub id: i64,
}

impl Cursor {
    /// Opaque, URL-safe form.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!(
            "{}:{}",
            self.created_at.timestamp_micros(),
            self.id
        ))
    }

    /// Parses a cursor produced by [`Cursor::encode`].
    pub fn decode(text: &str) -> Result<Self, OrdersError> {
        let invalid = || OrdersError::InvalidCursor(text.chars().take(40).collect());
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| invalid())?;
        let raw = String::from_utf8(bytes).map_err(|_| invalid())?;
        let (micros, id) = raw.split_once(':').ok_or_else(invalid)?;
        let micros: i64 = micros.parse().map_err(|_| invalid())?;
        let id: i64 = id.parse().map_err(|_| invalid())?;
        let created_at = DateTime::from_timestamp_micros(micros)
            .filter(|t| (1000..=9999).contains(&t.year()))
            .ok_or_else(invalid)?;
        if id < 1 {
            return Err(invalid());
        }
        Ok(Self { created_at, id })
    }
}

/// The creation time stored for a new order: now, at the microsecond precision MySQL keeps, so
/// the event and the row carry the same instant.
pub fn creation_time() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// The total of priced lines: one currency, and an amount the contract can carry.
pub fn total(lines: &[OrderLine]) -> Result<Money, OrdersError> {
    let mut total: Option<Money> = None;
    for line in lines {
        let price = line.unit_price.as_ref().ok_or_else(|| {
            OrdersError::Internal(format!("product {} has no price", line.product_id))
        })?;
        let amount = price
            .amount_minor
            .checked_mul(i64::from(line.quantity))
            .ok_or(OrdersError::TotalTooLarge)?;
        match &mut total {
            None => {
                total = Some(Money {
                    amount_minor: amount,
                    currency: price.currency.clone(),
                })
            }
            Some(t) if t.currency != price.currency => {
                return Err(OrdersError::MixedCurrencies(
                    t.currency.clone(),
                    price.currency.clone(),
                ));
            }
            Some(t) => {
                t.amount_minor = t
                    .amount_minor
                    .checked_add(amount)
                    .ok_or(OrdersError::TotalTooLarge)?
            }
        }
    }
    let total = total.ok_or_else(|| OrdersError::Internal("a total of no lines".into()))?;
    // The payments contract's largest amount.
    if total.amount_minor > 100_000_000_000 {
        return Err(OrdersError::TotalTooLarge);
    }
    Ok(total)
}

/// Clamps a requested page size into `1..=MAX_PAGE_SIZE` (the contract already rejects values
/// outside it; this keeps the store safe when called directly).
pub fn page_size(requested: i32) -> i32 {
    requested.clamp(1, MAX_PAGE_SIZE)
}

/// Splits one extra fetched row off a page: returns the page and the cursor of the next page.
pub fn paginate<T>(
    mut rows: Vec<T>,
    limit: i32,
    key: impl Fn(&T) -> Cursor,
) -> (Vec<T>, Option<Cursor>) {
    let limit = usize::try_from(limit).unwrap_or(0);
    if rows.len() > limit {
        rows.truncate(limit);
        let next = rows.last().map(key);
        (rows, next)
    } else {
        (rows, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips() {
        let c = Cursor {
            created_at: creation_time(),
            id: 42,
        };
        assert_eq!(Cursor::decode(&c.encode()).unwrap(), c);
    }

    #[test]
    fn garbage_cursors_are_rejected() {
        for bad in [
            "",
            "!!!",
            "bm9jb2xvbg",
            &URL_SAFE_NO_PAD.encode("12:x"),
            &URL_SAFE_NO_PAD.encode("12:0"),
            // Outside MySQL's DATETIME range (years 1000 to 9999): never produced by encode.
            &URL_SAFE_NO_PAD.encode("-99999999999999999:1"),
            &URL_SAFE_NO_PAD.encode("253402300800000000:1"),
        ] {
            assert!(
                matches!(Cursor::decode(bad), Err(OrdersError::InvalidCursor(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn paginate_returns_next_cursor_only_when_more_rows_exist() {
        let t = creation_time();
        let key = |id: &i64| Cursor {
            created_at: t,
            id: *id,
        };
        let (page, next) = paginate(vec![5, 4, 3], 2, key);
        assert_eq!(page, vec![5, 4]);
        assert_eq!(
            next,
            Some(Cursor {
                created_at: t,
                id: 4
            })
        );
        let (page, next) = paginate(vec![5, 4], 2, key);
        assert_eq!(page, vec![5, 4]);
        assert_eq!(next, None);
    }

    fn line(product_id: i64, quantity: i32, amount_minor: i64, currency: &str) -> OrderLine {
        OrderLine {
            product_id,
            quantity,
            unit_price: Some(Money {
                amount_minor,
                currency: currency.into(),
            }),
        }
    }

    #[test]
    fn total_sums_lines_in_one_currency() {
        let t = total(&[line(1, 2, 1999, "EUR"), line(2, 1, 500, "EUR")]).unwrap();
        assert_eq!((t.amount_minor, t.currency.as_str()), (4498, "EUR"));
        assert!(matches!(
            total(&[line(1, 1, 1, "EUR"), line(2, 1, 1, "USD")]),
            Err(OrdersError::MixedCurrencies(..))
        ));
        assert!(matches!(
            total(&[line(1, 1000, i64::MAX / 10, "EUR")]),
            Err(OrdersError::TotalTooLarge)
        ));
    }

    #[test]
    fn page_size_is_clamped() {
        assert_eq!(page_size(0), 1);
        assert_eq!(page_size(500), MAX_PAGE_SIZE);
        assert_eq!(page_size(20), 20);
    }
}
