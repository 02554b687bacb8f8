//! Failover and switchover on real topologies. Each test starts its own primary + 2 replicas
//! (they kill and freeze servers) and removes it afterwards.
#![allow(clippy::disallowed_methods)] // clients of the proxy: tokio timers are theirs

mod common;
#[path = "support/failover.rs"]
mod fo;
use common::admin_get;
use common::probed;
use fo::*;
use mysql_async::prelude::*;
use sluice::config::Config;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_primary_under_write_load() {
    let t = topology("kill").await;
    let p = common::proxy(failover_config(&t)).await;
    let mut c = client(&p).await;
    c.query_drop("CREATE DATABASE fo").await.unwrap();
    c.query_drop("CREATE TABLE fo.w (id BIGINT PRIMARY KEY)")
        .await
        .unwrap();
    t.sb.wait_caught_up(Duration::from_secs(10)).await.unwrap();
    let w = start_writer(&p, "w");
    w.acked_since(100, Instant::now()).await;
    let killed_at = Instant::now();
    t.sb.kill(0);
    let waited = tokio::time::timeout(Duration::from_secs(15), async {
        while primary_name(&p).await == "db0" {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    if waited.is_err() {
        panic!(
            "no new primary within 15s; status: {}",
            admin_get(&p, "/status").await.1
        );
    }
    // writes go on against the new primary
    w.acked_since(100, Instant::now()).await;
    let (acked, errors, oks) = w.finish().await;
    let first_ok_after = oks
        .iter()
        .find(|&&o| o > killed_at)
        .map(|o| o.duration_since(killed_at));
    let new_primary = index_of(&primary_name(&p).await);
    let present = present_on(&t, new_primary, "w").await;
    let lost = acked.iter().filter(|i| !present.contains(i)).count();
    println!(
        "kill -9 of the primary: writes succeeded again after {first_ok_after:?}; {} acknowledged, {lost} lost (async replication), {errors} failed during the failover; new primary db{new_primary}",
        acked.len()
    );
    let recovery = first_ok_after.expect("writes resumed");
    assert!(
        recovery < Duration::from_secs(5),
        "writes must resume within 5s of the kill: {recovery:?}"
    );
    // the other replica replicates from the new primary
    let other = if new_primary == 1 { 2 } else { 1 };
    c = client(&p).await;
    c.query_drop("INSERT INTO fo.w VALUES (999999999)")
        .await
        .unwrap();
    let followed = |r: Result<sluice::backend::QueryResult, _>| {
        r.map(|r| r.get("n") == Some("1")).unwrap_or(false)
    };
    let _ = wait_for!(
        "the other replica follows the new primary",
        Duration::from_secs(10),
        followed(
            t.sb.sql(other, "SELECT COUNT(*) AS n FROM fo.w WHERE id = 999999999")
                .await
        )
    );
    let (_, body) = admin_get(&p, "/metrics").await;
    assert!(
        body.contains("sluice_failovers_total 1"),
        "one failover counted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frozen_primary_fails_over_and_is_fenced_when_resumed() {
    let t = topology("freeze").await;
    let p = common::proxy(failover_config(&t)).await;
    let mut c = client(&p).await;
    c.query_drop("CREATE DATABASE fo").await.unwrap();
    c.query_drop("CREATE TABLE fo.f (id BIGINT PRIMARY KEY, sid INT)")
        .await
        .unwrap();
    t.sb.wait_caught_up(Duration::from_secs(10)).await.unwrap();
    t.sb.freeze(0).unwrap();
    let took = wait_for!(
        "failover away from the frozen primary",
        Duration::from_secs(30),
        primary_name(&p).await != "db0"
    );
    println!("frozen primary replaced after {took:?}");
    t.sb.thaw(0).unwrap();
    let fenced = wait_for!(
        "the resumed old primary is fenced",
        Duration::from_secs(15),
        t.sb.sql(0, "SELECT @@global.read_only AS ro")
            .await
            .map(|r| r.get("ro") == Some("1"))
            .unwrap_or(false)
    );
    println!("resumed old primary read-only after {fenced:?}");
    let (_, body) = admin_get(&p, "/status").await;
    assert!(body.contains("came back writable"), "{body}");
    let mut c = client(&p).await;
    for i in 0..20 {
        c.query_drop(format!("INSERT INTO fo.f VALUES ({i}, @@server_id)"))
            .await
            .unwrap();
    }
    let np = index_of(&primary_name(&p).await);
    let r =
        t.sb.sql(np, "SELECT COUNT(*) AS n FROM fo.f WHERE sid = 1")
            .await
            .unwrap();
    assert_eq!(r.get("n"), Some("0"), "no write reached the old primary");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_losing_its_link_does_not_trigger_failover() {
    let t = topology("link").await;
    let p = common::proxy(failover_config(&t)).await;
    t.sb.sql(1, "STOP SLAVE IO_THREAD").await.unwrap();
    let _ = wait_for!(
        "the monitor sees db1's link down",
        Duration::from_secs(10),
        { common::backend_status(&p, "db1").await["eligible"] == false }
    );
    // ten more probes (3 s at 300 ms, three times failover.after): no failover
    probed(&p, 10).await;
    assert_eq!(primary_name(&p).await, "db0");
    let (_, body) = admin_get(&p, "/metrics").await;
    assert!(body.contains("sluice_failovers_total 0"));
    let st = common::backend_status(&p, "db1").await;
    assert_eq!(
        st["eligible"], false,
        "a replica that stopped replicating takes no reads: {st}"
    );
    t.sb.sql(1, "START SLAVE IO_THREAD").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchover_under_write_load_loses_and_fails_nothing() {
    let t = topology("switch").await;
    let p = common::proxy(failover_config(&t)).await;
    let mut c = client(&p).await;
    c.query_drop("CREATE DATABASE fo").await.unwrap();
    c.query_drop("CREATE TABLE fo.s (id BIGINT PRIMARY KEY)")
        .await
        .unwrap();
    t.sb.wait_caught_up(Duration::from_secs(10)).await.unwrap();
    let w = start_writer(&p, "s");
    w.acked_since(50, Instant::now()).await;
    let started = Instant::now();
    let reply = post(&p, "/switchover", r#"{"to": "db2"}"#).await;
    let took = started.elapsed();
    w.acked_since(50, Instant::now()).await;
    let (acked, errors, _) = w.finish().await;
    println!("switchover took {took:?}: {reply}");
    assert!(reply.contains("\"success\""), "{reply}");
    assert_eq!(primary_name(&p).await, "db2");
    let present = present_on(&t, 2, "s").await;
    let lost = acked.iter().filter(|i| !present.contains(i)).count();
    println!(
        "switchover under load: {} acknowledged writes, {lost} lost, {errors} failed statements",
        acked.len()
    );
    assert_eq!(
        errors, 0,
        "no client statement may fail during a switchover"
    );
    assert_eq!(lost, 0, "no acknowledged write may be lost");
    // the old primary now replicates from the new one
    let st = t.sb.sql(0, "SHOW SLAVE STATUS").await.unwrap();
    assert_eq!(
        st.get("Master_Port"),
        Some(t.sb.servers[2].port.to_string().as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sluices_promote_exactly_once() {
    let t = topology("two").await;
    let a = common::proxy(failover_config(&t)).await;
    let b = common::proxy(failover_config(&t)).await;
    probed(&a, 2).await;
    probed(&b, 2).await;
    t.sb.kill(0);
    let _ = wait_for!(
        "a promotes or follows",
        Duration::from_secs(20),
        primary_name(&a).await != "db0"
    );
    let _ = wait_for!(
        "b promotes or follows",
        Duration::from_secs(20),
        primary_name(&b).await != "db0"
    );
    let _ = wait_for!("both name the same primary", Duration::from_secs(10), {
        primary_name(&a).await == primary_name(&b).await
    });
    let (fa, fb) = (failovers(&a).await, failovers(&b).await);
    println!(
        "two instances: failovers performed a={fa} b={fb}; primary a={} b={}",
        primary_name(&a).await,
        primary_name(&b).await
    );
    if fa + fb != 1 {
        for p in [&a, &b] {
            let (_, body) = admin_get(p, "/status").await;
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            println!("failover record: {}", v["failover"]);
        }
    }
    assert_eq!(fa + fb, 1, "exactly one promotion");
    assert_eq!(primary_name(&a).await, primary_name(&b).await);
    let mut ro = 0;
    for i in 1..=2 {
        if t.sb
            .sql(i, "SELECT @@global.read_only AS ro")
            .await
            .unwrap()
            .get("ro")
            == Some("1")
        {
            ro += 1;
        }
    }
    assert_eq!(ro, 1, "exactly one replica was promoted");
}

/// Two instances partitioned from each other, each reaching the primary and a different
/// replica (the other replica's address is unreachable from it): when the primary dies,
/// each holds the lock on 1 of 3 configured backends, so neither promotes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitioned_instances_never_both_promote() {
    let t = topology("partition").await;
    let cut_off = |cfg: &mut Config, name: &str| {
        let b = cfg.backends.iter_mut().find(|b| b.name == name).unwrap();
        b.address = "127.0.0.1:1".into(); // nothing listens there
    };
    let mut ca = failover_config(&t);
    cut_off(&mut ca, "db2");
    let mut cb = failover_config(&t);
    cut_off(&mut cb, "db1");
    let a = common::proxy(ca).await;
    let b = common::proxy(cb).await;
    probed(&a, 2).await;
    probed(&b, 2).await;
    t.sb.kill(0);
    // both try (failover.after = 3 x 300 ms) and say why they do not promote
    let _ = wait_for!(
        "both instances tried to fail over",
        Duration::from_secs(20),
        admin_get(&a, "/status")
            .await
            .1
            .contains("configured backends")
            && admin_get(&b, "/status")
                .await
                .1
                .contains("configured backends")
    );
    let (fa, fb) = (failovers(&a).await, failovers(&b).await);
    let note = admin_get(&a, "/status").await.1;
    println!("partitioned instances: failovers a={fa} b={fb}");
    assert!(fa + fb <= 1, "at most one promotion: a={fa} b={fb}");
    assert_eq!(fa + fb, 0, "neither side has a majority of 3: {note}");
    assert!(note.contains("1 of 3 configured backends"), "{note}");
    for i in 1..=2 {
        let ro =
            t.sb.sql(i, "SELECT @@global.read_only AS ro")
                .await
                .unwrap();
        assert_eq!(ro.get("ro"), Some("1"), "db{i} must not have been promoted");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_semi_sync_replication_no_acknowledged_write_is_lost() {
    let t = topology("semisync").await;
    enable_semi_sync(&t).await;
    let p = common::proxy(failover_config(&t)).await;
    let mut c = client(&p).await;
    c.query_drop("CREATE DATABASE fo").await.unwrap();
    c.query_drop("CREATE TABLE fo.ss (id BIGINT PRIMARY KEY)")
        .await
        .unwrap();
    t.sb.wait_caught_up(Duration::from_secs(10)).await.unwrap();
    let w = start_writer(&p, "ss");
    w.acked_since(100, Instant::now()).await;
    let on = status_of(&t, "Rpl_semi_sync_master_status").await;
    assert_eq!(on, "ON", "semi-sync must be active when the primary dies");
    t.sb.kill(0);
    let _ = wait_for!(
        "a new primary",
        Duration::from_secs(15),
        primary_name(&p).await != "db0"
    );
    w.acked_since(50, Instant::now()).await;
    let (acked, errors, _) = w.finish().await;
    let np = index_of(&primary_name(&p).await);
    let present = present_on(&t, np, "ss").await;
    let lost: Vec<_> = acked.iter().filter(|i| !present.contains(i)).collect();
    println!(
        "semi-sync (status {on}): {} acknowledged writes, {} lost, {errors} failed during failover",
        acked.len(),
        lost.len()
    );
    assert!(
        lost.is_empty(),
        "acknowledged writes lost with semi-sync: {lost:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_password_with_quotes_survives_a_switchover() {
    use sluice::failover::sql::quote;
    let t = topology("quote").await;
    let password = r#"a'b\c"d; --"#;
    t.sb.sql(
        0,
        &format!(
            "CREATE USER 'repl_q'@'127.0.0.1' IDENTIFIED BY {}",
            quote(password)
        ),
    )
    .await
    .unwrap();
    t.sb.sql(0, "GRANT REPLICATION SLAVE ON *.* TO 'repl_q'@'127.0.0.1'")
        .await
        .unwrap();
    t.sb.wait_caught_up(Duration::from_secs(10)).await.unwrap();
    let mut cfg = failover_config(&t);
    cfg.failover.replication_user = "repl_q".into();
    cfg.failover.replication_password = password.into();
    let p = common::proxy(cfg).await;
    // let the monitors' first probes (heartbeat table DDL on the primary) finish first: a
    // switchover racing them can lose that DDL on the new primary (noted for issue 11)
    probed(&p, 2).await;
    let reply = post(&p, "/switchover", r#"{"to": "db2"}"#).await;
    assert!(reply.contains("\"success\""), "{reply}");
    assert!(
        !reply.contains(password),
        "the password must never be echoed"
    );
    // the others really replicate from db2 with those credentials
    let port = t.sb.servers[2].port.to_string();
    for i in [0, 1] {
        let started = Instant::now();
        loop {
            let st = t.sb.sql(i, "SHOW SLAVE STATUS").await.unwrap();
            let ok = st.get("Master_Port") == Some(port.as_str())
                && st.get("Master_User") == Some("repl_q")
                && st.get("Slave_IO_Running") == Some("Yes");
            if ok {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "server {i} does not replicate from db2: {:?} {:?} {:?}",
                st.get("Master_Port"),
                st.get("Slave_IO_Running"),
                st.get("Last_IO_Error")
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let (_, status) = common::admin_get(&p, "/status").await;
    assert!(!status.contains(password));
}
