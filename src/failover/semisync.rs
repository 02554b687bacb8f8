//! Semi-synchronous replication follows the roles: a promoted server that acknowledged as a
//! semi-sync replica starts waiting for acknowledgements as the primary, and a server turned
//! into a replica stops waiting for them. Otherwise a demoted primary with the source side on
//! and `log_slave_updates` stalls its first replicated commit for the semi-sync timeout
//! (no replica of its own acknowledges), and a later `STOP SLAVE` on it hangs meanwhile.
//! Servers without semi-sync (or without its plugin, on MySQL) are left alone.

use super::conn;
use super::error::Error;
use super::sql::Dialect;
use crate::backend::BackendConn;

/// (source side, replica side) variable names.
fn vars(d: Dialect) -> (&'static str, &'static str) {
    match d {
        Dialect::MariaDb => (
            "rpl_semi_sync_master_enabled",
            "rpl_semi_sync_slave_enabled",
        ),
        Dialect::MySql => (
            "rpl_semi_sync_source_enabled",
            "rpl_semi_sync_replica_enabled",
        ),
    }
}

/// (source side on, replica side on), or `None` when the server has no semi-sync.
async fn state(c: &mut BackendConn, d: Dialect) -> Option<(bool, bool)> {
    let (m, s) = vars(d);
    let r = conn::query(c, &format!("SELECT @@global.{m} AS m, @@global.{s} AS s"))
        .await
        .ok()?;
    Some((r.get("m") == Some("1"), r.get("s") == Some("1")))
}

/// Before a server becomes a replica: its source side off (its replica side on, if it was a
/// semi-sync primary). Whether anything changed.
pub(super) async fn as_replica(c: &mut BackendConn, d: Dialect) -> Result<bool, Error> {
    let (m, s) = vars(d);
    match state(c, d).await {
        Some((true, _)) => conn::run_all(
            c,
            &[
                format!("SET GLOBAL {m} = OFF"),
                format!("SET GLOBAL {s} = ON"),
            ],
        )
        .await
        .map(|()| true)
        .map_err(Error::at("semi-sync")),
        _ => Ok(false),
    }
}

/// After a promotion: the source side on if the server acknowledged as a semi-sync replica.
/// Whether it was turned on.
pub(super) async fn as_primary(c: &mut BackendConn, d: Dialect) -> Result<bool, Error> {
    let (m, _) = vars(d);
    match state(c, d).await {
        Some((false, true)) => conn::run_all(c, &[format!("SET GLOBAL {m} = ON")])
            .await
            .map(|()| true)
            .map_err(Error::at("semi-sync")),
        _ => Ok(false),
    }
}
