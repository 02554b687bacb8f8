//! One monitor task per backend: connect + probe every interval (each probe bounded by a
//! timeout), health with hysteresis, role from `read_only`, replication threads, GTID
//! position, and lag (heartbeat rows written on the primary on Sluice's own clock, read on
//! each replica, see `heartbeat`; Seconds_Behind_* as the fallback).

use crate::backend::{BackendConn, BackendError, QueryResult};
use crate::config::Monitor;
use crate::shared::Shared;
use crate::topology::heartbeat::Heartbeat;
use crate::topology::state::Snapshot;
use crate::topology::Topology;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Replication status of a replica (`SHOW SLAVE STATUS` / `SHOW REPLICA STATUS`).
#[derive(Debug, Clone, Default)]
pub(crate) struct Replication {
    pub io: bool,
    pub sql: bool,
    pub behind: Option<i64>,
    /// The SQL thread's last error, else the I/O thread's.
    pub last_error: String,
}

impl Replication {
    /// From a replica status row (MariaDB `Slave_*`/`Master` or MySQL `Replica_*`/`Source`
    /// names); `None` when the server is no replica.
    pub(crate) fn from_status(st: &QueryResult) -> Option<Replication> {
        st.rows.first()?;
        let get = |a: &str, b: &str| st.get(a).or(st.get(b)).map(str::to_string);
        let io_err = get("Last_IO_Error", "Last_IO_Error").unwrap_or_default();
        let sql_err = get("Last_SQL_Error", "Last_SQL_Error").unwrap_or_default();
        Some(Replication {
            io: yes(get("Slave_IO_Running", "Replica_IO_Running").as_deref()),
            sql: yes(get("Slave_SQL_Running", "Replica_SQL_Running").as_deref()),
            behind: get("Seconds_Behind_Master", "Seconds_Behind_Source")
                .and_then(|s| s.parse().ok()),
            last_error: if sql_err.is_empty() { io_err } else { sql_err },
        })
    }
}

#[derive(Debug, Clone, Default)]
struct Probe {
    read_only: bool,
    replication: Option<Replication>,
    gtid: String,
    heartbeat_lag_us: Option<i64>,
    version: String,
}

/// Starts one monitor task per backend (none without a `[monitor]` section).
pub fn spawn(shared: &Arc<Shared>, stop: &watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    if shared.config.load().monitor.is_none() {
        return Vec::new();
    }
    (0..shared.topology.len())
        .map(|i| tokio::spawn(run(shared.clone(), i, stop.clone())))
        .collect()
}

/// Starts the monitor of a backend added later (reload).
pub fn spawn_one(shared: &Arc<Shared>, i: usize) {
    tokio::spawn(run(shared.clone(), i, shared.stop.clone()));
}

struct Task {
    shared: Arc<Shared>,
    index: usize,
    conn: Option<BackendConn>,
    fails: u32,
    oks: u32,
    heartbeat_table_ready: bool,
    heartbeat_warned: bool,
}

async fn run(shared: Arc<Shared>, index: usize, mut stop: watch::Receiver<bool>) {
    let mut t = Task {
        shared,
        index,
        conn: None,
        fails: 0,
        oks: 0,
        heartbeat_table_ready: false,
        heartbeat_warned: false,
    };
    loop {
        if t.shared.topology.backend(t.index).is_removed() {
            return; // removed by a reload
        }
        let Some(m) = t.shared.config.load().monitor.clone() else {
            return;
        };
        let started = Instant::now();
        let result = crate::timer::timeout(m.timeout.0, t.probe(&m)).await;
        let result = match result {
            Ok(r) => r,
            Err(_) => Err(BackendError::Timeout(m.timeout.0)),
        };
        t.apply(&m, result);
        let wait = m.interval.0.saturating_sub(started.elapsed());
        tokio::select! {
            _ = crate::timer::sleep(wait) => {}
            _ = stop.changed() => return,
        }
    }
}

fn yes(v: Option<&str>) -> bool {
    v.is_some_and(|s| s.eq_ignore_ascii_case("yes"))
}

impl Task {
    async fn probe(&mut self, m: &Monitor) -> Result<Probe, BackendError> {
        if self.conn.is_none() {
            let opts = self
                .shared
                .topology
                .backend(self.index)
                .pool
                .monitor_opts(m);
            self.conn = Some(BackendConn::connect(&opts).await?);
            self.heartbeat_table_ready = false;
        }
        let conn = self.conn.as_mut().expect("connected above");
        let mariadb = conn.server_version.contains("MariaDB");
        let mut p = Probe {
            version: conn.server_version.clone(),
            ..Default::default()
        };
        let vars = if mariadb {
            conn.query("SELECT @@global.read_only AS ro, 0 AS sro, @@global.gtid_current_pos AS g")
                .await?
        } else {
            conn.query("SELECT @@global.read_only AS ro, @@global.super_read_only AS sro, @@global.gtid_executed AS g").await?
        };
        p.read_only = vars.get("ro") == Some("1") || vars.get("sro") == Some("1");
        p.gtid = vars.get("g").unwrap_or("").to_string();
        let st = conn
            .query(if mariadb {
                "SHOW SLAVE STATUS"
            } else {
                "SHOW REPLICA STATUS"
            })
            .await?;
        p.replication = Replication::from_status(&st);
        if m.heartbeat {
            p.heartbeat_lag_us = self.heartbeat(!p.read_only, m.timeout.0).await;
        }
        Ok(p)
    }

