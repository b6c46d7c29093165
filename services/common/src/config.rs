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

/// A connection URL that may carry a password. `Debug` and `Display` show it with the password
/// replaced by `***` (host, port and database stay visible, as logs need them); only
/// [`SecretUrl::expose`] gives the URL to connect with.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(String);

impl SecretUrl {
    /// Wraps `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL itself, password included: pass it to a client, never to a log.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with its password replaced by `***`.
    pub fn redacted(&self) -> String {
        match url::Url::parse(&self.0) {
            Ok(mut parsed) if parsed.password().is_some() => {
                let _ = parsed.set_password(Some("***"));
                parsed.into()
            }
            Ok(_) => self.0.clone(),
            // Not a single-host URL (e.g. a MongoDB seed list): hide all the userinfo.
            Err(_) => match (self.0.split_once("://"), self.0.rfind('@')) {
                (Some((scheme, _)), Some(at)) => format!("{scheme}://***{}", &self.0[at..]),
                _ => self.0.clone(),
            },
        }
    }
}

impl From<String> for SecretUrl {
    fn from(url: String) -> Self {
        Self(url)
    }
}

impl From<&str> for SecretUrl {
    fn from(url: &str) -> Self {
        Self(url.to_owned())
    }
}

impl std::fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl std::fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
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
pub fn mysql_url(env: &impl Env, default_db: &str) -> Result<SecretUrl, ConfigError> {
    if let Some(url) = env.get("DATABASE_URL") {
        return Ok(url.into());
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
    Ok(format!("mysql://{auth}@{host}:{port}/{db}").into())
}

/// Builds a Redis URL from `REDIS_URL`, or `REDIS_HOST`, `REDIS_PORT`, `REDIS_PASSWORD`.
pub fn redis_url(env: &impl Env) -> Result<SecretUrl, ConfigError> {
    if let Some(url) = env.get("REDIS_URL") {
        return Ok(url.into());
    }
    let host = env.string_or("REDIS_HOST", "localhost");
    let port: u16 = env.parse_or("REDIS_PORT", 6379)?;
    Ok(match env.get("REDIS_PASSWORD") {
        Some(pw) => format!("redis://:{}@{host}:{port}/", encode_userinfo(&pw)),
        None => format!("redis://{host}:{port}/"),
    }
    .into())
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

/// A comma-separated list of CIDRs (a bare address is a /32 or /128).
pub fn cidrs(env: &impl Env, key: &str) -> Result<Vec<ipnet::IpNet>, ConfigError> {
    let Some(value) = env.get(key) else {
        return Ok(Vec::new());
    };
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<ipnet::IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|e| ConfigError {
                    key: key.to_owned(),
                    value: value.clone(),
                    reason: format!("{s:?} is not a CIDR or address: {e}"),
                })
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
            mysql_url(&e, "x").unwrap().expose(),
            "mysql://root:p%40ss%20word@mysql:3306/shop"
        );
    }

    #[test]
    fn database_url_wins() {
        let e = env(&[("DATABASE_URL", "mysql://a@b/c"), ("DB_HOST", "ignored")]);
        assert_eq!(mysql_url(&e, "x").unwrap().expose(), "mysql://a@b/c");
    }

    #[test]
    fn redis_url_with_password() {
        let e = env(&[("REDIS_HOST", "redis"), ("REDIS_PASSWORD", "secret")]);
        assert_eq!(
            redis_url(&e).unwrap().expose(),
            "redis://:secret@redis:6379/"
        );
    }

    #[test]
    fn debug_and_display_never_show_a_password() {
        let e = env(&[("DB_HOST", "db"), ("DB_PASSWORD", "hunter2")]);
        let url = mysql_url(&e, "shop").unwrap();
        for shown in [format!("{url:?}"), url.to_string()] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(shown.contains("root:***@db:3306/shop"), "{shown}");
        }
        let seeds = SecretUrl::from("mongodb://u:pw@h1:27017,h2:27017/?replicaSet=r");
        assert_eq!(
            seeds.to_string(),
            "mongodb://***@h1:27017,h2:27017/?replicaSet=r"
        );
        assert_eq!(
            SecretUrl::from("amqp://mq:5672/%2f").to_string(),
            "amqp://mq:5672/%2f"
        );
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
