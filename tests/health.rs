//! Health, lag and read-your-writes on the real topology. These tests disturb servers, so
//! they run one at a time and leave the topology as they found it.
#![allow(clippy::disallowed_methods)] // clients of the proxy: tokio timers are theirs

mod common;
use common::*;
use mysql_async::prelude::*;
use sluice::config::Dur;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::const_new(());

fn fast_config(interval_ms: u64) -> sluice::config::Config {
    let mut cfg = config();
    let m = cfg
        .monitor
        .as_mut()
        .expect("sandbox config has a monitor section");
    m.interval = Dur(Duration::from_millis(interval_ms));
    cfg
}

async fn read(c: &mut mysql_async::Conn) -> (i64, u32) {
    c.query_first("SELECT ts, @@server_id FROM beat WHERE id = 1")
        .await
        .unwrap()
        .unwrap()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

async fn wait_until<F, Fut>(what: &str, limit: Duration, mut f: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let t = Instant::now();
    while !f().await {
        assert!(t.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    t.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_replica_gets_no_reads_and_no_read_is_staler_than_the_bound() {
    let _g = SERIAL.lock().await;
    let db = database("health_lag").await;
    let t = topology();
    t.sql(
        0,
        &format!("CREATE TABLE {db}.beat (id INT PRIMARY KEY, ts BIGINT)"),
    )
    .await
    .unwrap();
    t.sql(
        0,
        &format!("INSERT INTO {db}.beat VALUES (1, {})", now_ms()),
    )
    .await
    .unwrap();
    caught_up().await;
    let interval = Duration::from_millis(200);
    let max_lag = Duration::from_secs(1);
    let mut cfg = fast_config(200);
    cfg.routing.max_replica_lag = Dur(max_lag);
    cfg.routing.read_your_writes = sluice::config::ReadYourWrites::Off;
    let p = proxy(cfg).await;

    // our own heartbeat: written on the primary every 20ms
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (s2, db2) = (stop.clone(), db.clone());
    let writer = tokio::spawn(async move {
        let admin = topology().servers[0].admin_opts();
        let mut conn = sluice::backend::BackendConn::connect(&admin).await.unwrap();
        while !s2.load(std::sync::atomic::Ordering::Relaxed) {
            conn.exec(&format!(
                "UPDATE {db2}.beat SET ts = {} WHERE id = 1",
                now_ms()
            ))
            .await
            .unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let mut c = client(&p, Some(&db)).await;
    // the promise: max_replica_lag + one monitor interval; plus this test's own writer period
    // and scheduling slack on a loaded 2-core machine
    let bound_ms = (max_lag + interval).as_millis() as i64 + 250;
    let mut worst = 0i64;
    for _ in 0..50 {
        let (ts, _) = read(&mut c).await;
        worst = worst.max(now_ms() - ts);
    }
    t.delay_replica(2, 4).await.unwrap(); // replica2 (server_id 3) applies events 4s late
    let started = Instant::now();
    let mut last_read_from_3 = None;
    let mut from_3_after_excluded = 0;
    while started.elapsed() < Duration::from_secs(4) {
        let (ts, sid) = read(&mut c).await;
        let stale = now_ms() - ts;
        worst = worst.max(stale);
        assert!(
            stale <= bound_ms,
            "read from server {sid} was {stale}ms old; bound {bound_ms}ms"
        );
        if sid == 3 {
            last_read_from_3 = Some(started.elapsed());
            let st = backend_status(&p, "db2").await;
            if st["eligible"] == false {
                from_3_after_excluded += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let st = backend_status(&p, "db2").await;
    assert_eq!(st["eligible"], false, "{st}");
    assert!(st["reason"].as_str().unwrap().contains("lag"), "{st}");
    assert!(
        from_3_after_excluded <= 1,
        "an excluded replica got {from_3_after_excluded} reads"
    );
    println!("delayed replica: last read {last_read_from_3:?} after the delay began; worst staleness {worst}ms (bound {bound_ms}ms)");

    t.delay_replica(2, 0).await.unwrap();
    let back = wait_until("replica back in rotation", Duration::from_secs(15), || {
        let p = &p;
        async move { backend_status(p, "db2").await["eligible"] == true }
    })
    .await;
    println!("replica eligible again {back:?} after the delay was removed");
    let mut seen3 = false;
    for _ in 0..100 {
        let (ts, sid) = read(&mut c).await;
        assert!(now_ms() - ts <= bound_ms);
        seen3 |= sid == 3;
    }
    assert!(seen3, "the caught-up replica takes reads again");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_a_replica_under_read_load_fails_no_read() {
    let _g = SERIAL.lock().await;
    let p = Arc::new(proxy(fast_config(200)).await);
    let errors = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let reads = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (p, errors, reads) = (p.clone(), errors.clone(), reads.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = client(&p, None).await;
            while Instant::now() < deadline {
                match c.query_first::<u32, _>("SELECT @@server_id").await {
                    Ok(_) => reads.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                    Err(e) => {
                        eprintln!("read failed: {e}");
                        errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
                    }
                };
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    topology().kill(1);
    for t in tasks {
        t.await.unwrap();
    }
    let (e, r) = (
        errors.load(std::sync::atomic::Ordering::Relaxed),
        reads.load(std::sync::atomic::Ordering::Relaxed),
    );
    println!("{r} reads, {e} errors with replica1 killed after 1s");
    topology().restart(1).await.unwrap();
    caught_up().await;
    assert_eq!(e, 0, "reads must not fail when a replica dies");
    assert!(r > 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gtid_read_your_writes_with_a_delayed_replica() {
    let _g = SERIAL.lock().await;
    let db = database("health_ryw").await;
    let mut cfg = fast_config(200);
    cfg.routing.max_replica_lag = Dur(Duration::from_secs(30)); // keep the delayed replica eligible
    cfg.routing.gtid_wait = Dur(Duration::from_millis(20));
    let p = proxy(cfg).await;
    let mut c = client(&p, Some(&db)).await;
    c.query_drop("CREATE TABLE r (id INT PRIMARY KEY)")
        .await
        .unwrap();
    caught_up().await;
    topology().delay_replica(2, 3).await.unwrap();
    let mut on_replica = [0usize; 4];
    let t = Instant::now();
    for i in 0..1000u32 {
        c.exec_drop("INSERT INTO r VALUES (?)", (i,)).await.unwrap();
        let row: Option<(u32, u32)> = c
            .exec_first("SELECT id, @@server_id FROM r WHERE id = ?", (i,))
            .await
            .unwrap();
        let (id, sid) = row.unwrap_or_else(|| panic!("insert {i} not visible to its own session"));
        assert_eq!(id, i);
        on_replica[sid as usize] += 1;
    }
    let took = t.elapsed();
    topology().delay_replica(2, 0).await.unwrap();
    println!(
        "1000 insert-then-select pairs in {took:?}: reads on primary {}, replica1 {}, delayed replica2 {}",
        on_replica[1], on_replica[2], on_replica[3]
    );
    assert_eq!(
        on_replica[3], 0,
        "the delayed replica never has the row in time"
    );
    assert!(
        on_replica[2] > 0,
        "the up-to-date replica serves read-your-writes reads"
    );
}

/// A proxy for read-your-writes tests (the delayed replica stays eligible, a short GTID
/// wait) and a client of it in a fresh database `name` with an empty table `t`, replicated.
async fn ryw_session(name: &str) -> (sluice::app::Proxy, mysql_async::Conn) {
    let db = database(name).await;
    let mut cfg = fast_config(200);
    cfg.routing.max_replica_lag = Dur(Duration::from_secs(30)); // keep the delayed replica eligible
    cfg.routing.gtid_wait = Dur(Duration::from_millis(20));
    let p = proxy(cfg).await;
    let mut c = client(&p, Some(&db)).await;
    c.query_drop("CREATE TABLE t (id INT PRIMARY KEY)")
        .await
        .unwrap();
    caught_up().await;
    (p, c)
}

/// A transaction that only read (locking reads included) commits nothing: its COMMIT reads
/// no GTID position of the primary. One that wrote is tracked, its position read by the read
/// right after it, which never comes from the delayed replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_transaction_that_wrote_has_its_commit_tracked() {
    let _g = SERIAL.lock().await;
    let (p, mut c) = ryw_session("health_txryw").await;
    let reads = "sluice_gtid_position_reads_total";
    let before = metric(&p, reads).await;
    for _ in 0..20 {
        c.query_drop("BEGIN").await.unwrap();
        c.query_drop("SELECT COUNT(*) FROM t").await.unwrap();
        c.query_drop("SELECT id FROM t WHERE id = 1 FOR UPDATE")
            .await
            .unwrap();
        c.query_drop("COMMIT").await.unwrap();
    }
    assert_eq!(metric(&p, reads).await, before, "read-only transactions");
    topology().delay_replica(2, 3).await.unwrap();
    let mut on_delayed = 0;
    for i in 0..20u32 {
        c.query_drop("BEGIN").await.unwrap();
        c.query_drop("SELECT COUNT(*) FROM t").await.unwrap();
        c.exec_drop("INSERT INTO t VALUES (?)", (i,)).await.unwrap();
        c.query_drop("COMMIT").await.unwrap();
        let row: Option<(u32, u32)> = c
            .exec_first("SELECT id, @@server_id FROM t WHERE id = ?", (i,))
            .await
            .unwrap();
        let (_, sid) =
            row.unwrap_or_else(|| panic!("committed row {i} not visible to its session"));
        on_delayed += usize::from(sid == 3);
    }
    topology().delay_replica(2, 0).await.unwrap();
    let tracked = metric(&p, reads).await - before;
    assert_eq!(
        tracked, 20.0,
        "one position read per writing transaction (by the read after it)"
    );
    assert_eq!(
        on_delayed, 0,
        "the delayed replica never has the row in time"
    );
}

/// A write's GTID position is read when the session's next read may go to a replica, not at
/// the write: five rounds of four writes (autocommit and in transactions) and one read cost
/// five position reads, not twenty, and each read sees every write, never served by the
/// replica that lacks them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_is_tracked_by_the_read_that_needs_it() {
    let _g = SERIAL.lock().await;
    let (p, mut c) = ryw_session("health_lazyryw").await;
    let reads = "sluice_gtid_position_reads_total";
    topology().delay_replica(2, 3).await.unwrap();
    let before = metric(&p, reads).await;
    let mut on_delayed = 0;
    for round in 0..5u32 {
        for k in 0..4u32 {
            let id = round * 4 + k;
            if k % 2 == 0 {
                c.exec_drop("INSERT INTO t VALUES (?)", (id,))
                    .await
                    .unwrap();
            } else {
                c.query_drop("BEGIN").await.unwrap();
                c.exec_drop("INSERT INTO t VALUES (?)", (id,))
                    .await
                    .unwrap();
                c.query_drop("COMMIT").await.unwrap();
            }
        }
        let after_writes = metric(&p, reads).await - before;
        assert_eq!(
            after_writes,
            f64::from(round),
            "writes alone read no position"
        );
        let (n, sid): (u32, u32) = c
            .query_first("SELECT COUNT(*), @@server_id FROM t")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, (round + 1) * 4, "every write visible to its session");
        on_delayed += usize::from(sid == 3);
    }
    topology().delay_replica(2, 0).await.unwrap();
    assert_eq!(
        metric(&p, reads).await - before,
        5.0,
        "one read per read after writes"
    );
    assert_eq!(
        on_delayed, 0,
        "the delayed replica never has the rows in time"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reflects_a_killed_primary_and_a_restarted_replica_within_three_intervals() {
    let _g = SERIAL.lock().await;
    let interval = Duration::from_millis(300);
    let p = proxy(fast_config(300)).await;
    let limit = interval * 3 + Duration::from_millis(250);
    wait_until("first probes", Duration::from_secs(5), || {
        let p = &p;
        async move {
            backend_status(p, "db0").await["probes"]
                .as_u64()
                .unwrap_or(0)
                > 0
        }
    })
    .await;
    let t = topology();
    t.kill(0);
    let down = wait_until("killed primary shown unhealthy", limit, || {
        let p = &p;
        async move { backend_status(p, "db0").await["healthy"] == false }
    })
    .await;
    t.restart(0).await.unwrap();
    t.kill(1);
    wait_until("killed replica shown unhealthy", limit, || {
        let p = &p;
        async move { backend_status(p, "db1").await["healthy"] == false }
    })
    .await;
    t.restart(1).await.unwrap();
    let up = wait_until("restarted replica shown healthy", limit, || {
        let p = &p;
        async move { backend_status(p, "db1").await["healthy"] == true }
    })
    .await;
    println!("primary shown down {down:?} after kill -9; replica shown up {up:?} after restart (interval {interval:?})");
    t.check_replication(Duration::from_secs(20)).await.unwrap();
    let st = backend_status(&p, "db0").await;
    assert_eq!(st["role"], "primary");
}

/// The heartbeat lag `/status` shows for a backend (`None` until a heartbeat was read there).
async fn heartbeat_lag(p: &sluice::app::Proxy, name: &str) -> Option<f64> {
    backend_status(p, name).await["heartbeat_lag_seconds"].as_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_caught_up_replicas_read_no_lag_at_any_monitor_interval() {
    let _g = SERIAL.lock().await;
    caught_up().await;
    for interval_ms in [100, 5_000] {
        let interval = Duration::from_millis(interval_ms);
        let p = proxy(fast_config(interval_ms)).await;
        for name in ["db1", "db2"] {
            wait_until(
                "a heartbeat read",
                interval * 4 + Duration::from_secs(5),
                || {
                    let p = &p;
                    async move { heartbeat_lag(p, name).await.is_some() }
                },
            )
            .await;
        }
        // three probes of each replica, whatever their phase against the primary's writes
        let mut worst: f64 = 0.0;
        for _ in 0..3 {
            for name in ["db1", "db2"] {
                worst = worst.max(heartbeat_lag(&p, name).await.unwrap());
            }
            tokio::time::sleep(interval).await;
        }
        println!("interval {interval:?}: worst idle heartbeat lag {worst:.4}s");
        assert!(
            worst < 0.05,
            "an idle caught-up replica reads {worst}s of lag at interval {interval:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_replica_lags_from_its_first_missed_write() {
    let _g = SERIAL.lock().await;
    caught_up().await;
    let interval = Duration::from_millis(300);
    let p = proxy(fast_config(300)).await;
    wait_until("a heartbeat read on db2", Duration::from_secs(5), || {
        let p = &p;
        async move { heartbeat_lag(p, "db2").await.is_some() }
    })
    .await;
    let t = topology();
    t.sql(2, "STOP SLAVE SQL_THREAD").await.unwrap();
    let stopped = Instant::now();
    let mut samples = Vec::new();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(1_200)).await;
        let lag = heartbeat_lag(&p, "db2").await.unwrap();
        samples.push((stopped.elapsed().as_secs_f64(), lag));
    }
    t.sql(2, "START SLAVE SQL_THREAD").await.unwrap();
    println!("stopped replica (elapsed, lag): {samples:?}");
    let slack = 0.15;
    for (elapsed, lag) in samples {
        // the first missed heartbeat came within one interval of the stop, and /status is
        // at most one probe old
        let low = elapsed - 2.0 * interval.as_secs_f64() - slack;
        assert!(
            lag >= low && lag <= elapsed + slack,
            "lag {lag}s after {elapsed}s stopped (expected {low}..{elapsed})"
        );
    }
    caught_up().await;
    wait_until(
        "the caught-up replica's lag back to ~0",
        Duration::from_secs(5),
        || {
            let p = &p;
            async move { heartbeat_lag(p, "db2").await.is_some_and(|l| l < 0.05) }
        },
    )
    .await;
}
