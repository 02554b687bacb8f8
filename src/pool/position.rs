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
    /// When the last failed read started: callers queued behind it fail at once instead of
    /// each waiting out its own timeout on a primary that does not answer.
    failed: Option<Instant>,
}

impl Position {
    /// The backend's GTID position as read after `since` (when a write's reply arrived);
    /// `reads` counts the reads made (callers queued behind one share its answer).
    pub async fn after(
        &self,
        since: Instant,
        opts: impl FnOnce() -> ConnectOpts,
        (mariadb, reads): (bool, &prometheus::IntCounter),
    ) -> Result<String, BackendError> {
        let mut r = self.inner.lock().await;
        if let Some((at, pos)) = &r.last {
            if *at >= since {
                return Ok(pos.clone());
            }
        }
        if r.failed.is_some_and(|at| at >= since) {
            return Err(BackendError::Protocol(
                "the primary's position could not be read just now".into(),
            ));
        }
        let started = Instant::now();
        reads.inc();
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
        let (conn, pos) = answer.inspect_err(|_| r.failed = Some(started))?;
        r.conn = Some(conn);
        r.last = Some((started, pos.clone()));
        Ok(pos)
    }

    /// Runs `sql` (one value, `g`) bounded by the connection's timeout; the connection is
    /// given back only when the read succeeded.
    async fn read(mut conn: BackendConn, sql: &str) -> Result<(BackendConn, String), BackendError> {
        let timeout = conn.opts.timeout;
        let reply = crate::timer::timeout(timeout, conn.query(sql))
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A server that accepts and never answers: writers queued behind a read that times
    /// out fail with it, not one timeout after another.
    #[tokio::test]
    async fn callers_behind_a_failed_read_fail_at_once() {
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = silent.local_addr().unwrap().to_string();
        let keep = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = silent.accept().await {
                held.push(s);
            }
        });
        let opts = ConnectOpts {
            address,
            user: "u".into(),
            password: String::new(),
            native_hash1: None,
            database: None,
            flavour: Default::default(),
            timeout: Duration::from_millis(300),
            tls: None,
        };
        let position = std::sync::Arc::new(Position::default());
        let since = Instant::now();
        let started = Instant::now();
        let calls: Vec<_> = (0..4)
            .map(|_| {
                let (p, o) = (position.clone(), opts.clone());
                tokio::spawn(async move {
                    p.after(
                        since,
                        || o,
                        (true, &prometheus::IntCounter::new("r", "r").unwrap()),
                    )
                    .await
                })
            })
            .collect();
        for c in calls {
            assert!(c.await.unwrap().is_err());
        }
        let took = started.elapsed();
        assert!(
            took < Duration::from_millis(800),
            "4 queued callers took {took:?}"
        );
        keep.abort();
    }
}
