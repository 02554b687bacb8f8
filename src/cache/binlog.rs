//! Follows the primary's binary log as a replication client (COM_BINLOG_DUMP from the
//! current position) so that writes that do not pass through this Sluice invalidate the
//! result cache: a table map names each table a row event changes, a query event's text is
//! parsed for its tables (everything when it cannot be). Runs while a rule caches and
//! `[cache] binlog` is on; re-follows the new primary after a failover or switchover.

use super::tables::{self, Table, Written};
use super::{Cause, ResultCache};
use crate::backend::{BackendConn, BackendError, ConnectOpts};
use crate::protocol::cmd;
use crate::shared::Shared;
use mysql_common::binlog::consts::BinlogVersion;
use mysql_common::binlog::events::{QueryEvent, TableMapEvent};
use mysql_common::binlog::EventStreamReader;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

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

/// How long a follower waits for the next event (the primary sends a heartbeat every
/// second when idle).
const SILENCE: Duration = Duration::from_secs(5);

pub fn spawn(shared: &Arc<Shared>, mut stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    let shared = shared.clone();
    tokio::spawn(async move {
        let mut warned = String::new();
        loop {
            let why = match wanted(&shared) {
                Err(why) => why,
                Ok(()) => {
                    let primary = shared.topology.primary();
                    let e = tokio::select! {
                        e = follow(&shared, primary) => e,
                        _ = stop.changed() => return,
                    };
                    // a stream that ran and stopped: what happens until the next one starts
                    // is unknown, nothing kept so far counts (a stream that never started
                    // changes nothing: entries were bounded by their TTL already)
                    if shared.cache.follower.read().following.is_some() {
                        shared.cache.purge(Cause::Topology);
                    }
                    shared.cache.follower.write().last_error = Some(e.clone());
                    e
                }
            };
            set_state(&shared.cache, None, Some(&why));
            if why != warned && wanted(&shared).is_ok() {
                tracing::warn!(target: "sluice::cache", "result cache not following the binary log: {why}; cached entries end by their TTL and by writes through Sluice only");
            }
            warned = why;
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = stop.changed() => return,
            }
        }
    })
}

fn wanted(shared: &Shared) -> Result<(), String> {
    if !shared.rules.load().caches() {
        return Err("no rule caches".into());
    }
    if !shared.config.load().cache.binlog {
        return Err("[cache] binlog = false".into());
    }
    Ok(())
}

fn set_state(cache: &ResultCache, following: Option<&str>, why: Option<&str>) {
    let mut s = cache.follower.write();
    s.following = following.map(str::to_string);
    s.not_following = why.map(str::to_string);
    cache
        .metrics
        .binlog_following
        .set(following.is_some() as i64);
}

/// The server id the dump registers with: the configured one, else this proxy's own random
/// one (two clients with one id make the primary end the older one's stream).
fn server_id(shared: &Shared) -> u32 {
    let cfg = shared.config.load();
    cfg.cache
        .binlog_server_id
        .unwrap_or(shared.cache.own_server_id)
}

/// Follows backend `primary` until it stops being the primary or the stream fails: why.
async fn follow(shared: &Arc<Shared>, primary: usize) -> String {
    let b = shared.topology.backend(primary);
    let Some(m) = shared.config.load().monitor.clone() else {
        return "no [monitor] credentials".into();
    };
    let opts = ConnectOpts::monitor(&m, &b.pool);
    let mut conn = match start(&opts, server_id(shared)).await {
        Ok(c) => c,
        Err(e) => return format!("{}: {}", b.pool.name, crate::error::chain(&e)),
    };
    // writes before the position read are not in the stream: nothing kept before counts
    shared.cache.purge(Cause::Topology);
    shared.cache.forget_views();
    set_state(&shared.cache, Some(&b.pool.name), None);
    if let Err(e) = load_views(&shared.cache, &opts).await {
        return format!(
            "{}: reading the views: {}",
            b.pool.name,
            crate::error::chain(&e)
        );
    }
    tracing::info!(target: "sluice::cache", backend = %b.pool.name, "result cache following the binary log");
    let mut reader = EventStreamReader::new(BinlogVersion::Version4);
    let mut buf = Vec::new();
    loop {
        if shared.topology.primary() != primary {
            return format!("{} is no longer the primary", b.pool.name);
        }
        let read = tokio::time::timeout(SILENCE, conn.r.read_logical(&mut buf, 1 << 30)).await;
        match read {
            Err(_) => return format!("{}: no event or heartbeat for {SILENCE:?}", b.pool.name),
            Ok(Err(e)) => return format!("{}: {}", b.pool.name, crate::error::chain(&e)),
            Ok(Ok(_)) => {}
        }
        match buf.first() {
            Some(0x00) => {}
            Some(0xFF) => {
                let (code, _, msg) = crate::protocol::reply::parse_err(&buf).unwrap_or_default();
                return format!("{}: ERR {code} {msg}", b.pool.name);
            }
            _ => return format!("{}: the binary log stream ended", b.pool.name),
        }
        if let Err(e) = apply(&shared.cache, &mut reader, &buf[1..]) {
            return format!("{}: unreadable event: {e}", b.pool.name);
        }
        if shared.cache.views_stale() {
            // a DDL statement may have created a view: nothing is kept until they are known
            if let Err(e) = load_views(&shared.cache, &opts).await {
                return format!(
                    "{}: reading the views: {}",
                    b.pool.name,
                    crate::error::chain(&e)
                );
            }
        }
    }
}

/// Reads the primary's views on a connection of its own.
async fn load_views(cache: &ResultCache, opts: &ConnectOpts) -> Result<(), BackendError> {
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
async fn start(opts: &ConnectOpts, server_id: u32) -> Result<BackendConn, BackendError> {
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
fn apply(cache: &ResultCache, reader: &mut EventStreamReader, raw: &[u8]) -> std::io::Result<()> {
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
