//! The catalog's rules as plain functions: currencies, cursors, reservation lines.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

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
