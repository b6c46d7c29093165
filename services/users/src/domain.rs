//! User rules as plain functions.

use crate::error::UsersError;

/// Longest accepted name, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// A user's editable fields after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserFields {
    /// Trimmed, 1..=200 characters.
    pub name: String,
    /// In its one stored form ([`normalize_email`]); its syntax was checked by the contract.
    pub email: String,
}

/// The one form of an email the service stores and looks up: trimmed, then NFKC with Unicode
/// case folding (NFKC_Casefold), so that full-width, compatibility and case variants of one
/// address are one account. The column's accent-insensitive collation then refuses a second
/// account whose email differs only in accents.
pub fn normalize_email(email: &str) -> String {
    use unicode_normalization::UnicodeNormalization as _;
    let folded = caseless::default_case_fold_str(&email.trim().nfkc().collect::<String>());
    folded.nfkc().collect()
}

/// Characters a name may not contain: controls (NUL included), and the invisible format
/// characters (zero-width spaces and joiners, bidirectional overrides and isolates) that let
/// one name pass for another on screen.
fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
            | '\u{00AD}'
            | '\u{061C}')
}

/// Trims and checks a name and an email. The contract already enforces lengths and email syntax;
/// this also rejects names that are only whitespace.
pub fn validate(name: &str, email: &str) -> Result<UserFields, UsersError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(UsersError::Invalid("name must not be blank".to_owned()));
    }
    if name.chars().any(is_hidden) {
        return Err(UsersError::Invalid(
            "name must not contain control or invisible formatting characters".to_owned(),
        ));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(UsersError::Invalid(format!(
            "name must be at most {MAX_NAME_CHARS} characters"
        )));
    }
    let email = normalize_email(email);
    if email.is_empty() || !email.contains('@') || email.chars().any(is_hidden) {
        return Err(UsersError::Invalid("email is not valid".to_owned()));
    }
    Ok(UserFields {
        name: name.to_owned(),
        email,
    })
}

/// Redis key of a user: `{prefix}user:{id}` (the prefix is empty in production).
pub fn cache_key(prefix: &str, id: i64) -> String {
    format!("{prefix}user:{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_and_accepts() {
        let f = validate("  Ada Lovelace ", " ada@example.com ").unwrap();
        assert_eq!(
            f,
            UserFields {
                name: "Ada Lovelace".into(),
                email: "ada@example.com".into()
            }
        );
    }

    #[test]
    fn rejects_blank_and_long_names() {
        assert!(validate("   ", "a@b.c").is_err());
        assert!(validate(&"x".repeat(201), "a@b.c").is_err());
        assert!(
            validate(&"é".repeat(200), "a@b.c").is_ok(),
            "characters, not bytes"
        );
    }

    #[test]
    fn spelling_variants_of_an_email_are_one_email() {
        for variant in [
            "Lock1@Example.com",
            " lock1@example.com ",
            "\u{FF4C}ock1@example.com",
            "LOCK1@EXAMPLE.COM",
            "lock1@\u{FF45}xample.com",
        ] {
            assert_eq!(normalize_email(variant), "lock1@example.com", "{variant}");
        }
        assert_eq!(
            normalize_email("STRASSE@example.com"),
            normalize_email("straße@example.com")
        );
        assert_ne!(
            normalize_email("l\u{f3}ck1@example.com"),
            "lock1@example.com",
            "accents are the collation's"
        );
    }

    #[test]
    fn hidden_characters_are_refused_in_names_and_emails() {
        for name in [
            "Al\u{200B}ice",
            "Ali\u{202E}ce",
            "Al\u{0}ice",
            "A\u{2066}b",
            "\u{FEFF}Bob",
        ] {
            assert!(validate(name, "a@b.c").is_err(), "{name:?}");
        }
        assert!(validate("Alice", "al\u{200D}ice@example.com").is_err());
        assert!(validate("Zoë Ångström", "a@b.c").is_ok());
    }

    #[test]
    fn key_format() {
        assert_eq!(cache_key("", 7), "user:7");
        assert_eq!(cache_key("t1:", 7), "t1:user:7");
    }
}
