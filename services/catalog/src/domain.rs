//! The catalog's rules as plain functions: currencies, cursors, reservation lines.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use poem_openapi::types::ParseFromJSON;
use serde_json::{Map, Value, json};
use shopmesh_openapi::catalog::{ImportReport, ProductInput, RejectedRow};

use crate::error::CatalogError;

/// Digits after the decimal point of an ISO 4217 currency (0 for JPY, 3 for KWD), or `None`
/// for a code that is not an active ISO 4217 currency. Amounts are integers in this minor unit.
pub fn minor_unit_digits(code: &str) -> Option<u8> {
    const ZERO: &[&str] = &[
        "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND",
        "VUV", "XAF", "XOF", "XPF",
    ];
    const THREE: &[&str] = &["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"];
    const FOUR: &[&str] = &["CLF", "UYW"];
    const TWO: &[&str] = &[
        "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT",
        "BGN", "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF", "CHF",
        "CNY", "COP", "CRC", "CUP", "CVE", "CZK", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR",
        "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF",
        "IDR", "ILS", "INR", "IRR", "JMD", "KES", "KGS", "KHR", "KPW", "KYD", "KZT", "LAK", "LBP",
        "LKR", "LRD", "LSL", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR",
        "MWK", "MXN", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "PAB", "PEN", "PGK",
        "PHP", "PKR", "PLN", "QAR", "RON", "RSD", "RUB", "SAR", "SBD", "SCR", "SDG", "SEK", "SGD",
        "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT", "TOP",
        "TRY", "TTD", "TWD", "TZS", "UAH", "USD", "UYU", "UZS", "VES", "WST", "XCD", "YER", "ZAR",
        "ZMW", "ZWG",
    ];
    [(ZERO, 0), (TWO, 2), (THREE, 3), (FOUR, 4)]
        .into_iter()
        .find(|(codes, _)| codes.contains(&code))
        .map(|(_, digits)| digits)
}

/// Where a page of products ends: the last id served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor(pub i64);

impl Cursor {
    /// The opaque text a client passes back.
    pub fn encode(self) -> String {
        URL_SAFE_NO_PAD.encode(format!("p{}", self.0))
    }

    /// A cursor this service made, or `None`.
    pub fn decode(text: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        let id = std::str::from_utf8(&bytes).ok()?.strip_prefix('p')?;
        id.parse().ok().filter(|id| *id >= 0).map(Self)
    }
}

/// Reservation lines merged per product and sorted by product id: one row lock each, always
/// taken in the same order, so two reservations cannot deadlock on each other's products.
pub fn merged_lines(lines: &[(i64, i32)]) -> Vec<(i64, i64)> {
    let mut merged: std::collections::BTreeMap<i64, i64> = Default::default();
    for &(product, quantity) in lines {
        *merged.entry(product).or_default() += i64::from(quantity);
    }
    merged.into_iter().collect()
}

/// The columns of an import, in order.
pub const IMPORT_COLUMNS: [&str; 7] = [
    "sku",
    "name",
    "description",
    "price_minor",
    "currency",
    "active",
    "image_url",
];

/// The most rows one import takes.
pub const MAX_IMPORT_ROWS: usize = 10_000;

/// The rows of an import CSV as products, each checked as the contract checks a
/// `ProductInput` (and its currency as a create checks it), with the rows that failed and why.
/// The report of an import that created `created` products, updated `updated` and rejected
/// `rejected` rows.
pub fn import_report(created: usize, updated: usize, rejected: Vec<RejectedRow>) -> ImportReport {
    let count = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
    ImportReport {
        imported: count(created + updated),
        created: count(created),
        updated: count(updated),
        rejected,
    }
}

/// A file that is not the documented CSV at all is an error.
pub fn import_rows(csv_text: &str) -> Result<(Vec<ProductInput>, Vec<RejectedRow>), CatalogError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(csv_text.as_bytes());
    let header = reader
        .headers()
        .map_err(|e| CatalogError::BadImport(e.to_string()))?
        .clone();
    if header.iter().map(str::trim).ne(IMPORT_COLUMNS) {
        return Err(CatalogError::BadImport(format!(
            "the header must be {}",
            IMPORT_COLUMNS.join(",")
        )));
    }
    let (mut products, mut rejected) = (Vec::new(), Vec::new());
    let mut skus = std::collections::HashSet::new();
    for (index, record) in reader.records().enumerate() {
        let row = i32::try_from(index + 1).unwrap_or(i32::MAX);
        if index >= MAX_IMPORT_ROWS {
            return Err(CatalogError::BadImport(format!(
                "an import takes at most {MAX_IMPORT_ROWS} rows"
            )));
        }
        let record = record.map_err(|e| CatalogError::BadImport(format!("row {row}: {e}")))?;
        let sku = record.get(0).map(str::to_owned).filter(|s| !s.is_empty());
        let reject = |reason: String| RejectedRow {
            row,
            sku: sku.clone(),
            reason,
        };
        match product_of(&record) {
            Err(reason) => rejected.push(reject(reason)),
            Ok(p) if !skus.insert(p.sku.clone()) => {
                rejected.push(reject(format!("sku: {} appears twice in this file", p.sku)));
            }
            Ok(p) => products.push(p),
        }
    }
    Ok((products, rejected))
}

