//! Control connections for failover actions (monitor credentials, short timeouts).

use crate::backend::{BackendConn, BackendError, QueryResult};
use crate::shared::Shared;
use std::time::Duration;

pub(crate) async fn connect(shared: &Shared, i: usize) -> Result<BackendConn, BackendError> {
    let cfg = shared.config.load();
    let m = cfg
        .monitor
        .as_ref()
        .ok_or_else(|| BackendError::Protocol("no [monitor] section".into()))?;
    let opts = shared.topology.backend(i).pool.monitor_opts(m);
    let mut c = BackendConn::connect(&opts).await?;
    // `sql::quote` escapes with backslashes: make sure they mean what it assumes
    c.exec("SET SESSION sql_mode = REPLACE(@@sql_mode, 'NO_BACKSLASH_ESCAPES', '')")
        .await?;
    Ok(c)
}

/// Time allowed to each failover step (one statement) beyond its own waiting time: a step
/// that hangs (a server frozen mid-promotion, a lock wait) fails the operation instead of
/// stalling it; the connection is then dropped.
pub(crate) const STEP_LIMIT: Duration = Duration::from_secs(5);

/// Runs statements in order, stopping at the first error; each within `STEP_LIMIT`.
pub(crate) async fn run_all<S: AsRef<str>>(
    c: &mut BackendConn,
    stmts: &[S],
) -> Result<(), BackendError> {
    for s in stmts {
        match crate::timer::timeout(STEP_LIMIT, c.exec(s.as_ref())).await {
            Ok(r) => r?,
            Err(_) => return Err(timed_out(s.as_ref())),
        }
    }
    Ok(())
}

/// Names the statement by its first words only (a `CHANGE MASTER TO` carries a password).
fn timed_out(sql: &str) -> BackendError {
    let head: Vec<&str> = sql.split_whitespace().take(3).collect();
    BackendError::Protocol(format!(
        "`{} ...` did not finish within {STEP_LIMIT:?}",
        head.join(" ")
    ))
}

pub(crate) async fn query(c: &mut BackendConn, sql: &str) -> Result<QueryResult, BackendError> {
    query_within(c, sql, Duration::ZERO).await
}

/// A query that may itself wait up to `waits` (e.g. for a GTID position), plus `STEP_LIMIT`.
pub(crate) async fn query_within(
    c: &mut BackendConn,
    sql: &str,
    waits: Duration,
) -> Result<QueryResult, BackendError> {
    match crate::timer::timeout(STEP_LIMIT + waits, c.query(sql)).await {
        Ok(r) => r,
        Err(_) => Err(timed_out(sql)),
    }
}
