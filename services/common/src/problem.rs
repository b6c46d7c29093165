//! RFC 9457 problem details: the one error body every shopmesh REST endpoint answers with.

use poem::http::StatusCode;
use poem::{Endpoint, IntoResponse, Middleware, Request, Response, Result};

/// Media type of problem bodies.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The one problem type, generated from the contracts' shared `Problem` schema.
pub use shopmesh_openapi::runtime::Problem;

/// `problem` as a problem+json response with its own status.
pub fn response(problem: &Problem) -> Response {
    let status =
        StatusCode::from_u16(problem.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = poem_openapi::types::ToJSON::to_json(problem)
        .map(|v| v.to_string())
        .unwrap_or_default();
    Response::builder()
        .status(status)
        .content_type(PROBLEM_JSON)
        .body(body)
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
                    let mut problem = Problem::new(
                        status.as_u16(),
                        status.canonical_reason().unwrap_or("error"),
                    );
                    if let Ok(text) = resp.into_body().into_string().await
                        && !text.trim().is_empty()
                    {
                        problem.detail = Some(text);
                    }
                    return Ok(response(&problem));
                }
                Ok(resp)
            }
            Err(err) => {
                let status = err.status();
                Ok(response(&Problem::new(status.as_u16(), err.to_string())))
            }
        }
    }
}