    /// Writes the heartbeat on the primary, reads it elsewhere; returns the lag when read.
    async fn heartbeat(&mut self, writable: bool, timeout: std::time::Duration) -> Option<i64> {
        let hb = &self.shared.heartbeat;
        // during a switchover or failover the old primary is being fenced: no writes there
        let holding = self
            .shared
            .failover
            .holding
            .load(std::sync::atomic::Ordering::Relaxed);
        let is_primary = self.index == self.shared.topology.primary() && !holding;
        let conn = self.conn.as_mut()?;
        let now = hb.now_us();
        let res = if writable && is_primary {
            let mut r = Ok(());
            if !self.heartbeat_table_ready {
                // DDL waits on a client's global read lock too: bounded like the write
                let limit = lock_wait_limit(conn, timeout);
                let table = "CREATE TABLE IF NOT EXISTS sluice.heartbeat (id BIGINT UNSIGNED PRIMARY KEY, ts BIGINT NOT NULL) ENGINE=InnoDB";
                r = conn.exec(&format!("{limit}{table}")).await;
                // 1049: no `sluice` database yet (not a lock wait: that is 1969, retried at
                // the next probe without waiting twice in this one)
                if matches!(&r, Err(BackendError::Server(s)) if s.code == 1049) {
                    let db = "CREATE DATABASE IF NOT EXISTS sluice";
                    let _ = conn.exec(&format!("{limit}{db}")).await;
                    r = conn.exec(&format!("{limit}{table}")).await;
                }
                self.heartbeat_table_ready = r.is_ok();
            }
            if r.is_ok() {
                r = write_heartbeat(conn, hb, now, timeout).await;
            }
            r.map(|_| None)
        } else {
            conn.query(&format!(
                "SELECT ts FROM sluice.heartbeat WHERE id = {}",
                hb.id
            ))
            .await
            .map(|r| {
                r.get("ts")
                    .and_then(|v| v.parse::<i64>().ok())
                    .map(|ts| hb.lag_us(ts, now))
            })
        };
        match res {
            Ok(lag) => lag,
            Err(e) => {
                if let BackendError::Server(s) = &e {
                    // 1146: the table has not replicated yet; anything else is worth a warning
                    // 1969: the write gave up waiting on a lock (see above): no heartbeat now
                    if s.code != 1146 && s.code != 1969 && !self.heartbeat_warned {
                        self.heartbeat_warned = true;
                        tracing::warn!(backend = %self.shared.topology.backend(self.index).pool.name, error = %s,
                            "heartbeat unavailable; lag falls back to Seconds_Behind (grant the monitor user ALL on sluice.*)");
                    }
                } else {
                    self.conn = None;
                }
                None
            }
        }
    }

    fn apply(&mut self, m: &Monitor, result: Result<Probe, BackendError>) {
        let shared = self.shared.clone();
        let topo = &shared.topology;
        let b = topo.backend(self.index);
        let name = &b.pool.name;
        b.state.count_probe();
        let (was_up, was_eligible) = {
            let s = b.state.load();
            (s.up, s.eligible)
        };
        let mut up = was_up;
        match &result {
            Ok(_) => {
                self.fails = 0;
                self.oks += 1;
                if !was_up && self.oks >= m.recover_after {
                    up = true;
                    tracing::warn!(backend = %name, "backend is up again");
                }
            }
            Err(e) => {
                self.conn = None;
                self.oks = 0;
                self.fails += 1;
                if was_up && self.fails >= m.fail_after {
                    up = false;
                    tracing::warn!(backend = %name, error = %e, failures = self.fails, "backend is down");
                }
            }
        }
        let cfg = shared.config.load();
        let limits = Limits {
            max: cfg.routing.max_replica_lag.0.as_micros() as i64,
            reentry: cfg.routing.reentry().as_micros() as i64,
            is_primary: self.index == topo.primary(),
        };
        let fails = self.fails as u64;
        b.state.update(|s| {
            s.probed = true;
            s.up = up;
            s.failures = fails;
            match &result {
                Ok(p) => record_probe(s, p),
                Err(e) => s.probe_error = e.to_string(),
            }
            set_eligibility(s, &limits);
        });
        let now = b.state.load();
        if now.eligible != was_eligible && !limits.is_primary {
            tracing::info!(backend = %name, eligible = now.eligible, reason = %now.reason, "replica eligibility changed");
        }
        resolve_roles(topo);
    }
}

