//! Routing policy: a pure function from (intent, session view) to a target and a reason.

use super::classify::{flag, Intent, Kind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Primary,
    Replica,
    /// Handled by Sluice itself (KILL of a Sluice connection id).
    Local,
}

/// Why a statement went where it went (a metrics label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Read,
    Write,
    Transaction,
    LockingRead,
    Session,
    Hint,
    Pinned,
    Local,
    /// A read that went to the primary because no replica could take it.
    Fallback,
    /// A read of server state (see `router::server_state`).
    ServerState,
    /// A routing rule's `route` (`[[rules]]`).
    Rule,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Read => "read",
            Reason::Write => "write",
            Reason::Transaction => "transaction",
            Reason::LockingRead => "locking_read",
            Reason::Session => "session",
            Reason::Hint => "hint",
            Reason::Pinned => "pinned",
            Reason::Local => "local",
            Reason::Fallback => "fallback",
            Reason::ServerState => "server_state",
            Reason::Rule => "rule",
        }
    }

    /// Position in `metrics::REASONS`.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// What the policy needs to know about the session.
#[derive(Debug, Clone, Copy, Default)]
pub struct SessionView {
    /// A transaction is open or autocommit is off.
    pub in_transaction: bool,
    /// The session is bound to one primary connection (temp tables, locks, ...).
    pub pinned: bool,
    /// The session has user variables on its primary connection.
    pub has_user_vars: bool,
}

pub fn route(intent: &Intent, s: &SessionView) -> (Target, Reason) {
    use Target::*;
    if intent.kind == Kind::Kill {
        return (Local, Reason::Local);
    }
    if s.in_transaction {
        return (Primary, Reason::Transaction);
    }
    if s.pinned {
        return (Primary, Reason::Pinned);
    }
    if intent.has(flag::HINT_PRIMARY) {
        return (Primary, Reason::Hint);
    }
    match intent.kind {
        Kind::Read => {
            if intent.has(flag::LOCKING) {
                (Primary, Reason::LockingRead)
            } else if intent.has(flag::NEEDS_SESSION | flag::HARD_PIN) {
                (Primary, Reason::Session)
            } else if intent.has(flag::HINT_REPLICA) {
                (Replica, Reason::Hint)
            } else if intent.has(flag::SERVER_STATE) {
                (Primary, Reason::ServerState)
            } else {
                (Replica, Reason::Read)
            }
        }
        Kind::Begin | Kind::EndTx => (Primary, Reason::Transaction),
        Kind::SetSession | Kind::SetOther | Kind::Use => (Primary, Reason::Session),
        _ => (Primary, Reason::Write),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::router::classify;

    fn r(sql: &str, s: SessionView) -> Target {
        route(&classify(sql.as_bytes()), &s).0
    }

    #[test]
    fn table() {
        let free = SessionView::default();
        let tx = SessionView {
            in_transaction: true,
            ..free
        };
        let cases: &[(&str, SessionView, Target)] = &[
            ("SELECT 1", free, Target::Replica),
            ("SELECT 1", tx, Target::Primary),
            ("/* sluice:primary */ SELECT 1", free, Target::Primary),
            (
                "/* sluice:replica */ SELECT LAST_INSERT_ID()",
                free,
                Target::Primary,
            ),
            (
                "/* sluice:replica */ SELECT * FROM t",
                free,
                Target::Replica,
            ),
            ("SELECT * FROM t FOR UPDATE", free, Target::Primary),
            ("SELECT @x", free, Target::Primary),
            ("INSERT INTO t VALUES (1)", free, Target::Primary),
            ("KILL QUERY 12", tx, Target::Local),
            ("SHOW TABLES", free, Target::Replica),
            (
                "SELECT 1",
                SessionView {
                    pinned: true,
                    ..free
                },
                Target::Primary,
            ),
        ];
        for (sql, view, want) in cases {
            assert_eq!(r(sql, *view), *want, "{sql}");
        }
    }
}
