//! GraphQL over HTTP as its spec (graphql.github.io/graphql-over-http) has it: what a request
//! may look like and how an answer is framed. A request is a JSON object POSTed as
//! `application/json`, or the URL parameters of a GET; anything else is refused with a 4xx
//! before it reaches the executor. The answer's media type follows `Accept`: with
//! `application/graphql-response+json` a request that did not run (it did not parse, validate
//! or coerce its variables) is a 400, with `application/json` (the legacy type, and what a
//! missing `Accept` or `*/*` gets) it is a 200, as the spec's watershed rules say. Either way a
//! request that did not run has no `data` key.

use async_graphql::Variables;
use poem::http::{StatusCode, header};
use poem::{Request, RequestBody, Response};
use serde_json::{Map, Value};

use crate::limits;

/// `Content-Type` of GraphQL responses a client asks for with `Accept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseMedia {
    /// `application/json`: every answer to a well-formed request is a 200.
    Json,
    /// `application/graphql-response+json`: the status says whether the request ran.
    GraphqlResponse,
}

impl ResponseMedia {
    /// The media type `accept` prefers; `application/json` unless it ranks
    /// `application/graphql-response+json` at least as high.
    pub fn from_accept(accept: Option<&str>) -> Self {
        let mut best = (Self::Json, -1.0_f32);
        for range in accept.unwrap_or_default().split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default().to_ascii_lowercase();
            let weight = parts
                .find_map(|p| p.strip_prefix("q="))
                .and_then(|q| q.parse().ok())
                .unwrap_or(1.0);
            let candidate = match media.as_str() {
                "application/graphql-response+json" => Self::GraphqlResponse,
                _ => Self::Json,
            };
            if weight > 0.0
                && (weight > best.1 || (weight == best.1 && candidate == Self::GraphqlResponse))
            {
                best = (candidate, weight);
            }
        }
        best.0
    }

    /// The `Content-Type` of an answer in this media type.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json; charset=utf-8",
            Self::GraphqlResponse => "application/graphql-response+json; charset=utf-8",
        }
    }
}

/// Why a request is not a GraphQL request: its status and message.
#[derive(Debug)]
pub struct Malformed {
    status: StatusCode,
    message: String,
}

impl Malformed {
    fn bad(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    /// The refusal as a GraphQL response: one error with `extensions.code` and no `data`.
    pub fn into_response(self, media: ResponseMedia) -> Response {
        let code = match self.status {
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "UNSUPPORTED_MEDIA_TYPE",
            _ => limits::BAD_REQUEST_CODE,
        };
        let body = serde_json::json!({"errors": [{
            "message": self.message,
            "extensions": {"code": code},
        }]});
        let mut answer = Response::builder()
            .status(self.status)
            .content_type(media.content_type());
        if self.status == StatusCode::UNSUPPORTED_MEDIA_TYPE {
            answer = answer.header("accept-post", "application/json");
        }
        answer.body(body.to_string())
    }
}

/// A GraphQL request as received: what it asks, or why it is not one, and the media type
/// its answer is framed in.
pub struct Received {
    /// The request, or why it cannot run.
    pub request: Result<async_graphql::Request, Malformed>,
    /// What the client accepts.
    pub media: ResponseMedia,
}

impl<'a> poem::FromRequest<'a> for Received {
    async fn from_request(req: &'a Request, body: &mut RequestBody) -> poem::Result<Self> {
        let accept = req
            .headers()
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok());
        Ok(Self {
            media: ResponseMedia::from_accept(accept),
            request: read(req, body).await,
        })
    }
}

/// The GraphQL request `req` carries: the URL's parameters on a GET, a JSON object on a POST.
async fn read(req: &Request, body: &mut RequestBody) -> Result<async_graphql::Request, Malformed> {
    if req.method() == poem::http::Method::GET {
        return from_url(req.uri().query().unwrap_or_default());
    }
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if !is_json(content_type) {
        return Err(Malformed {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            message: format!(
                "a GraphQL POST is a JSON object sent as `Content-Type: application/json`, not {}",
                content_type.map_or("a body without a content type".to_owned(), |t| format!(
                    "`{t}`"
                ))
            ),
        });
    }
    let bytes = body
        .take()
        .map_err(|e| Malformed::bad(e.to_string()))?
        .into_bytes()
        .await
        .map_err(|e| Malformed::bad(format!("the body could not be read: {e}")))?;
    if bytes.is_empty() {
        return Err(Malformed::bad(
            "the request has no body; send {\"query\": \"…\"}",
        ));
    }
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| Malformed::bad(format!("the body is not JSON: {e}")))?;
    let Value::Object(fields) = value else {
        return Err(Malformed::bad(
            "the body must be a JSON object such as {\"query\": \"…\"} (batches are not accepted)",
        ));
    };
    from_fields(fields)
}

