//! Helpers of the failover tests: a topology per test, Sluice with failover on, a writer
//! that records what was acknowledged.
#![allow(dead_code)]

use super::common::admin_get;
use mysql_async::prelude::*;
use sluice::app::Proxy;
use sluice::config::{Config, Dur};
use sluice::sandbox::{Options, Sandbox};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
pub struct Topo {
    pub sb: Sandbox,
    pub dir: std::path::PathBuf,
}

impl Drop for Topo {
    fn drop(&mut self) {
        self.sb.shutdown();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub async fn topology(tag: &str) -> Topo {
    let dir = std::env::temp_dir().join(format!("sluice-fo-{}-{tag}", std::process::id()));
    let opts = Options {
        dir: dir.clone(),
        replicas: 2,
        base_port: None,
        fresh: true,
        progress: false,
    };
    let sb = Sandbox::start(opts)
        .await
        .unwrap_or_else(|e| panic!("topology: {e}"));
    Topo { sb, dir }
}

pub fn failover_config(t: &Topo) -> Config {
    let mut cfg = t.sb.proxy_config("127.0.0.1:0", "127.0.0.1:0");
    cfg.failover.enabled = true;
    cfg.monitor.as_mut().unwrap().interval = Dur(Duration::from_millis(300));
    cfg.failover.hold_writes = Dur(Duration::from_secs(10));
    cfg
}

/// Connection options of the sandbox's application user through Sluice on `port`.
pub fn app_opts(port: u16) -> mysql_async::OptsBuilder {
    mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(port)
        .user(Some("app"))
        .pass(Some("apppass"))
        .prefer_socket(false)
}

pub async fn client(p: &Proxy) -> mysql_async::Conn {
    mysql_async::Conn::new(app_opts(p.addr.port()))
        .await
        .unwrap()
}

/// Inserts rows through Sluice as fast as it can; remembers what was acknowledged and when
/// writes failed.
pub struct Writer {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<u64>>>,
    errors: Arc<AtomicU64>,
    last_ok: Arc<Mutex<Vec<Instant>>>,
    task: tokio::task::JoinHandle<()>,
}

pub fn start_writer(p: &Proxy, table: &'static str) -> Writer {
    let (stop, acked, errors, last_ok) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(Mutex::new(Vec::new())),
        Arc::new(AtomicU64::new(0)),
        Arc::new(Mutex::new(Vec::new())),
    );
    let port = p.addr.port();
    let (s, a, e, l) = (stop.clone(), acked.clone(), errors.clone(), last_ok.clone());
    let task = tokio::spawn(async move {
        let opts = app_opts(port);
        let mut c = mysql_async::Conn::new(opts.clone()).await.unwrap();
        let mut i = 0u64;
        while !s.load(Ordering::Relaxed) {
            i += 1;
            match c
                .query_drop(format!("INSERT INTO fo.{table} VALUES ({i})"))
                .await
            {
                Ok(()) => {
                    a.lock().unwrap().push(i);
                    l.lock().unwrap().push(Instant::now());
                }
                Err(err) => {
                    e.fetch_add(1, Ordering::Relaxed);
                    if matches!(
                        err,
                        mysql_async::Error::Io(_) | mysql_async::Error::Driver(_)
                    ) {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        if let Ok(nc) = mysql_async::Conn::new(opts.clone()).await {
                            c = nc;
                        }
                    }
                }
            }
        }
    });
    Writer {
        stop,
        acked,
        errors,
        last_ok,
        task,
    }
}

impl Writer {
    /// Waits until `n` writes were acknowledged after `since` (at most 30 s).
    pub async fn acked_since(&self, n: usize, since: Instant) {
        let started = Instant::now();
        loop {
            let got = self
                .last_ok
                .lock()
                .unwrap()
                .iter()
                .filter(|t| **t >= since)
                .count();
            if got >= n {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{got} of {n} writes acknowledged in 30 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn finish(self) -> (Vec<u64>, u64, Vec<Instant>) {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap();
        let acked = self.acked.lock().unwrap().clone();
        let oks = self.last_ok.lock().unwrap().clone();
        (acked, self.errors.load(Ordering::Relaxed), oks)
    }
}

pub async fn primary_name(p: &Proxy) -> String {
    let (_, body) = admin_get(p, "/status").await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["primary"].as_str().unwrap().to_string()
}

/// Polls `$cond` (an expression that may `.await`) until true, failing after `$limit`.
#[macro_export]
macro_rules! wait_for {
    ($what:expr, $limit:expr, $cond:expr) => {{
        let started = Instant::now();
        while !$cond {
            if started.elapsed() > $limit {
                panic!("{}: not within {:?}", $what, $limit);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        started.elapsed()
    }};
}

pub async fn present_on(t: &Topo, server: usize, table: &str) -> std::collections::HashSet<u64> {
    let r =
        t.sb.sql(server, &format!("SELECT id FROM fo.{table}"))
            .await
            .unwrap();
    r.rows
        .iter()
        .map(|row| row[0].as_deref().unwrap().parse().unwrap())
        .collect()
}

pub fn index_of(name: &str) -> usize {
    name.trim_start_matches("db").parse().unwrap()
}

/// `sluice_failovers_total` of `p`.
pub async fn failovers(p: &Proxy) -> u32 {
    admin_get(p, "/metrics")
        .await
        .1
        .lines()
        .find_map(|l| l.strip_prefix("sluice_failovers_total "))
        .unwrap()
        .parse()
        .unwrap()
}

/// POST `path` on the admin listener; the reply's body.
pub async fn post(p: &Proxy, path: &str, body: &str) -> String {
    super::common::admin(p, "POST", path, body, None).await.1
}

/// A global status value of the primary (server 0).
pub async fn status_of(t: &Topo, name: &str) -> String {
    t.sb.sql(0, &format!("SHOW STATUS LIKE '{name}'"))
        .await
        .ok()
        .and_then(|r| r.rows.first().and_then(|row| row[1].clone()))
        .unwrap_or_default()
}

/// Semi-synchronous replication (built into MariaDB): the primary acknowledges a commit only
/// once a replica has it.
pub async fn enable_semi_sync(t: &Topo) {
    t.sb.sql(0, "SET GLOBAL rpl_semi_sync_master_enabled = ON")
        .await
        .unwrap();
    t.sb.sql(0, "SET GLOBAL rpl_semi_sync_master_timeout = 10000")
        .await
        .unwrap();
    for r in 1..=2 {
        t.sb.sql(r, "SET GLOBAL rpl_semi_sync_slave_enabled = ON")
            .await
            .unwrap();
        t.sb.sql(r, "STOP SLAVE IO_THREAD").await.unwrap();
        t.sb.sql(r, "START SLAVE IO_THREAD").await.unwrap();
    }
    let _ = wait_for!(
        "both replicas are semi-sync clients",
        Duration::from_secs(10),
        status_of(t, "Rpl_semi_sync_master_clients").await == "2"
    );
}
