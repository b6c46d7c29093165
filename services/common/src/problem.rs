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
    let body = serde_json::to_string(problem).unwrap_or_default();
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
        let mut resp = match self.0.call(req).await {
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
                    response(&problem)
                } else {
                    resp
                }
            }
            Err(err) => {
                let status = err.status();
                response(&Problem::new(status.as_u16(), err.to_string()))
            }
        };
        // RFC 6750 §3: a 401 names the scheme the client should authenticate with.
        if resp.status() == StatusCode::UNAUTHORIZED {
            let headers = resp.headers_mut();
            if !headers.contains_key(poem::http::header::WWW_AUTHENTICATE) {
                headers.insert(
                    poem::http::header::WWW_AUTHENTICATE,
                    poem::http::HeaderValue::from_static("Bearer"),
                );
            }
        }
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use poem::test::TestClient;
    use poem::{EndpointExt, Route, get, handler};

    use super::*;

    #[handler]
    fn refuse() -> Response {
        response(&Problem::new(401, "this operation needs a bearer token"))
    }

    #[handler]
    fn missing() -> Response {
        response(&Problem::new(404, "no such thing"))
    }

    #[tokio::test]
    async fn every_401_names_the_bearer_scheme_and_nothing_else_does() {
        let app = Route::new()
            .at("/refused", get(refuse))
            .at("/missing", get(missing))
            .with(ProblemErrors);
        let client = TestClient::new(app);
        let refused = client.get("/refused").send().await;
        refused.assert_status(StatusCode::UNAUTHORIZED);
        refused.assert_header("www-authenticate", "Bearer");
        let not_found = client.get("/missing").send().await;
        not_found.assert_status(StatusCode::NOT_FOUND);
        not_found.assert_header_is_not_exist("www-authenticate");
    }
}
