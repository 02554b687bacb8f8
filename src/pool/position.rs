//! The backend's GTID position for read-your-writes, read on a control connection of its own.
//!
//! After a client's write, Sluice needs a GTID set that contains it. Reading `@@last_gtid` on
//! the client's connection would answer, but any statement Sluice runs there between two of
//! the client's wipes what the client may ask next about its write: `ROW_COUNT()` becomes
//! -1, `SHOW WARNINGS` empties, `FOUND_ROWS()` changes (mtr's `ctype_collate_column` caught
//! it). So the server's position (`@@global.gtid_binlog_pos`, MySQL's
//! `@@global.gtid_executed`) is read here instead: it contains every write acknowledged
//! before the read started, this one included (and perhaps others', which only makes the
//! wait a little stricter).
//!
//! One connection per backend, shared by all sessions: a caller whose write was acknowledged
//! before the last read started takes that read's answer, so concurrent writers share one
//! round trip instead of queueing for one each.

use crate::backend::{BackendConn, BackendError, ConnectOpts};
use std::time::Instant;

#[derive(Default)]
pub struct Position {
    inner: tokio::sync::Mutex<Reader>,
}

#[derive(Default)]
struct Reader {
    conn: Option<BackendConn>,
    /// The last answer and when its read started.
    last: Option<(Instant, String)>,
}

impl Position {
    /// The backend's GTID position as read after `since` (when a write's reply arrived).
    pub async fn after(
        &self,
        since: Instant,
        opts: impl FnOnce() -> ConnectOpts,
        mariadb: bool,
    ) -> Result<String, BackendError> {
        let mut r = self.inner.lock().await;
        if let Some((at, pos)) = &r.last {
            if *at >= since {
                return Ok(pos.clone());
            }
        }
        let started = Instant::now();
        let sql = if mariadb {
            "SELECT @@global.gtid_binlog_pos AS g"
        } else {
            "SELECT @@global.gtid_executed AS g"
        };
        let answer = match r.conn.take() {
            Some(conn) => Self::read(conn, sql).await,
            None => {
                let opts = opts();
                match BackendConn::connect(&opts).await {
                    Ok(conn) => Self::read(conn, sql).await,
                    Err(e) => Err(e),
                }
            }
        };
        let (conn, pos) = answer?;
        r.conn = Some(conn);
        r.last = Some((started, pos.clone()));
        Ok(pos)
    }

    /// Runs `sql` (one value, `g`) bounded by the connection's timeout; the connection is
    /// given back only when the read succeeded.
    async fn read(mut conn: BackendConn, sql: &str) -> Result<(BackendConn, String), BackendError> {
        let timeout = conn.opts.timeout;
        let reply = tokio::time::timeout(timeout, conn.query(sql))
            .await
            .map_err(|_| BackendError::Timeout(timeout))??;
        let pos = reply.get("g").unwrap_or("").trim().to_string();
        Ok((conn, pos))
    }

    /// Closes the connection when its last read started more than `timeout` ago (the pool's
    /// idle timeout: no connection of Sluice's stays open on a server nobody writes to), or
    /// at once when `timeout` is zero (the pool closes). Returns whether it closed one.
    pub fn close_idle(&self, timeout: std::time::Duration) -> bool {
        let Ok(mut r) = self.inner.try_lock() else {
            return false; // a read is running: not idle
        };
        let idle = r
            .last
            .as_ref()
            .is_none_or(|(at, _)| at.elapsed() >= timeout);
        if r.conn.is_some() && idle {
            r.conn = None;
            return true;
        }
        false
    }
}