/// A prefix that makes a statement give up after half the probe's time limit (MariaDB's
/// `SET STATEMENT max_statement_time`; ERR 1969) instead of waiting on a lock; none on MySQL.
fn lock_wait_limit(conn: &BackendConn, timeout: std::time::Duration) -> String {
    if conn.server_version.contains("MariaDB") {
        format!(
            "SET STATEMENT max_statement_time = {:.3} FOR ",
            timeout.as_secs_f64() / 2.0
        )
    } else {
        String::new()
    }
}

/// Writes the heartbeat stamped `now` on the primary (`conn`) and notes it acknowledged.
/// Conditional on the server being writable at that instant: the monitor may bypass
/// read_only (SUPER), and a write after a switchover made the primary read-only would be a
/// transaction the new primary never gets. A write that waits on a lock (a client's FLUSH
/// TABLES WITH READ LOCK, a backup) gives up after half the probe's time limit (MariaDB): the
/// server is up, only writes wait.
async fn write_heartbeat(
    conn: &mut BackendConn,
    hb: &Heartbeat,
    now: i64,
    timeout: std::time::Duration,
) -> Result<(), BackendError> {
    let bounded = lock_wait_limit(conn, timeout);
    let done = conn
        .query(&format!(
            "{bounded}REPLACE INTO sluice.heartbeat (id, ts) SELECT {}, {now} \
             FROM DUAL WHERE @@global.read_only = 0",
            hb.id
        ))
        .await?;
    if done.affected_rows > 0 {
        hb.acknowledged(now);
    }
    Ok(())
}

/// Writes what a successful probe found into the snapshot.
fn record_probe(s: &mut Snapshot, p: &Probe) {
    s.writable = !p.read_only;
    let repl = p.replication.clone().unwrap_or_default();
    s.io_running = repl.io;
    s.sql_running = repl.sql;
    s.seconds_behind = repl.behind.unwrap_or(-1);
    s.heartbeat_lag_us = p.heartbeat_lag_us.unwrap_or(-1);
    s.set_gtid(&p.gtid);
    s.version.clone_from(&p.version);
    s.last_error = repl.last_error;
    s.probe_error.clear();
}

/// The lag bounds a replica's eligibility is judged by.
struct Limits {
    max: i64,
    reentry: i64,
    is_primary: bool,
}

/// Eligibility with hysteresis: a replica leaves above `max` and comes back below `reentry`.
fn set_eligibility(s: &mut Snapshot, l: &Limits) {
    let was = s.eligible;
    let secs = |us: i64| format!("{:.3}s", us as f64 / 1e6);
    let (eligible, reason) = if l.is_primary {
        (false, "primary".to_string())
    } else if !s.up {
        (false, format!("down: {}", s.probe_error))
    } else if !(s.io_running && s.sql_running) {
        let (io, sql) = (s.io_running, s.sql_running);
        let why = format!(
            "replication not running (IO: {io}, SQL: {sql}) {}",
            s.last_error
        );
        (false, why)
    } else {
        match s.lag_us() {
            None => (false, "lag unknown".to_string()),
            Some(lag) if was && lag > l.max => (
                false,
                format!("lag {} > max_replica_lag {}", secs(lag), secs(l.max)),
            ),
            Some(lag) if !was && lag >= l.reentry => (
                false,
                format!("lag {} not yet below {}", secs(lag), secs(l.reentry)),
            ),
            Some(_) => (true, String::new()),
        }
    };
    s.eligible = eligible;
    s.reason = reason;
    s.replicating = !l.is_primary && s.up && s.io_running && s.sql_running && s.lag_us().is_some();
}

/// Exactly one writable, healthy backend is the primary. Two or more: keep the last known
/// primary and raise `split_brain`. None: keep the last known primary.
pub fn resolve_roles(topo: &Topology) {
    // one resolution at a time: every monitor task calls this after its probe
    let _one = topo.roles.lock();
    let writable: Vec<usize> = topo
        .backends()
        .iter()
        .enumerate()
        .filter(|(_, b)| {
            let s = b.state.load();
            s.probed && s.up && s.writable
        })
        .map(|(i, _)| i)
        .collect();
    match writable[..] {
        [one] => {
            if topo.split_brain.swap(false, Ordering::Relaxed) {
                tracing::warn!("only one writable backend again");
            }
            let old = topo.primary();
            if one != old {
                topo.set_primary(one);
                tracing::warn!(from = %topo.backend(old).pool.name, to = %topo.backend(one).pool.name, "primary changed (read_only observed)");
            }
        }
        [] => {}
        _ => {
            if !topo.split_brain.swap(true, Ordering::Relaxed) {
                let names: Vec<String> = writable
                    .iter()
                    .map(|&i| topo.backend(i).pool.name.clone())
                    .collect();
                tracing::error!(writable = ?names, keeping = %topo.backend(topo.primary()).pool.name,
                    "several backends are writable; keeping the last known primary");
            }
        }
    }
}
