//! `cache_refresh_ahead`: a hit in the last 10% of its entry's TTL is answered from the
//! cache as usual, and one refresh of the entry runs beside it on the primary (a task of its
//! own, on a pooled connection aligned like the session's: database and session
//! variables). While it runs, the entry keeps serving and identical misses wait for it (it
//! leads the key's flight); its reply replaces the entry with a new TTL, under the same
//! rule as any miss: kept only if no write touched its tables since it started.

use crate::backend::{BackendError, ConnectOpts};
use crate::cache::flight::Lead;
use crate::cache::{tables, Key};
use crate::error::SqlError;
use crate::pool::Lease;
use crate::protocol::packet::PacketWriter;
use crate::protocol::relay::{Expect, Relay, RelayError};
use crate::protocol::status;
use crate::shared::Shared;
use std::sync::Arc;
use std::time::Duration;

/// A refresh still running after this long is abandoned (its connection closed).
const RUN_LIMIT: Duration = Duration::from_secs(10);

/// Whether an entry stored `age` ago with `ttl` is due for a refresh.
pub(super) fn due(age: Duration, ttl: Duration) -> bool {
    age >= ttl - ttl / 10
}

/// One entry to refresh: what the session's miss would have run, and where to keep it.
pub(super) struct Refresh {
    pub shared: Arc<Shared>,
    /// The session's connection options toward the primary.
    pub opts: ConnectOpts,
    pub slot: usize,
    pub hash: u64,
    pub key: Key,
    pub rule: (Arc<str>, Duration),
    pub primary: usize,
    /// Held until the refresh ends: identical misses wait for it, no second refresh starts.
    pub _lead: Lead,
}

#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("no connection to the primary")]
    Checkout(#[source] SqlError),
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error(transparent)]
    Relay(#[from] RelayError),
}

/// Starts `r` in a task of its own.
pub(super) fn spawn(r: Refresh) {
    tokio::spawn(async move {
        let rule = r.rule.0.clone();
        match crate::timer::timeout(RUN_LIMIT, run(r)).await {
            Ok(Ok(kept)) => tracing::debug!(rule = %rule, kept, "cache entry refreshed"),
            Ok(Err(e)) => {
                tracing::debug!(rule = %rule, error = %crate::error::chain(&e), "cache refresh failed")
            }
            Err(_) => tracing::debug!(rule = %rule, "cache refresh abandoned after {RUN_LIMIT:?}"),
        }
    });
}

/// Runs the statement on the primary and keeps its reply: whether it was kept.
async fn run(r: Refresh) -> Result<bool, Error> {
    let cache = &r.shared.cache;
    let born = cache.now();
    let pool = r.shared.topology.backend(r.primary).pool.clone();
    let mut lease = pool
        .checkout((r.slot, 0), || r.opts.clone(), || Duration::ZERO)
        .await
        .map_err(Error::Checkout)?;
    let reply = match capture(&mut lease, &r).await {
        Ok(reply) => reply,
        Err(e) => {
            lease.discard();
            return Err(e);
        }
    };
    let sql = r.key.statement.get(1..).unwrap_or_default();
    let read = tables::read_tables(sql, r.key.database.as_deref());
    let Some(reply) = reply else { return Ok(false) };
    match read {
        Some(tables)
            if super::cached::complete_result_set(&reply) && cache.views_allow(&tables) =>
        {
            Ok(cache.store((r.hash, r.key), reply, tables, r.rule, (born, r.primary)))
        }
        _ => Ok(false),
    }
}

/// Aligns `lease` with the key's database and session variables, runs the statement and
/// returns its reply as the session's client would have got it (`None`: too large).
async fn capture(lease: &mut Lease, r: &Refresh) -> Result<Option<Vec<u8>>, Error> {
    let key = &r.key;
    let autocommit_off = lease.status & status::AUTOCOMMIT == 0;
    let target = (key.database.as_deref(), &key.vars[..]);
    super::align::database_and_vars(lease, target, autocommit_off, Some(r.opts.clone())).await?;
    lease.send(&key.statement).await?;
    let mut sink = PacketWriter::new(tokio::io::sink());
    sink.start_capture(r.shared.cache.max_entry_size);
    let conn = &mut **lease;
    let mut relay: Relay<'_, _, _, tokio::io::Empty, _> =
        Relay::new(&mut conn.r, &mut conn.w, conn.deprecate_eof, &mut conn.buf);
    relay.client_w = Some(&mut sink);
    relay.client_deprecate_eof = key.deprecate_eof;
    relay.run(Expect::ResultSets).await?;
    let st = relay.outcome.status;
    drop(relay);
    conn.busy = false;
    conn.status = st;
    Ok(sink.take_capture())
}