/// One CSV record as a contract-checked `ProductInput`, or why not.
fn product_of(record: &csv::StringRecord) -> Result<ProductInput, String> {
    if record.len() != IMPORT_COLUMNS.len() {
        return Err(format!(
            "{} columns, {} expected",
            record.len(),
            IMPORT_COLUMNS.len()
        ));
    }
    let field = |i: usize| record.get(i).unwrap_or_default();
    let amount: i64 = field(3)
        .trim()
        .parse()
        .map_err(|_| format!("price_minor: {:?} is not a whole number", field(3)))?;
    let mut object = Map::new();
    object.insert("sku".into(), json!(field(0)));
    object.insert("name".into(), json!(field(1)));
    if !field(2).is_empty() {
        object.insert("description".into(), json!(field(2)));
    }
    object.insert(
        "price".into(),
        json!({"amountMinor": amount, "currency": field(4)}),
    );
    match field(5).trim() {
        "" => {}
        "true" => _ = object.insert("active".into(), json!(true)),
        "false" => _ = object.insert("active".into(), json!(false)),
        other => return Err(format!("active: {other:?} is neither true nor false")),
    }
    if !field(6).is_empty() {
        object.insert("imageUrl".into(), json!(field(6)));
    }
    let input =
        ProductInput::parse_from_json(Some(Value::Object(object))).map_err(|e| e.into_message())?;
    if minor_unit_digits(&input.price.currency).is_none() {
        return Err(CatalogError::UnknownCurrency(input.price.currency).to_string());
    }
    Ok(input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_and_three_decimal_currencies_are_known() {
        assert_eq!(minor_unit_digits("JPY"), Some(0));
        assert_eq!(minor_unit_digits("EUR"), Some(2));
        assert_eq!(minor_unit_digits("KWD"), Some(3));
        assert_eq!(minor_unit_digits("USX"), None);
        assert_eq!(minor_unit_digits("eur"), None);
    }

    #[test]
    fn cursors_round_trip_and_foreign_text_is_refused() {
        assert_eq!(Cursor::decode(&Cursor(41).encode()), Some(Cursor(41)));
        assert_eq!(Cursor::decode("not-a-cursor"), None);
    }

    #[test]
    fn lines_merge_per_product_in_id_order() {
        assert_eq!(
            merged_lines(&[(9, 1), (3, 2), (9, 4)]),
            vec![(3, 2), (9, 5)]
        );
    }
}

#[cfg(test)]
mod import_tests {
    use super::*;

    const HEADER: &str = "sku,name,description,price_minor,currency,active,image_url\n";

    #[test]
    fn good_rows_become_products_and_bad_ones_say_why() {
        let text = format!(
            "{HEADER}A-1,Mug,\"Holds 300 ml, hot\",1200,EUR,true,\nA-2,Cup,,12.5,EUR,,\nA-3,Tea,,100,USX,,\nA-1,Again,,1,EUR,,\n ,Blank,,1,EUR,,\n"
        );
        let (ok, rejected) = import_rows(&text).unwrap();
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0].description.as_deref(), Some("Holds 300 ml, hot"));
        let rows: Vec<i32> = rejected.iter().map(|r| r.row).collect();
        assert_eq!(rows, vec![2, 3, 4, 5], "{rejected:?}");
        assert!(rejected[1].reason.contains("ISO 4217"), "{rejected:?}");
    }

    #[test]
    fn a_file_without_the_documented_header_is_refused() {
        assert!(import_rows("name,sku\nx,y\n").is_err());
    }

    #[test]
    fn more_rows_than_an_import_takes_is_refused() {
        let mut text = HEADER.to_owned();
        for i in 0..=MAX_IMPORT_ROWS {
            text.push_str(&format!("S{i},N,,1,EUR,,\n"));
        }
        assert!(import_rows(&text).is_err());
    }
}
