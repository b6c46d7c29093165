//! User rules as plain functions.

use crate::error::UsersError;

/// Longest accepted name, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// A user's editable fields after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserFields {
    /// Trimmed, 1..=200 characters.
    pub name: String,
    /// Trimmed; its syntax was checked by the contract.
    pub email: String,
}

/// Trims and checks a name and an email. The contract already enforces lengths and email syntax;
/// this also rejects names that are only whitespace.
pub fn validate(name: &str, email: &str) -> Result<UserFields, UsersError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(UsersError::Invalid("name must not be blank".to_owned()));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(UsersError::Invalid(format!(
            "name must be at most {MAX_NAME_CHARS} characters"
        )));
    }
    let email = email.trim();
    if email.is_empty() || !email.contains('@') {
        return Err(UsersError::Invalid("email is not valid".to_owned()));
    }
    Ok(UserFields {
        name: name.to_owned(),
        email: email.to_owned(),
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
    fn key_format() {
        assert_eq!(cache_key("", 7), "user:7");
        assert_eq!(cache_key("t1:", 7), "t1:user:7");
    }
}