/// `application/json`, with no charset or UTF-8's.
fn is_json(content_type: Option<&str>) -> bool {
    let Some(content_type) = content_type else {
        return false;
    };
    let mut parts = content_type.split(';').map(str::trim);
    let media = parts.next().unwrap_or_default();
    media.eq_ignore_ascii_case("application/json")
        && parts.all(|p| {
            p.split_once('=').is_none_or(|(name, value)| {
                !name.trim().eq_ignore_ascii_case("charset")
                    || value.trim_matches('"').eq_ignore_ascii_case("utf-8")
            })
        })
}

/// A GET's parameters: `variables` and `extensions` are URL-encoded JSON.
pub fn from_url(query: &str) -> Result<async_graphql::Request, Malformed> {
    let mut fields = Map::new();
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let value = match name.as_ref() {
            "variables" | "extensions" => serde_json::from_str(&value)
                .map_err(|e| Malformed::bad(format!("`{name}` is not JSON: {e}")))?,
            _ => Value::String(value.into_owned()),
        };
        fields.insert(name.into_owned(), value);
    }
    from_fields(fields)
}

/// The request's parameters, each of the type the spec gives it.
fn from_fields(mut fields: Map<String, Value>) -> Result<async_graphql::Request, Malformed> {
    // A persisted query may come as its hash alone; [`crate::persisted`] fills it in.
    let hashed = fields
        .get("extensions")
        .and_then(|e| e.get("persistedQuery"))
        .is_some();
    let query = match fields.remove("query") {
        Some(Value::String(query)) => query,
        Some(_) => return Err(Malformed::bad("`query` must be a string")),
        None if hashed => String::new(),
        None => return Err(Malformed::bad("`query` is missing")),
    };
    let mut request = async_graphql::Request::new(query);
    match fields.remove("operationName") {
        None | Some(Value::Null) => {}
        Some(Value::String(name)) => request = request.operation_name(name),
        Some(_) => return Err(Malformed::bad("`operationName` must be a string or null")),
    }
    match fields.remove("variables") {
        None | Some(Value::Null) => {}
        Some(variables @ Value::Object(_)) => {
            request = request.variables(Variables::from_json(variables));
        }
        Some(_) => return Err(Malformed::bad("`variables` must be an object or null")),
    }
    match fields.remove("extensions") {
        None | Some(Value::Null) => {}
        Some(Value::Object(extensions)) => {
            for (name, value) in extensions {
                let value = async_graphql::Value::from_json(value)
                    .map_err(|e| Malformed::bad(format!("`extensions.{name}`: {e}")))?;
                request.extensions.0.insert(name, value);
            }
        }
        Some(_) => return Err(Malformed::bad("`extensions` must be an object or null")),
    }
    Ok(request)
}

/// How long a shared cache may keep a public answer to a `GET`.
pub const PUBLIC_MAX_AGE_SECS: u32 = 10;

/// The caching headers of an answer to a `GET`: an answer to a request without credentials
/// that ran without errors (one [`respond`] gave no `Cache-Control`) is public for
/// [`PUBLIC_MAX_AGE_SECS`] with an `ETag` (and a `304` to an `If-None-Match` that names it);
/// any other is `private, no-store`, so no shared cache keeps one person's data.
pub async fn cache_get(answer: Response, public: bool, if_none_match: Option<&str>) -> Response {
    let kept_private = answer.headers().contains_key(header::CACHE_CONTROL);
    if !public || kept_private || answer.status() != StatusCode::OK {
        let mut answer = answer;
        answer.headers_mut().insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("private, no-store"),
        );
        return answer;
    }
    let (parts, body) = answer.into_parts();
    let Ok(bytes) = body.into_bytes().await else {
        return Response::builder()
            .status(StatusCode::INTERNAL_SERVER_ERROR)
            .finish();
    };
    let etag = format!("\"{}\"", &crate::persisted::sha256_hex(&bytes)[..32]);
    let matches = if_none_match.is_some_and(|tags| {
        tags.split(',')
            .any(|t| t.trim().trim_start_matches("W/") == etag)
    });
    let mut answer = if matches {
        let mut unchanged = Response::builder()
            .status(StatusCode::NOT_MODIFIED)
            .finish();
        for name in [
            header::CONTENT_TYPE,
            header::HeaderName::from_static("ratelimit"),
        ] {
            if let Some(value) = parts.headers.get(&name) {
                unchanged.headers_mut().insert(name, value.clone());
            }
        }
        unchanged
    } else {
        Response::from_parts(parts, bytes.into())
    };
    let headers = answer.headers_mut();
    let control = format!("public, max-age={PUBLIC_MAX_AGE_SECS}");
    for (name, value) in [
        (header::CACHE_CONTROL, control),
        (header::ETAG, etag),
        (header::VARY, "Authorization, Accept".to_owned()),
    ] {
        if let Ok(value) = header::HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    answer
}

