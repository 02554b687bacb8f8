//! Control connections for failover actions (monitor credentials, short timeouts).

use crate::backend::{BackendConn, BackendError, ConnectOpts, QueryResult};
use crate::shared::Shared;

pub(crate) async fn connect(shared: &Shared, i: usize) -> Result<BackendConn, BackendError> {
    let cfg = shared.config.load();
    let m = cfg
        .monitor
        .as_ref()
        .ok_or_else(|| BackendError::Protocol("no [monitor] section".into()))?;
    let opts = ConnectOpts::monitor(m, &shared.topology.backend(i).pool);
    let mut c = BackendConn::connect(&opts).await?;
    // `sql::quote` escapes with backslashes: make sure they mean what it assumes
    c.exec("SET SESSION sql_mode = REPLACE(@@sql_mode, 'NO_BACKSLASH_ESCAPES', '')")
        .await?;
    Ok(c)
}

/// Runs statements in order, stopping at the first error.
pub(crate) async fn run_all<S: AsRef<str>>(
    c: &mut BackendConn,
    stmts: &[S],
) -> Result<(), BackendError> {
    for s in stmts {
        c.exec(s.as_ref()).await?;
    }
    Ok(())
}

pub(crate) async fn query(c: &mut BackendConn, sql: &str) -> Result<QueryResult, BackendError> {
    c.query(sql).await
}
