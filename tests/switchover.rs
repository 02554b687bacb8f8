//! Switchovers that tell the truth: nothing held longer than needed, no success without
//! working replication, no target that cannot take over, no hold left behind by a caller
//! that went away, open transactions committed or replayed. What Sluice reports is checked
//! against the servers themselves. Each test starts its own primary + 2 replicas; they run
//! one at a time (their timings are asserted).
#![allow(clippy::disallowed_methods)] // clients of the proxy: tokio timers are theirs

mod common;
#[path = "support/failover.rs"]
mod fo;
use common::admin_get;
use common::probed;
use fo::*;
use mysql_async::prelude::*;
use sluice::app::Proxy;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

static SERIAL: Mutex<()> = Mutex::const_new(());

/// POST /switchover: (HTTP status, JSON body, wall time).
async fn switch(p: &Proxy, body: &str) -> (u16, serde_json::Value, Duration) {
    let started = Instant::now();
    let (code, reply) = common::admin(p, "POST", "/switchover", body, None).await;
    let took = started.elapsed();
    let json = serde_json::from_str(&reply).unwrap_or(serde_json::Value::Null);
    (code, json, took)
}

/// When the timeline says writes were released to the new primary (ms after holding them).
fn released_after(reply: &serde_json::Value) -> u64 {
    reply["timeline"]["steps"]
        .as_array()
        .and_then(|s| {
            s.iter()
                .find(|s| s["what"].as_str().unwrap_or("").contains("writes released"))
        })
        .and_then(|s| s["at_ms"].as_u64())
        .unwrap_or_else(|| panic!("no release step: {reply}"))
}

/// Waits until the monitor has seen both replicas replicating.
async fn monitored(p: &Proxy) {
    for name in ["db1", "db2"] {
        let _ = wait_for!(
            "the monitor sees the replica replicating",
            Duration::from_secs(10),
            {
                let st = common::backend_status(p, name).await;
                st["probes"].as_u64().unwrap_or(0) > 0
                    && st["eligible"] == true
                    && st["replication"]["sql_running"] == true
            }
        );
    }
}

async fn setup(t: &Topo, p: &Proxy, table: &str) {
    monitored(p).await;
    let mut c = client(p).await;
    c.query_drop("CREATE DATABASE IF NOT EXISTS fo")
        .await
        .unwrap();
    c.query_drop(format!("CREATE TABLE fo.{table} (id BIGINT PRIMARY KEY)"))
        .await
        .unwrap();
    t.sb.wait_caught_up(Duration::from_secs(10)).await.unwrap();
}

/// Statements containing `marker` running on server `i`.
async fn running_on(t: &Topo, i: usize, marker: &str) -> usize {
    let sql = format!(
        "SELECT COUNT(*) AS n FROM information_schema.processlist \
         WHERE info LIKE '%{marker}%' AND info NOT LIKE '%processlist%'"
    );
    t.sb.sql(i, &sql)
        .await
        .ok()
        .and_then(|r| r.get("n").and_then(|n| n.parse().ok()))
        .unwrap_or(0)
}

/// The servers with `read_only` off.
async fn writable(t: &Topo) -> Vec<usize> {
    let mut w = Vec::new();
    for i in 0..3 {
        let r =
            t.sb.sql(i, "SELECT @@global.read_only AS ro")
                .await
                .unwrap();
        if r.get("ro") == Some("0") {
            w.push(i);
        }
    }
    w
}

