//! kill -9 of the primary under the write load of 8 clients, repeated (2 runs unless
//! `SLUICE_KILL_RUNS` says otherwise; the README's figures are from 10 or more), with
//! semi-synchronous replication: how long until writes succeed again, how many statements
//! failed, how many acknowledged writes were lost. A statement that was running when the
//! server died may have committed or not: it fails (retrying it blindly could apply it
//! twice). Every other statement must succeed.
//!
//! Planned switchovers under the same load, one after another on one topology (2 unless
//! `SLUICE_SWITCHOVER_RUNS` says otherwise): how long writes were held, measured by the
//! clients, and nothing lost or failed.
#![allow(clippy::disallowed_methods)] // clients of the proxy: tokio timers are theirs

mod common;
#[path = "support/failover.rs"]
mod fo;
use fo::*;
use mysql_async::prelude::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WRITERS: u64 = 8;

/// The two tests measure timings: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One statement: when it started, when it ended, the id it wrote, whether it succeeded.
#[derive(Clone, Copy)]
struct Stmt {
    start: Instant,
    end: Instant,
    id: u64,
    ok: bool,
}

/// Waits until `n` statements that started at or after `since` succeeded (at most 30 s).
async fn oks_since(log: &Mutex<Vec<Stmt>>, n: usize, since: Instant) {
    let _ = wait_for!("writes succeeding", Duration::from_secs(30), {
        let l = log.lock().unwrap();
        l.iter().filter(|s| s.ok && s.start >= since).count() >= n
    });
}

fn start_writers(
    port: u16,
    stop: &Arc<AtomicBool>,
    log: &Arc<Mutex<Vec<Stmt>>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..WRITERS)
        .map(|w| {
            let (stop, log) = (stop.clone(), log.clone());
            tokio::spawn(async move {
                let opts = app_opts(port);
                let mut c = mysql_async::Conn::new(opts.clone()).await.unwrap();
                let mut k = 0;
                while !stop.load(Ordering::Relaxed) {
                    k += 1;
                    let id = w * 1_000_000 + k;
                    let start = Instant::now();
                    let r = c
                        .query_drop(format!("INSERT INTO fo.l VALUES ({id})"))
                        .await;
                    let end = Instant::now();
                    log.lock().unwrap().push(Stmt {
                        start,
                        end,
                        id,
                        ok: r.is_ok(),
                    });
                    if let Err(mysql_async::Error::Io(_) | mysql_async::Error::Driver(_)) = r {
                        if let Ok(nc) = mysql_async::Conn::new(opts.clone()).await {
                            c = nc;
                        }
                    }
                }
            })
        })
        .collect()
}

/// What one run measured.
#[derive(Debug)]
struct Run {
    /// From the kill to the first write that started after it and succeeded.
    first_write: Duration,
    /// From the kill until every writer had a write (started after the kill) succeed.
    all_writers: Duration,
    /// Failed statements started before the server was gone (they may have run).
    in_flight_failed: usize,
    /// Failed statements started after it was gone (must be 0: they wait and go to the new
    /// primary).
    later_failed: usize,
    acknowledged: usize,
    lost: usize,
}

/// The writers' stop flag, their statements and their tasks.
type Writers = (
    Arc<AtomicBool>,
    Arc<Mutex<Vec<Stmt>>>,
    Vec<tokio::task::JoinHandle<()>>,
);

/// A semi-sync topology with Sluice in front and the writers started on table `fo.l`.
async fn loaded(tag: &str) -> (Topo, sluice::app::Proxy, Writers) {
    let t = topology(tag).await;
    enable_semi_sync(&t).await;
    let p = common::proxy(failover_config(&t)).await;
    let mut c = client(&p).await;
    c.query_drop("CREATE DATABASE fo").await.unwrap();
    c.query_drop("CREATE TABLE fo.l (id BIGINT PRIMARY KEY)")
        .await
        .unwrap();
    t.sb.wait_caught_up(Duration::from_secs(10)).await.unwrap();
    let (stop, log) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(Mutex::new(Vec::new())),
    );
    let tasks = start_writers(p.addr.port(), &stop, &log);
    (t, p, (stop, log, tasks))
}

