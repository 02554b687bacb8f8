//! The result cache's binary log client as a task of the proxy: follows the current primary
//! while a rule caches and `[cache] binlog` is on (`cache::binlog` reads the stream), and
//! follows the new primary after a failover or switchover.

use crate::cache::binlog::{apply, load_views, start};
use crate::cache::{Cause, ResultCache};
use crate::shared::Shared;
use mysql_common::binlog::consts::BinlogVersion;
use mysql_common::binlog::EventStreamReader;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

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
                _ = crate::timer::sleep(Duration::from_secs(1)) => {}
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
    let opts = b.pool.monitor_opts(&m);
    let mut conn = match start(&opts, server_id(shared)).await {
        Ok(c) => c,
        Err(e) => {
            // no stream: entries are TTL-bound, and views cannot be told from tables
            shared.cache.require_views(false);
            return format!("{}: {}", b.pool.name, crate::error::chain(&e));
        }
    };
    // writes before the position read are not in the stream: nothing kept before counts,
    // and nothing is kept until the views are known
    shared.cache.require_views(true);
    shared.cache.forget_views();
    shared.cache.purge(Cause::Topology);
    if let Err(e) = load_views(&shared.cache, &opts).await {
        return format!(
            "{}: reading the views: {}",
            b.pool.name,
            crate::error::chain(&e)
        );
    }
    set_state(&shared.cache, Some(&b.pool.name), None);
    tracing::info!(target: "sluice::cache", backend = %b.pool.name, "result cache following the binary log");
    let mut reader = EventStreamReader::new(BinlogVersion::Version4);
    let mut buf = Vec::new();
    loop {
        if shared.topology.primary() != primary {
            return format!("{} is no longer the primary", b.pool.name);
        }
        let read = crate::timer::timeout(SILENCE, conn.r.read_logical(&mut buf, 1 << 30)).await;
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
