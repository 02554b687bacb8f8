//! Why a failover, switchover or rejoin did not happen or did not complete. A step that
//! failed on a server keeps the server's error as its source (`error::chain` renders both).

use crate::backend::BackendError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Refused, or a check that did not hold; the message says why.
    #[error("{0}")]
    Refused(String),
    /// A step on a server failed: `context` names the server and the step.
    #[error("{context}")]
    Backend {
        context: String,
        #[source]
        source: BackendError,
    },
    #[error("the switchover task failed")]
    Task(#[source] tokio::task::JoinError),
}

impl Error {
    /// For `map_err`: a backend error in `context` ("db1: promotion").
    pub fn at(context: impl Into<String>) -> impl FnOnce(BackendError) -> Error {
        let context = context.into();
        move |source| Error::Backend { context, source }
    }

    /// The error and its causes as one line.
    pub fn line(&self) -> String {
        crate::error::chain(self)
    }
}

impl From<String> for Error {
    fn from(s: String) -> Self {
        Error::Refused(s)
    }
}

impl From<&str> for Error {
    fn from(s: &str) -> Self {
        Error::Refused(s.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_keeps_the_server_error_as_its_cause() {
        let server = crate::error::SqlError::new(1045, "28000", "Access denied for user 'repl'");
        let e = Error::at("db2: re-pointing")(BackendError::Server(server));
        assert!(std::error::Error::source(&e).is_some());
        assert_eq!(
            e.line(),
            "db2: re-pointing: ERROR 1045 (28000): Access denied for user 'repl'"
        );
    }
}