/// Both replication threads of server `i` running.
async fn replicating(t: &Topo, i: usize) -> bool {
    let st = t.sb.sql(i, "SHOW SLAVE STATUS").await.unwrap();
    st.get("Slave_IO_Running") == Some("Yes") && st.get("Slave_SQL_Running") == Some("Yes")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_vanished_mid_statement_do_not_hold_a_switchover() {
    let _g = SERIAL.lock().await;
    let t = topology("sw-vanish").await;
    let p = common::proxy(failover_config(&t)).await;
    monitored(&p).await;
    for n in 1..=3 {
        let (mut r, mut w) = common::raw_login(p.addr.port(), true).await;
        common::raw_query(&mut r, &mut w, "BEGIN").await;
        let mut q = vec![0x03];
        q.extend_from_slice(format!("SELECT SLEEP(3) AS vanishing{n}").as_bytes());
        w.write_packet(&mut 0, &q).await.unwrap();
        w.flush().await.unwrap();
        let _ = wait_for!(
            "the statement runs on the primary",
            Duration::from_secs(5),
            running_on(&t, 0, &format!("AS vanishing{n}")).await == 1
        );
        drop((r, w)); // gone without COM_QUIT, mid-statement, inside a transaction
    }
    let _ = wait_for!(
        "the vanished clients' statements killed",
        Duration::from_secs(5),
        running_on(&t, 0, "AS vanishing").await == 0
    );
    let (code, reply, took) = switch(&p, "").await;
    assert_eq!(code, 200, "{reply}");
    let held = released_after(&reply);
    println!("switchover after 3 vanished clients: writes held {held} ms, reply after {took:?}");
    assert!(held < 500, "writes held {held} ms: {reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_switchover_whose_caller_goes_away_still_completes() {
    use tokio::io::AsyncWriteExt;
    let _g = SERIAL.lock().await;
    let t = topology("sw-caller").await;
    let p = common::proxy(failover_config(&t)).await;
    setup(&t, &p, "c").await;
    let w = start_writer(&p, "c");
    w.acked_since(50, Instant::now()).await;
    let mut s = tokio::net::TcpStream::connect(p.admin_addr).await.unwrap();
    let req = "POST /switchover HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n";
    s.write_all(req.as_bytes()).await.unwrap();
    let _ = wait_for!("the switchover starts", Duration::from_secs(10), {
        let (_, body) = admin_get(&p, "/status").await;
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["failover"]["state"] != "normal" || v["failover"]["last"]["kind"] == "switchover"
    });
    drop(s); // Ctrl-C on `sluice switchover`
    let _ = wait_for!("the switchover ends", Duration::from_secs(20), {
        let (_, body) = admin_get(&p, "/status").await;
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["failover"]["state"] == "normal" && v["failover"]["last"]["kind"] == "switchover"
    });
    let (_, body) = admin_get(&p, "/status").await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["failover"]["last"]["result"], "success", "{body}");
    let np = index_of(&primary_name(&p).await);
    assert_ne!(np, 0, "a new primary");
    assert_eq!(writable(&t).await, vec![np], "exactly one writable server");
    w.acked_since(50, Instant::now()).await;
    let (acked, errors, _) = w.finish().await;
    let present = present_on(&t, np, "c").await;
    let lost = acked.iter().filter(|i| !present.contains(i)).count();
    assert_eq!((lost, errors), (0, 0), "writes lost, writes failed");
    for i in (0..3).filter(|&i| i != np) {
        assert!(replicating(&t, i).await, "db{i} replicates");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_that_cannot_take_over_is_refused_at_once() {
    let _g = SERIAL.lock().await;
    let t = topology("sw-refuse").await;
    let p = common::proxy(failover_config(&t)).await;
    monitored(&p).await;
    t.sb.sql(2, "STOP SLAVE SQL_THREAD").await.unwrap();
    let _ = wait_for!(
        "db2 shown not replicating",
        Duration::from_secs(5),
        common::backend_status(&p, "db2").await["replication"]["sql_running"] == false
    );
    let (code, reply, took) = switch(&p, r#"{"to": "db2"}"#).await;
    println!("refused in {took:?}: {reply}");
    assert_eq!(code, 409, "{reply}");
    let why = reply["error"].as_str().unwrap();
    assert!(why.contains("db2 is not replicating"), "{why}");
    assert!(took < Duration::from_millis(100), "refused in {took:?}");
    let (_, body) = admin_get(&p, "/status").await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(v["failover"]["last"].is_null(), "nothing was held: {body}");
    assert_eq!(writable(&t).await, vec![0]);
    t.sb.sql(2, "START SLAVE SQL_THREAD").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_diverged_old_primary_is_fenced_not_rejoined() {
    let _g = SERIAL.lock().await;
    let t = topology("sw-diverge").await;
    let mut cfg = failover_config(&t);
    cfg.failover.auto_rejoin = true;
    let p = common::proxy(cfg).await;
    setup(&t, &p, "d").await;
    // a transaction only the old primary gets
    for r in 1..=2 {
        t.sb.sql(r, "STOP SLAVE").await.unwrap();
    }
    t.sb.sql(0, "INSERT INTO fo.d VALUES (1)").await.unwrap();
    t.sb.freeze(0).unwrap();
    let _ = wait_for!(
        "failover away from the frozen primary",
        Duration::from_secs(30),
        primary_name(&p).await != "db0"
    );
    // the new primary writes the same sequence number under its own server id
    let mut c = client(&p).await;
    c.query_drop("INSERT INTO fo.d VALUES (2)").await.unwrap();
    t.sb.thaw(0).unwrap();
    let _ = wait_for!(
        "the old primary fenced",
        Duration::from_secs(15),
        admin_get(&p, "/status")
            .await
            .1
            .contains("history diverged")
    );
    let (_, body) = admin_get(&p, "/status").await;
    println!("{body}");
    assert!(
        body.contains("0-1-"),
        "the missing transaction is named: {body}"
    );
    // given probes enough to (wrongly) rejoin, it stays out
    probed(&p, 3).await;
    let st = t.sb.sql(0, "SHOW SLAVE STATUS").await.unwrap();
    assert!(st.rows.is_empty(), "db0 must not replicate: {:?}", st.rows);
    let ro =
        t.sb.sql(0, "SELECT @@global.read_only AS ro")
            .await
            .unwrap();
    assert_eq!(ro.get("ro"), Some("1"));
    // and a switchover to it is refused at once
    let (code, reply, took) = switch(&p, r#"{"to": "db0"}"#).await;
    assert_eq!(code, 409, "{reply}");
    assert!(took < Duration::from_millis(100), "refused in {took:?}");
    assert!(
        reply["error"].as_str().unwrap().contains("db0 is fenced"),
        "{reply}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_transactions_commit_or_replay_across_a_switchover() {
    let _g = SERIAL.lock().await;
    let t = topology("sw-tx").await;
    let mut cfg = failover_config(&t);
    cfg.failover.transaction_replay = true;
    cfg.failover.switchover_drain = sluice::config::Dur(Duration::from_millis(500));
    let p = common::proxy(cfg).await;
    setup(&t, &p, "x").await;
    // one commits during the drain, one stays open past it
    let mut quick = client(&p).await;
    quick.query_drop("BEGIN").await.unwrap();
    quick
        .query_drop("INSERT INTO fo.x VALUES (1)")
        .await
        .unwrap();
    let mut slow = client(&p).await;
    slow.query_drop("BEGIN").await.unwrap();
    slow.query_drop("INSERT INTO fo.x VALUES (2)")
        .await
        .unwrap();
    let sw = switch(&p, r#"{"to": "db1"}"#);
    let commit_quick = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        quick.query_drop("COMMIT").await
    };
    let ((code, reply, took), quick_commit) = tokio::join!(sw, commit_quick);
    println!("switchover with open transactions took {took:?}: {reply}");
    assert_eq!(code, 200, "{reply}");
    quick_commit.unwrap();
    // the slow one's transaction was ended on the old primary and replays on the new one
    slow.query_drop("INSERT INTO fo.x VALUES (3)")
        .await
        .unwrap();
    slow.query_drop("COMMIT").await.unwrap();
    let present = present_on(&t, 1, "x").await;
    let mut ids: Vec<u64> = present.into_iter().collect();
    ids.sort();
    assert_eq!(
        ids,
        vec![1, 2, 3],
        "every transaction committed exactly once"
    );
    assert_eq!(
        running_on(&t, 0, "INSERT INTO fo.x").await,
        0,
        "nothing left hanging on the old primary"
    );
    assert!(released_after(&reply) < 1_500, "{reply}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_replication_password_fails_the_switchover_naming_the_server() {
    let _g = SERIAL.lock().await;
    let t = topology("sw-repl").await;
    let mut cfg = failover_config(&t);
    cfg.failover.replication_password = "not-the-password".into();
    let p = common::proxy(cfg).await;
    monitored(&p).await;
    let (code, reply, took) = switch(&p, r#"{"to": "db1"}"#).await;
    println!("switchover with a wrong replication password ({took:?}): {reply}");
    assert_eq!(code, 409, "{reply}");
    let why = reply["error"].as_str().unwrap();
    assert!(why.contains("db0") && why.contains("db2"), "{why}");
    assert!(why.contains("replication not running"), "{why}");
    assert!(
        why.contains("Access denied"),
        "the server's own error: {why}"
    );
    let (_, body) = admin_get(&p, "/status").await;
    assert!(!body.contains("now replicates from"), "{body}");
}

/// The most connections any backend's pool has held open (sampled every millisecond).
fn sample_open(
    p: &Proxy,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<usize> {
    let shared = p.shared.clone();
    tokio::spawn(async move {
        let mut worst = 0;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            for b in shared.topology.backends().iter() {
                worst = worst.max(b.pool.open_count());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        worst
    })
}

/// Connections of the application user on server `i`.
async fn app_connections(t: &Topo, i: usize) -> usize {
    let sql = "SELECT COUNT(*) AS n FROM information_schema.processlist WHERE user = 'app'";
    let r = t.sb.sql(i, sql).await.unwrap();
    r.get("n").unwrap().parse().unwrap()
}

/// A client that keeps connecting, writing, reading and sometimes vanishing mid-statement.
async fn churn(port: u16, n: u64, until: Instant) {
    let mut i = 0u64;
    while Instant::now() < until {
        i += 1;
        if i.is_multiple_of(4) {
            // vanish mid-statement, inside a transaction
            let (mut r, mut w) = common::raw_login(port, true).await;
            common::raw_query(&mut r, &mut w, "BEGIN").await;
            let mut q = vec![0x03];
            q.extend_from_slice(b"SELECT SLEEP(0.2)");
            let _ = w.write_packet(&mut 0, &q).await;
            let _ = w.flush().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        let Ok(mut c) = mysql_async::Conn::new(app_opts(port)).await else {
            continue;
        };
        let id = n * 1_000_000 + i;
        let _ = c
            .query_drop(format!("INSERT INTO fo.p VALUES ({id})"))
            .await;
        let _ = c.query_drop("SELECT COUNT(*) FROM fo.p").await;
        let _ = c.query_drop("BEGIN").await;
        let _ = c
            .query_drop(format!("UPDATE fo.p SET id = id WHERE id = {id}"))
            .await;
        let _ = c.query_drop("COMMIT").await;
        if i.is_multiple_of(3) {
            drop(c); // abrupt: no COM_QUIT
        } else {
            let _ = c.disconnect().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_never_exceeds_its_cap_under_killed_clients_reloads_and_switchovers() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let _g = SERIAL.lock().await;
    let t = topology("sw-cap").await;
    let cap = 6;
    let mut cfg = failover_config(&t);
    cfg.pool.max_connections_per_backend = cap;
    cfg.pool.checkout_timeout = sluice::config::Dur(Duration::from_secs(10));
    let p = common::proxy(cfg.clone()).await;
    setup(&t, &p, "p").await;
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let sampler = sample_open(&p, stop.clone());
    let until = Instant::now() + Duration::from_secs(6);
    let clients: Vec<_> = (0..24)
        .map(|n| tokio::spawn(churn(p.addr.port(), n, until)))
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut reweighted = cfg.clone();
    reweighted.backends[1].weight = 3;
    sluice::reload::apply(&p.shared, reweighted).expect("reload");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (code, reply, _) = switch(&p, "").await;
    assert_eq!(code, 200, "{reply}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    sluice::reload::apply(&p.shared, cfg).expect("reload back");
    for c in clients {
        c.await.unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let worst = sampler.await.unwrap();
    println!("pool cap {cap}: at most {worst} connections open to one backend");
    assert!(worst <= cap, "{worst} connections open, cap {cap}");
    // what the servers see once the abandoned statements are killed (a killed thread takes
    // a moment to exit)
    for i in 0..3 {
        let took = wait_for!(
            format!("db{i} holds at most {cap} connections of the application user"),
            Duration::from_secs(10),
            app_connections(&t, i).await <= cap
        );
        println!("db{i}: within the cap after {took:?}");
    }
}

async fn count(c: &mut mysql_async::Conn, sql: &str) -> i64 {
    c.query_first::<i64, _>(sql).await.unwrap().unwrap()
}

/// Which backend the result cache's binary log client follows (`/cache`).
async fn cache_follows(p: &Proxy) -> String {
    let (_, body) = admin_get(p, "/cache").await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["binlog"]["following"].as_str().unwrap_or("").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_switchover_writes_on_the_new_primary_still_invalidate_the_cache() {
    let _g = SERIAL.lock().await;
    let t = topology("sw-cache").await;
    let mut cfg = failover_config(&t);
    cfg.rules = vec![sluice::config::rules::Rule {
        name: "cached".into(),
        pattern: Some("c_sw".into()),
        cache_ttl: Some(sluice::config::Dur(Duration::from_secs(60))),
        ..Default::default()
    }];
    let p = common::proxy(cfg).await;
    setup(&t, &p, "cached").await;
    let mut c = client(&p).await;
    c.query_drop("INSERT INTO fo.cached VALUES (1)")
        .await
        .unwrap();
    let sql = "SELECT COUNT(*) /* c_sw */ FROM fo.cached";
    let _ = wait_for!("the cache follows db0", Duration::from_secs(20), {
        cache_follows(&p).await == "db0"
    });
    assert_eq!(count(&mut c, sql).await, 1);
    assert_eq!(count(&mut c, sql).await, 1);
    let (code, reply, _) = switch(&p, r#"{"to": "db1"}"#).await;
    assert_eq!(code, 200, "{reply}");
    let _ = wait_for!("the cache follows db1", Duration::from_secs(20), {
        cache_follows(&p).await == "db1"
    });
    assert_eq!(count(&mut c, sql).await, 1);
    assert_eq!(count(&mut c, sql).await, 1);
    // a write straight to the new primary, then one through Sluice
    t.sb.sql(1, "INSERT INTO fo.cached VALUES (2)")
        .await
        .unwrap();
    let wrote = Instant::now();
    while count(&mut c, sql).await != 2 {
        assert!(wrote.elapsed() < Duration::from_secs(2), "never seen");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    println!(
        "a write on the new primary seen through the cache after {:?}",
        wrote.elapsed()
    );
    c.query_drop("INSERT INTO fo.cached VALUES (3)")
        .await
        .unwrap();
    assert_eq!(count(&mut c, sql).await, 3);
}

/// A promotion that fails part way (the target stops and resets its replication, then may
/// not turn `read_only` off: the monitor account lost SUPER and READ_ONLY ADMIN there) is
/// undone: the target replicates from the old primary again and only the old primary is
/// writable. Reported as a failure and counted as one, not as a switchover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promotion_failing_midway_leaves_the_target_a_replica_of_the_old_primary() {
    let _g = SERIAL.lock().await;
    let t = topology("sw-half").await;
    let p = common::proxy(failover_config(&t)).await;
    setup(&t, &p, "half").await;
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(t.sb.servers[1].port)
        .user(Some(sluice::sandbox::ADMIN_USER))
        .pass(Some(sluice::sandbox::ADMIN_PASSWORD))
        .prefer_socket(false);
    let mut db1 = mysql_async::Conn::new(opts).await.unwrap();
    let monitor = sluice::sandbox::MONITOR_USER;
    db1.query_drop("SET sql_log_bin = 0").await.unwrap();
    db1.query_drop(format!(
        "REVOKE SUPER, READ_ONLY ADMIN ON *.* FROM '{monitor}'@'127.0.0.1'"
    ))
    .await
    .unwrap();
    let (code, reply, took) = switch(&p, r#"{"to": "db1"}"#).await;
    println!("switchover to a target that cannot turn read_only off ({took:?}): {reply}");
    assert_eq!(code, 409, "{reply}");
    let why = reply["error"].as_str().unwrap();
    assert!(why.contains("promotion of db1 failed"), "{why}");
    assert_eq!(
        writable(&t).await,
        vec![0],
        "only the old primary is writable"
    );
    let st = t.sb.sql(1, "SHOW SLAVE STATUS").await.unwrap();
    assert_eq!(
        st.get("Master_Port"),
        Some(t.sb.servers[0].port.to_string().as_str()),
        "db1 replicates from the old primary again"
    );
    assert!(replicating(&t, 1).await, "db1 replicates: {st:?}");
    assert_eq!(primary_name(&p).await, "db0");
    let mut c = client(&p).await;
    c.query_drop("INSERT INTO fo.half VALUES (1)")
        .await
        .unwrap();
    t.sb.wait_caught_up(Duration::from_secs(10)).await.unwrap();
    assert!(present_on(&t, 1, "half").await.contains(&1));
    let (_, metrics) = admin_get(&p, "/metrics").await;
    assert!(metrics.contains("sluice_switchovers_total 0"), "{metrics}");
    assert!(
        metrics.contains("sluice_promotion_failures_total{kind=\"switchover\"} 1"),
        "{metrics}"
    );
}
