//! The return path of a lease: a backend connection goes back to the idle list only in a
//! known clean state.
//!
//! - mid-command (the client vanished, was killed, or its task was cancelled): the backend
//!   thread is killed from a new connection, so its statement stops and its transaction rolls
//!   back, and the connection is closed;
//! - broken (I/O failed): closed;
//! - carrying state a next client must not see (open transaction, autocommit off, user
//!   variables, locks, temporary tables...): COM_RESET_CONNECTION first, closed if that fails;
//! - otherwise: straight back to the idle list.

use super::BackendPool;
use crate::backend::BackendConn;
use std::sync::Arc;
use tokio::sync::OwnedSemaphorePermit;

pub(super) fn give_back(
    pool: &Arc<BackendPool>,
    ((slot, affinity), done_ms): ((usize, u32), Option<u64>),
    conn: Box<BackendConn>,
    permit: Option<OwnedSemaphorePermit>,
) {
    if conn.busy {
        spawn_or_close(kill(conn));
        return;
    }
    if conn.broken || pool.closed.load(std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    if pool.retired(&conn) {
        return; // opened before a change of global defaults or privileges
    }
    if !conn.needs_reset() {
        pool.put_back(((slot, affinity), done_ms), conn, permit);
        return;
    }
    let pool = pool.clone();
    spawn_or_close(async move {
        // the permit keeps counting the connection against the backend's limit meanwhile
        let _permit = permit;
        let mut conn = conn;
        let timeout = conn.opts.timeout;
        match crate::timer::timeout(timeout, conn.reset()).await {
            Ok(Ok(())) if !conn.needs_reset() => pool.put_idle(slot, conn),
            Ok(Ok(())) => {
                tracing::warn!(backend = %pool.name, "connection still in a transaction after a reset; closed")
            }
            Ok(Err(e)) => {
                tracing::debug!(backend = %pool.name, error = %e, "reset failed; connection closed")
            }
            Err(_) => tracing::debug!(backend = %pool.name, "reset timed out; connection closed"),
        }
    });
}

/// Runs `f` on the current runtime; outside one (process shutdown) the connection it owns is
/// simply closed when `f` is dropped, which also makes the server roll back.
fn spawn_or_close(f: impl std::future::Future<Output = ()> + Send + 'static) {
    if let Ok(rt) = tokio::runtime::Handle::try_current() {
        rt.spawn(f);
    }
}

/// Kills the backend thread of a connection left mid-command, then closes it.
async fn kill(conn: Box<BackendConn>) {
    let (opts, thread) = (conn.opts.clone(), conn.thread_id);
    // close ours first: a server blocked writing to it notices at once
    drop(conn);
    match BackendConn::kill_thread(&opts, thread, false).await {
        Ok(()) => tracing::debug!(
            thread,
            "killed the backend thread of an abandoned statement"
        ),
        // ERR 1094: it had already ended
        Err(e) => tracing::debug!(thread, error = %e, "KILL of an abandoned statement"),
    }
}
