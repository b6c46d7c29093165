//! RFC 9457 problem details: the one error body every shopmesh REST endpoint answers with.

use poem::http::StatusCode;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result};
use serde::{Deserialize, Serialize};

/// Media type of problem bodies.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// A problem detail body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// A URI naming the problem type; `about:blank` means "see the status".
    #[serde(rename = "type")]
    pub kind: String,
    /// The status's reason phrase.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// What went wrong, for a person.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Problem {
    /// A problem for `status` with `detail`.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            kind: "about:blank".to_owned(),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: Some(detail.into()),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Response::builder()
            .status(status)
            .content_type(PROBLEM_JSON)
            .body(serde_json::to_vec(&self).unwrap_or_default())
    }
}

/// Middleware that turns every error response without a JSON body (unknown route, wrong
/// method, body too large, poem extractor errors) into a problem+json response, so clients
/// see one error format whatever layer rejected the request.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProblemErrors;

impl<E: Endpoint> Middleware<E> for ProblemErrors {
    type Output = ProblemErrorsEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        ProblemErrorsEndpoint(ep)
    }
}

/// Endpoint produced by [`ProblemErrors`].
pub struct ProblemErrorsEndpoint<E>(E);

fn is_json(resp: &Response) -> bool {
    resp.content_type().is_some_and(|ct| ct.contains("json"))
}

impl<E: Endpoint> Endpoint for ProblemErrorsEndpoint<E> {
    type Output = Response;

    async fn call(&self, req: Request) -> Result<Self::Output> {
        match self.0.call(req).await {
            Ok(out) => {
                let resp = out.into_response();
                let status = resp.status();
                if (status.is_client_error() || status.is_server_error()) && !is_json(&resp) {
                    let mut problem =
                        Problem::new(status, status.canonical_reason().unwrap_or("error"));
                    if let Ok(text) = resp.into_body().into_string().await
                        && !text.trim().is_empty()
                    {
                        problem.detail = Some(text);
                    }
                    return Ok(problem.into_response());
                }
                Ok(resp)
            }
            Err(err) => {
                let status = err.status();
                Ok(Problem::new(status, err.to_string()).into_response())
            }
        }
    }
}
