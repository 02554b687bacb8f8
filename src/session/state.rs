//! Per-client session state that must follow the client across backend connections.

use crate::protocol::status;
use crate::topology::gtid::GtidSet;
use mysql_common::collations::{Collation, CollationId};
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct SessionState {
    pub database: Option<String>,
    /// Successful session-variable statements (SET NAMES, SET sql_mode=...), in order.
    pub vars: Vec<Arc<str>>,
    pub multi_statements: bool,
    pub last_insert_id: u64,
    /// Server status flags from the last reply.
    pub status: u16,
    /// Flags from `router::flag::HARD_PIN` seen so far: the session keeps one primary
    /// connection while any is set.
    pub pins: u32,
    /// User variables live on the session's primary connection.
    pub user_vars: bool,
    /// Read-your-writes: when the session last wrote, and what (GTID) if known.
    pub last_write_at: Option<std::time::Instant>,
    pub last_write_gtid: Option<Arc<GtidSet>>,
    /// A write whose GTID is not read yet (`read_your_writes = "gtid"`; its reply arrived at
    /// `last_write_at`): whether the primary is MariaDB. The session's next read that may go
    /// to a replica reads the primary's position first; writes and reads inside transactions
    /// (primary-bound) never need it.
    pub write_unresolved: Option<bool>,
    /// Replicas confirmed to have applied `last_write_gtid`.
    pub confirmed: crate::topology::set::BackendSet,
    /// With autocommit off: the last statement was a COMMIT / ROLLBACK (or SET autocommit)
    /// and no transaction is open, so the connection holds nothing of the session.
    pub between_tx: bool,
    /// A statement of the open transaction may have written (set before it runs, cleared
    /// once no transaction is open): a COMMIT without it commits nothing, so read-your-writes
    /// has nothing to track (no read of the primary's GTID position).
    pub tx_wrote: bool,
}

impl SessionState {
    pub fn new(database: Option<String>, collation: u8, multi_statements: bool) -> Self {
        let mut vars = Vec::new();
        if let Some(set_names) = set_names_for(collation) {
            vars.push(Arc::from(set_names));
        }
        Self {
            database,
            vars,
            multi_statements,
            last_insert_id: 0,
            status: status::AUTOCOMMIT,
            pins: 0,
            user_vars: false,
            last_write_at: None,
            last_write_gtid: None,
            write_unresolved: None,
            confirmed: Default::default(),
            between_tx: true,
            tx_wrote: false,
        }
    }

    /// A transaction is open, or autocommit is off (the next statement opens one): what
    /// routing goes by.
    pub fn in_transaction(&self) -> bool {
        self.tx_open() || self.autocommit_off()
    }

    /// A transaction is open on the session's primary connection (the server says so).
    pub fn tx_open(&self) -> bool {
        self.status & status::IN_TRANS != 0
    }

    /// The client turned autocommit off (every connection it uses is aligned to that).
    pub fn autocommit_off(&self) -> bool {
        self.status & status::AUTOCOMMIT == 0
    }

    /// Whether the session must keep its primary connection between statements. With
    /// autocommit off: from its first statement to COMMIT / ROLLBACK, as a direct client's
    /// connection holds nothing between a COMMIT and its next statement. (Not only while the
    /// server says a transaction is open: a SAVEPOINT with autocommit off opens none, yet
    /// the connection keeps it.)
    pub fn holds_primary(&self) -> bool {
        self.tx_open()
            || (self.autocommit_off() && !self.between_tx)
            || self.pins != 0
            || self.user_vars
    }
}

/// Backend connections are opened with utf8mb4_general_ci (45); other client collations are
/// applied with SET NAMES.
pub fn set_names_for(collation: u8) -> Option<String> {
    if collation == 45 || collation == 0 {
        return None;
    }
    let c = Collation::from(CollationId::from(collation as u16));
    if c.charset().is_empty() || c.collation().is_empty() {
        return None;
    }
    if c.is_default() || collation == 255 {
        Some(format!("SET NAMES {}", c.charset()))
    } else {
        Some(format!(
            "SET NAMES {} COLLATE {}",
            c.charset(),
            c.collation()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_names() {
        assert_eq!(set_names_for(45), None);
        assert_eq!(set_names_for(8).as_deref(), Some("SET NAMES latin1"));
        assert_eq!(set_names_for(255).as_deref(), Some("SET NAMES utf8mb4"));
        assert_eq!(
            set_names_for(46).as_deref(),
            Some("SET NAMES utf8mb4 COLLATE utf8mb4_bin")
        );
    }
}
