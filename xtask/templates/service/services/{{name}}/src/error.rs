//! The {{name}} service's one error type, mapped once to a problem (and so to a response).

use shopmesh_openapi::runtime::Problem;

/// Everything that can go wrong serving a {{name}} request.
#[derive(Debug, thiserror::Error)]
pub enum {{Name}}Error {
    /// No item has this id.
    #[error("item {0} does not exist")]
    NotFound(i64),
    /// The database could not be reached or failed.
    #[error("database unavailable: {0}")]
    Unavailable(#[from] sqlx::Error),
}

impl {{Name}}Error {
    /// HTTP status for this error.
    pub fn status(&self) -> u16 {
        match self {
            Self::NotFound(_) => 404,
            Self::Unavailable(_) => 503,
        }
    }
}

/// The problem a client sees; internal details of database failures are logged, not sent.
impl From<{{Name}}Error> for Problem {
    fn from(e: {{Name}}Error) -> Self {
        let detail = match &e {
            {{Name}}Error::Unavailable(err) => {
                tracing::warn!(error = %err, "database unavailable");
                "the {{name}} database is unavailable; retry later".to_owned()
            }
            other => other.to_string(),
        };
        Problem::new(e.status(), detail)
    }
}