/// `response` framed for `media`: a request that did not run has no `data` and, for
/// `application/graphql-response+json`, a 4xx (429 over the rate limit, 400 otherwise).
pub fn respond(response: async_graphql::Response, media: ResponseMedia) -> Response {
    let not_run = limits::is_request_error(&response);
    let status = match media {
        ResponseMedia::GraphqlResponse if not_run => {
            let limited = response.errors.iter().any(|e| {
                e.extensions
                    .as_ref()
                    .and_then(|x| x.get("code"))
                    .is_some_and(|c| *c == async_graphql::Value::from(limits::RATE_LIMITED_CODE))
            });
            if limited {
                StatusCode::TOO_MANY_REQUESTS
            } else {
                StatusCode::BAD_REQUEST
            }
        }
        _ => StatusCode::OK,
    };
    let body = if not_run {
        serde_json::to_vec(&serde_json::json!({ "errors": response.errors }))
    } else {
        serde_json::to_vec(&response)
    };
    let mut answer = Response::builder()
        .status(status)
        .content_type(media.content_type());
    if not_run || !response.errors.is_empty() {
        // An answer with errors is not one to keep, even for a public query.
        answer = answer.header(header::CACHE_CONTROL, "private, no-store");
    } else if let Some(value) = response.cache_control.value() {
        answer = answer.header(header::CACHE_CONTROL, value);
    }
    for (name, value) in response.http_headers.iter() {
        answer = answer.header(name, value);
    }
    match body {
        Ok(body) => answer.body(body),
        Err(e) => Response::builder()
            .status(StatusCode::INTERNAL_SERVER_ERROR)
            .body(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_chooses_the_media_type() {
        for (accept, media) in [
            (None, ResponseMedia::Json),
            (Some("*/*"), ResponseMedia::Json),
            (Some("application/json"), ResponseMedia::Json),
            (
                Some("application/graphql-response+json"),
                ResponseMedia::GraphqlResponse,
            ),
            (
                Some("application/graphql-response+json, application/json;q=0.9"),
                ResponseMedia::GraphqlResponse,
            ),
            (
                Some("application/graphql-response+json;q=0.5, application/json"),
                ResponseMedia::Json,
            ),
        ] {
            assert_eq!(ResponseMedia::from_accept(accept), media, "{accept:?}");
        }
    }

    #[test]
    fn only_utf8_json_is_a_post_body() {
        assert!(is_json(Some("application/json")));
        assert!(is_json(Some("Application/JSON; charset=UTF-8")));
        assert!(!is_json(Some("application/json; charset=latin1")));
        assert!(!is_json(Some("text/plain;charset=UTF-8")));
        assert!(!is_json(None));
    }

    #[test]
    fn parameters_of_the_wrong_type_are_refused() {
        let bad = |v: Value| from_fields(v.as_object().cloned().unwrap_or_default()).is_err();
        assert!(bad(serde_json::json!({})));
        assert!(bad(serde_json::json!({"qeury": "{ a }"})));
        assert!(bad(serde_json::json!({"query": 0})));
        assert!(bad(serde_json::json!({"query": "{ a }", "variables": []})));
        assert!(bad(
            serde_json::json!({"query": "{ a }", "operationName": 1})
        ));
        assert!(bad(
            serde_json::json!({"query": "{ a }", "extensions": "x"})
        ));
        assert!(!bad(
            serde_json::json!({"query": "{ a }", "variables": null, "operationName": null})
        ));
    }

    #[test]
    fn a_get_takes_url_encoded_json_variables_and_the_operation_name() {
        let request =
            from_url("query=query%20A%20%7B%20a%20%7D&operationName=A&variables=%7B%22x%22%3A1%7D")
                .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(request.operation_name.as_deref(), Some("A"));
        assert_eq!(request.variables.into_value().to_string(), "{x: 1}");
        assert!(from_url("query=%7Ba%7D&variables=nope").is_err());
    }
}
