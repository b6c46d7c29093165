//! Automatic persisted queries, as Apollo Client, urql and graphql-ws clients send them: a
//! request may carry `extensions.persistedQuery = {version: 1, sha256Hash}` instead of its
//! `query`. The first time a hash is unknown the answer is `PERSISTED_QUERY_NOT_FOUND`; the
//! client sends the query with its hash once, and from then on the hash alone (over `GET`, so
//! that browsers and CDNs can cache the answer). Each replica keeps the documents it was sent,
//! bounded in bytes; a replica that has not seen one asks for it the same way.

use std::sync::Arc;

use async_graphql::{Request, Response, ServerError};

/// Bytes of query text a replica keeps, least recently used dropped first.
const KEPT_BYTES: u64 = 16 * 1024 * 1024;

/// The documents this replica was sent, by their SHA-256.
pub struct PersistedQueries {
    documents: moka::sync::Cache<String, Arc<str>>,
}

/// Why a persisted query cannot run.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The hash is unknown here: send the query with it.
    NotFound,
    /// Not `{version: 1, sha256Hash: "<64 hex digits>"}`.
    Malformed(&'static str),
    /// The query sent is not the one the hash names.
    Mismatch,
}

impl Refused {
    /// The answer a client's persisted-query link understands.
    pub fn response(&self) -> Response {
        let (message, code) = match self {
            // Apollo's link and urql's exchange look for this message or code.
            Self::NotFound => ("PersistedQueryNotFound", "PERSISTED_QUERY_NOT_FOUND"),
            Self::Malformed(why) => (*why, "BAD_REQUEST"),
            Self::Mismatch => ("provided sha does not match query", "BAD_REQUEST"),
        };
        let mut error = ServerError::new(message, None);
        error
            .extensions
            .get_or_insert_with(Default::default)
            .set("code", code);
        Response::from_errors(vec![error])
    }
}

impl PersistedQueries {
    /// None kept yet.
    pub fn new() -> Self {
        Self {
            documents: moka::sync::Cache::builder()
                .weigher(|hash: &String, query: &Arc<str>| {
                    u32::try_from(hash.len() + query.len()).unwrap_or(u32::MAX)
                })
                .max_capacity(KEPT_BYTES)
                .build(),
        }
    }

    /// Fills in `request`'s query from its hash, or keeps the query it carries under its hash.
    /// A request without `extensions.persistedQuery` is left as it is.
    pub fn resolve(&self, request: &mut Request) -> Result<(), Refused> {
        let Some(extension) = request.extensions.get("persistedQuery") else {
            return Ok(());
        };
        let hash = hash_of(extension)?;
        if request.query.is_empty() {
            let query = self.documents.get(&hash).ok_or(Refused::NotFound)?;
            request.query = query.to_string();
            return Ok(());
        }
        if sha256_hex(request.query.as_bytes()) != hash {
            return Err(Refused::Mismatch);
        }
        self.documents.insert(hash, request.query.as_str().into());
        Ok(())
    }
}

impl Default for PersistedQueries {
    fn default() -> Self {
        Self::new()
    }
}

/// The lowercase hex SHA-256 that `extension` names.
fn hash_of(extension: &async_graphql::Value) -> Result<String, Refused> {
    let async_graphql::Value::Object(fields) = extension else {
        return Err(Refused::Malformed(
            "`extensions.persistedQuery` must be an object",
        ));
    };
    if fields.get("version") != Some(&async_graphql::Value::from(1)) {
        return Err(Refused::Malformed(
            "`extensions.persistedQuery.version` must be 1",
        ));
    }
    match fields.get("sha256Hash") {
        Some(async_graphql::Value::String(hash))
            if hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            Ok(hash.to_ascii_lowercase())
        }
        _ => Err(Refused::Malformed(
            "`extensions.persistedQuery.sha256Hash` must be 64 hex digits",
        )),
    }
}

/// The SHA-256 of `bytes` in lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(query: &str, hash: &str) -> Request {
        let mut request = Request::new(query);
        let extension = serde_json::json!({"version": 1, "sha256Hash": hash});
        request.extensions.0.insert(
            "persistedQuery".into(),
            async_graphql::Value::from_json(extension).unwrap(),
        );
        request
    }

    #[test]
    fn a_hash_is_unknown_until_its_query_is_sent_with_it() {
        let kept = PersistedQueries::new();
        let query = "{ products(first: 1) { totalCount } }";
        let hash = sha256_hex(query.as_bytes());
        assert_eq!(
            kept.resolve(&mut request("", &hash)),
            Err(Refused::NotFound)
        );
        assert_eq!(kept.resolve(&mut request(query, &hash)), Ok(()));
        let mut by_hash = request("", &hash.to_ascii_uppercase());
        assert_eq!(kept.resolve(&mut by_hash), Ok(()));
        assert_eq!(by_hash.query, query);
    }

    #[test]
    fn a_query_is_kept_only_under_its_own_hash() {
        let kept = PersistedQueries::new();
        let other = sha256_hex(b"{ me { id } }");
        let sent = request("{ products(first: 1) { totalCount } }", &other);
        assert_eq!(kept.resolve(&mut { sent }), Err(Refused::Mismatch));
        assert_eq!(
            kept.resolve(&mut request("", &other)),
            Err(Refused::NotFound)
        );
        let short = kept.resolve(&mut request("", "abc"));
        assert!(matches!(short, Err(Refused::Malformed(_))), "{short:?}");
    }

    #[test]
    fn the_hash_is_sha256_in_hex() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
