//! Reading the primary's binary log as a replication client (COM_BINLOG_DUMP from the
//! current position) so that writes that do not pass through this Sluice invalidate the
//! result cache: a table map names each table a row event changes, a query event's text is
//! parsed for its tables (everything when it cannot be). The task that runs it is
//! `crate::follower`.

use super::tables::{self, Table, Written};
use super::{Cause, ResultCache};
use crate::backend::{BackendConn, BackendError, ConnectOpts};
use crate::protocol::cmd;
use mysql_common::binlog::events::{QueryEvent, TableMapEvent};
use mysql_common::binlog::EventStreamReader;

/// What `/cache` says about the follower.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct State {
    /// The backend followed, while following.
    pub following: Option<String>,
    /// Why it does not follow (caching off, no grant, ...).
    pub not_following: Option<String>,
    /// Why the last stream ended (the cache was purged then).
    pub last_error: Option<String>,
    pub events: u64,
}

const TABLE_MAP: u8 = 19;
const QUERY: u8 = 2;
const HEARTBEAT: u8 = 27;
/// MariaDB's compressed query event: its text is not read here, so its database goes.
const QUERY_COMPRESSED: u8 = 165;

/// Reads the primary's views on a connection of its own.
pub async fn load_views(cache: &ResultCache, opts: &ConnectOpts) -> Result<(), BackendError> {
    let mut c = BackendConn::connect(opts).await?;
    let r = c
        .query("SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.VIEWS")
        .await?;
    let views = r
        .rows
        .iter()
        .filter_map(|row| match row.as_slice() {
            [Some(d), Some(t)] => Some(Table::new(d, t)),
            _ => None,
        })
        .collect();
    cache.set_views(views);
    Ok(())
}

/// Opens the dump: checksums and MariaDB's GTID events understood, a heartbeat every
/// second, from the primary's current position.
pub async fn start(opts: &ConnectOpts, server_id: u32) -> Result<BackendConn, BackendError> {
    let mut c = BackendConn::connect(opts).await?;
    c.exec("SET @master_binlog_checksum = @@global.binlog_checksum")
        .await?;
    if c.server_version.contains("MariaDB") {
        c.exec("SET @mariadb_slave_capability = 4").await?;
    }
    c.exec("SET @master_heartbeat_period = 1000000000").await?;
    let status = match c.query("SHOW MASTER STATUS").await {
        Ok(s) => s,
        Err(_) => c.query("SHOW BINARY LOG STATUS").await?, // MySQL 8.4
    };
    let (Some(file), Some(pos)) = (status.get("File"), status.get("Position")) else {
        return Err(BackendError::Protocol(
            "binary logging is off on the primary (SHOW MASTER STATUS is empty)".into(),
        ));
    };
    let pos: u32 = pos.parse().unwrap_or(4);
    let mut p = vec![cmd::BINLOG_DUMP];
    p.extend_from_slice(&pos.to_le_bytes());
    p.extend_from_slice(&0u16.to_le_bytes());
    p.extend_from_slice(&server_id.to_le_bytes());
    p.extend_from_slice(file.as_bytes());
    c.send(&p).await?;
    Ok(c)
}

/// Invalidates what one event says was written.
pub fn apply(
    cache: &ResultCache,
    reader: &mut EventStreamReader,
    raw: &[u8],
) -> std::io::Result<()> {
    let Some(ev) = reader.read(raw)? else {
        return Ok(());
    };
    let h = ev.header();
    cache.metrics.binlog_events.inc();
    cache.follower.write().events += 1;
    let kind = h.event_type_raw();
    if kind != HEARTBEAT && h.timestamp() != 0 {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let age = now.as_secs_f64() - h.timestamp() as f64;
        cache.metrics.binlog_delay.set(age.max(0.0));
    }
    match kind {
        TABLE_MAP => {
            let t: TableMapEvent = ev.read_event()?;
            let table = Table::new(&t.database_name(), &t.table_name());
            cache.invalidate(&Written::Tables(vec![table]), Cause::Binlog);
        }
        QUERY => {
            let q: QueryEvent = ev.read_event()?;
            on_query(cache, &q.schema(), q.query_raw());
        }
        QUERY_COMPRESSED => cache.invalidate(&Written::Everything, Cause::Binlog),
        _ => {}
    }
    Ok(())
}

/// A statement in the binary log (statement or mixed format, DDL): its tables, else
/// everything.
fn on_query(cache: &ResultCache, schema: &str, sql: &[u8]) {
    let word = crate::router::first_word(sql).unwrap_or_default();
    let bookkeeping = [&b"BEGIN"[..], b"COMMIT", b"XA", b"SAVEPOINT", b"ROLLBACK"];
    if bookkeeping.iter().any(|w| word.eq_ignore_ascii_case(w)) {
        return;
    }
    let db = (!schema.is_empty()).then_some(schema);
    cache.saw_ddl(sql);
    cache.invalidate(&tables::written(sql, db), Cause::Binlog);
}
