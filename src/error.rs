//! Errors that end up in front of a client: who failed, whether the connection is dead, and
//! which ERR packet the client receives.

use crate::protocol::reply;

/// An error reported to a client as an ERR packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ERROR {code} ({state}): {message}")]
pub struct SqlError {
    pub code: u16,
    pub state: String,
    pub message: String,
}

impl SqlError {
    pub fn new(code: u16, state: &str, message: impl Into<String>) -> Self {
        Self {
            code,
            state: state.into(),
            message: message.into(),
        }
    }
    /// Parses a server's ERR payload (kept verbatim for the client).
    pub fn from_packet(payload: &[u8]) -> Self {
        match reply::parse_err(payload) {
            Some((code, state, message)) => Self {
                code,
                state,
                message,
            },
            None => Self::new(2027, "HY000", "malformed error packet from backend"),
        }
    }
    pub fn to_packet(&self) -> Vec<u8> {
        reply::err(self.code, &self.state, &self.message)
    }
    pub fn access_denied(user: &str, host: &str, with_password: bool) -> Self {
        let using = if with_password { "YES" } else { "NO" };
        Self::new(
            1045,
            "28000",
            format!("Access denied for user '{user}'@'{host}' (using password: {using})"),
        )
    }
    pub fn backend_unavailable(name: &str, why: &str) -> Self {
        Self::new(
            2013,
            "HY000",
            format!("Sluice: backend {name} unavailable: {why}"),
        )
    }
    pub fn pool_timeout(name: &str, waited: std::time::Duration) -> Self {
        Self::new(
            1040,
            "08004",
            format!(
                "Sluice: no free connection to backend {name} after {waited:?} (pool exhausted)"
            ),
        )
    }
    pub fn unsupported(what: &str) -> Self {
        Self::new(1235, "42000", format!("Sluice does not support {what} yet"))
    }
}