async fn one_run(n: usize) -> Run {
    let (t, p, (stop, log, tasks)) = loaded(&format!("load{n}")).await;
    oks_since(&log, 200, Instant::now()).await;
    assert_eq!(status_of(&t, "Rpl_semi_sync_master_status").await, "ON");
    let killed = Instant::now();
    t.sb.kill(0); // returns once the process is gone
    let dead = Instant::now();
    let _ = wait_for!(
        "a new primary",
        Duration::from_secs(15),
        primary_name(&p).await != "db0"
    );
    // writes go on against the new primary, and the failover's timeline is recorded
    oks_since(&log, 20 * WRITERS as usize, Instant::now()).await;
    let _ = wait_for!("the failover ends", Duration::from_secs(20), {
        let (_, body) = common::admin_get(&p, "/status").await;
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["failover"]["state"] == "normal" && v["failover"]["last"]["kind"] == "failover"
    });
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
    let stmts = log.lock().unwrap().clone();
    let after = |s: &&Stmt| s.start >= killed;
    let first_ok = |w: Option<u64>| {
        stmts
            .iter()
            .filter(after)
            .filter(|s| s.ok && w.is_none_or(|w| s.id / 1_000_000 == w))
            .map(|s| s.end - killed)
            .min()
            .expect("a write succeeded after the kill")
    };
    let (_, status) = common::admin_get(&p, "/status").await;
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    let steps: Vec<String> = v["failover"]["last"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| format!("{} ms {}", s["at_ms"], s["what"].as_str().unwrap()))
        .collect();
    println!("run {}: failover timeline: {}", n + 1, steps.join(" | "));
    let np = index_of(&primary_name(&p).await);
    let present = present_on(&t, np, "l").await;
    let acked: Vec<u64> = stmts.iter().filter(|s| s.ok).map(|s| s.id).collect();
    Run {
        first_write: first_ok(None),
        all_writers: (0..WRITERS).map(|w| first_ok(Some(w))).max().unwrap(),
        in_flight_failed: stmts.iter().filter(|s| !s.ok && s.start < dead).count(),
        later_failed: stmts.iter().filter(|s| !s.ok && s.start >= dead).count(),
        acknowledged: acked.len(),
        lost: acked.iter().filter(|i| !present.contains(i)).count(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_eight_writers_repeated() {
    let _g = SERIAL.lock().await;
    let runs: usize = std::env::var("SLUICE_KILL_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let mut all = Vec::new();
    for n in 0..runs {
        let r = one_run(n).await;
        println!("run {}: {r:?}", n + 1);
        all.push(r);
    }
    let worst = |f: fn(&Run) -> Duration| all.iter().map(f).max().unwrap();
    let sum = |f: fn(&Run) -> usize| all.iter().map(f).sum::<usize>();
    println!(
        "kill -9 under {WRITERS} writers, {runs} runs (worst): first write after {:?}, every writer after {:?}; failed: {} in flight at the kill, {} started later; {} acknowledged, {} lost",
        worst(|r| r.first_write),
        worst(|r| r.all_writers),
        sum(|r| r.in_flight_failed),
        sum(|r| r.later_failed),
        sum(|r| r.acknowledged),
        sum(|r| r.lost),
    );
    assert_eq!(
        sum(|r| r.lost),
        0,
        "acknowledged writes lost with semi-sync"
    );
    assert_eq!(
        sum(|r| r.later_failed),
        0,
        "a statement started after the kill failed instead of waiting for the new primary"
    );
    assert!(
        worst(|r| r.all_writers) < Duration::from_secs(2),
        "writes must succeed again within 2 s of the kill"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchovers_under_eight_writers_repeated() {
    let _g = SERIAL.lock().await;
    let runs: usize = std::env::var("SLUICE_SWITCHOVER_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let (t, p, (stop, log, tasks)) = loaded("switch-load").await;
    let mut held = Vec::new();
    for n in 0..runs {
        // the monitor must see the replicas replicating from the current primary
        let _ = wait_for!(
            "every replica eligible",
            Duration::from_secs(15),
            eligible_replicas(&p).await == 2
        );
        oks_since(&log, 50, Instant::now()).await;
        let started = Instant::now();
        let reply = post(&p, "/switchover", "").await;
        let ended = Instant::now();
        assert!(reply.contains("\"success\""), "run {}: {reply}", n + 1);
        // the longest a write overlapping the switchover waited (the clients' view), once
        // every writer has moved on past it
        oks_since(&log, 2 * WRITERS as usize, ended).await;
        let longest = log
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.end >= started && s.start <= ended)
            .map(|s| s.end - s.start)
            .max()
            .unwrap_or_default();
        println!(
            "switchover {}: to {}, writes held {longest:?}",
            n + 1,
            primary_name(&p).await
        );
        held.push(longest);
    }
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }
    let stmts = log.lock().unwrap().clone();
    let failed = stmts.iter().filter(|s| !s.ok).count();
    let np = index_of(&primary_name(&p).await);
    let present = present_on(&t, np, "l").await;
    let acked: Vec<u64> = stmts.iter().filter(|s| s.ok).map(|s| s.id).collect();
    let lost = acked.iter().filter(|i| !present.contains(i)).count();
    let worst = held.iter().max().copied().unwrap_or_default();
    println!(
        "{runs} switchovers under {WRITERS} writers: writes held at most {worst:?} (worst); {} acknowledged, {lost} lost, {failed} failed",
        acked.len()
    );
    assert_eq!((lost, failed), (0, 0), "writes lost, writes failed");
    assert!(worst <= Duration::from_secs(1), "writes held {worst:?}");
    // semi-sync moved with the primary role
    let _ = wait_for!(
        "the new primary waits for semi-sync acknowledgements",
        Duration::from_secs(10),
        t.sb.sql(np, "SHOW STATUS LIKE 'Rpl_semi_sync_master_clients'")
            .await
            .ok()
            .and_then(|r| r.rows.first().and_then(|row| row[1].clone()))
            .as_deref()
            == Some("2")
    );
}

/// Replicas `/status` shows eligible for reads.
async fn eligible_replicas(p: &sluice::app::Proxy) -> usize {
    let (_, body) = common::admin_get(p, "/status").await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["backends"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| {
            b["probes"].as_u64().unwrap_or(0) > 0
                && b["eligible"] == true
                && b["replication"]["sql_running"] == true
        })
        .count()
}
