//! Typed configuration from environment variables, with defaults that match docker-compose.

use std::str::FromStr;

/// A variable is set but cannot be parsed.
#[derive(Debug, thiserror::Error)]
#[error("environment variable {key}={value:?} is invalid: {reason}")]
pub struct ConfigError {
    /// Variable name.
    pub key: String,
    /// Its value.
    pub value: String,
    /// Why it was rejected.
    pub reason: String,
}

/// Source of configuration values; the process environment in production, a map in tests.
pub trait Env {
    /// The value of `key`, if set and not empty.
    fn get(&self, key: &str) -> Option<String>;

    /// The value of `key` parsed as `T`, or `default` when unset.
    fn parse_or<T>(&self, key: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        match self.get(key) {
            None => Ok(default),
            Some(value) => value.parse().map_err(|e: T::Err| ConfigError {
                key: key.to_owned(),
                reason: e.to_string(),
                value,
            }),
        }
    }

    /// The value of `key`, or `default` when unset.
    fn string_or(&self, key: &str, default: &str) -> String {
        self.get(key).unwrap_or_else(|| default.to_owned())
    }
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn get(&self, key: &str) -> Option<String> {
        std::env::var(key).ok().filter(|v| !v.is_empty())
    }
}

impl Env for std::collections::BTreeMap<String, String> {
    fn get(&self, key: &str) -> Option<String> {
        std::collections::BTreeMap::get(self, key)
            .filter(|v| !v.is_empty())
            .cloned()
    }
}

impl Env for std::collections::HashMap<String, String> {
    fn get(&self, key: &str) -> Option<String> {
        std::collections::HashMap::get(self, key)
            .filter(|v| !v.is_empty())
            .cloned()
    }
}

/// Builds `mysql://user:password@host:port/database` from the seed's `DB_*` variables, unless
/// `DATABASE_URL` is set.
pub fn mysql_url(env: &impl Env, default_db: &str) -> Result<String, ConfigError> {
    if let Some(url) = env.get("DATABASE_URL") {
        return Ok(url);
    }
    let host = env.string_or("DB_HOST", "localhost");
    let port: u16 = env.parse_or("DB_PORT", 3306)?;
    let user = env.string_or("DB_USER", "root");
    let password = env.string_or("DB_PASSWORD", "");
    let db = env.string_or("DB_NAME", default_db);
    let auth = if password.is_empty() {
        user
    } else {
        format!("{user}:{}", encode_userinfo(&password))
    };
    Ok(format!("mysql://{auth}@{host}:{port}/{db}"))
}

/// Builds a Redis URL from `REDIS_URL`, or `REDIS_HOST`, `REDIS_PORT`, `REDIS_PASSWORD`.
pub fn redis_url(env: &impl Env) -> Result<String, ConfigError> {
    if let Some(url) = env.get("REDIS_URL") {
        return Ok(url);
    }
    let host = env.string_or("REDIS_HOST", "localhost");
    let port: u16 = env.parse_or("REDIS_PORT", 6379)?;
    Ok(match env.get("REDIS_PASSWORD") {
        Some(pw) => format!("redis://:{}@{host}:{port}/", encode_userinfo(&pw)),
        None => format!("redis://{host}:{port}/"),
    })
}

fn encode_userinfo(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn mysql_url_from_parts_with_escaped_password() {
        let e = env(&[
            ("DB_HOST", "mysql"),
            ("DB_PASSWORD", "p@ss word"),
            ("DB_NAME", "shop"),
        ]);
        assert_eq!(
            mysql_url(&e, "x").unwrap(),
            "mysql://root:p%40ss%20word@mysql:3306/shop"
        );
    }

    #[test]
    fn database_url_wins() {
        let e = env(&[("DATABASE_URL", "mysql://a@b/c"), ("DB_HOST", "ignored")]);
        assert_eq!(mysql_url(&e, "x").unwrap(), "mysql://a@b/c");
    }

    #[test]
    fn redis_url_with_password() {
        let e = env(&[("REDIS_HOST", "redis"), ("REDIS_PASSWORD", "secret")]);
        assert_eq!(redis_url(&e).unwrap(), "redis://:secret@redis:6379/");
    }

    #[test]
    fn bad_number_names_the_variable() {
        let e = env(&[("DB_PORT", "eleven")]);
        let err = mysql_url(&e, "x").unwrap_err();
        assert_eq!(err.key, "DB_PORT");
        assert!(err.to_string().contains("eleven"));
    }

    #[test]
    fn empty_value_counts_as_unset() {
        let e = env(&[("DB_PORT", "")]);
        assert_eq!(e.parse_or("DB_PORT", 3306u16).unwrap(), 3306);
    }
}
