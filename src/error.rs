//! Errors that end up in front of a client: who failed, whether the connection is dead, and
//! which ERR packet the client receives.

use crate::protocol::reply;

/// `e` and its causes as one line, `outer: cause: root` (each error's `Display` says only
/// its own part; the causes come from `source()`).
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
}

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
            None => Self::new(1105, "HY000", "Sluice: malformed error packet from backend"),
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
    /// No connection to backend `name` could be opened (nothing of the statement ran).
    /// ER_CONNECT_TO_FOREIGN_DATA_SOURCE: a server-range code, so client libraries show the
    /// message (libmariadb turns a 2xxx code received from a server into "malformed packet").
    pub fn backend_unavailable(name: &str, why: &str) -> Self {
        Self::new(
            1429,
            "08004",
            format!("Sluice: backend {name} unavailable: {why}"),
        )
    }
    /// The connection to backend `name` broke under a statement that may have run.
    /// ER_CONNECTION_KILLED with SQLSTATE 08S01 (communication link failure).
    pub fn lost_connection(name: &str, why: &str) -> Self {
        Self::new(
            1927,
            "08S01",
            format!("Sluice: lost connection to backend {name} during query: {why}"),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Client libraries own codes 2000-2999 (CR_*): a server sending one reads as "malformed
    /// packet" to libmariadb. Every code Sluice writes itself must be a server code.
    fn server_range(code: u16) -> bool {
        (1000..2000).contains(&code) || (3000..5000).contains(&code)
    }

    #[test]
    fn constructors_use_server_range_codes() {
        let all = [
            SqlError::from_packet(b""),
            SqlError::access_denied("u", "h", true),
            SqlError::backend_unavailable("db0", "refused"),
            SqlError::lost_connection("db0", "reset"),
            SqlError::pool_timeout("db0", std::time::Duration::from_secs(1)),
            SqlError::unsupported("x"),
        ];
        for e in all {
            assert!(server_range(e.code), "{e}");
            assert_eq!(e.state.len(), 5, "{e}");
        }
    }

    /// Every literal code passed to `SqlError::new` anywhere in `src/`.
    #[test]
    fn every_literal_code_in_the_source_is_a_server_code() {
        let mut files = vec![std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src"
        ))];
        let mut seen = 0;
        while let Some(p) = files.pop() {
            if p.is_dir() {
                files.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
                continue;
            }
            let text = std::fs::read_to_string(&p).unwrap();
            for (at, _) in text.match_indices("SqlError::new(") {
                let rest = text[at + 14..].trim_start();
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                if let Ok(code) = digits.parse::<u16>() {
                    seen += 1;
                    assert!(server_range(code), "{}: SqlError::new({code}", p.display());
                }
            }
        }
        assert!(seen > 20, "the scan found the constructors ({seen})");
    }
}
