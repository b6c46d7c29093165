//! Errors the generator reports: always naming the file, the place in it and the problem.

use std::path::PathBuf;

/// Anything that stops generation.
#[derive(Debug, thiserror::Error)]
pub enum CodegenError {
    /// A contract is malformed, inconsistent, or uses something the generator does not support.
    #[error("{file}: {location}: {problem}")]
    Schema {
        /// The contract file.
        file: PathBuf,
        /// Where in the file: `line L column C`, or a path such as `paths./orders.post`.
        location: String,
        /// What is wrong.
        problem: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl CodegenError {
    /// A schema error at `location` in `file`.
    pub fn schema(
        file: impl Into<PathBuf>,
        location: impl Into<String>,
        problem: impl Into<String>,
    ) -> Self {
        Self::Schema {
            file: file.into(),
            location: location.into(),
            problem: problem.into(),
        }
    }

    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// Result of generator operations.
pub type Result<T, E = CodegenError> = std::result::Result<T, E>;
