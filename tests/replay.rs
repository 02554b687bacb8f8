//! Transaction replay (`failover.transaction_replay`): an open transaction survives kill -9
//! of its primary and a switchover when rerunning it gives the same replies; when the data
//! changed under it, the client gets the lost-transaction error instead.
#![allow(clippy::disallowed_methods)] // clients of the proxy: tokio timers are theirs

mod common;
#[path = "support/failover.rs"]
mod fo;
use common::admin_get;
use fo::*;
use mysql_async::prelude::*;
use std::time::Duration;

async fn prepared_table(t: &Topo, p: &sluice::app::Proxy) -> mysql_async::Conn {
    let mut c = client(p).await;
    c.query_drop("CREATE DATABASE fo").await.unwrap();
    c.query_drop("CREATE TABLE fo.r (id BIGINT PRIMARY KEY, v INT)")
        .await
        .unwrap();
    c.query_drop("INSERT INTO fo.r VALUES (1, 10)")
        .await
        .unwrap();
    t.sb.wait_caught_up(Duration::from_secs(10)).await.unwrap();
    c
}

async fn rows_on(t: &Topo, server: usize) -> Vec<(u64, i64)> {
    let r =
        t.sb.sql(server, "SELECT id, v FROM fo.r ORDER BY id")
            .await
            .unwrap();
    r.rows
        .iter()
        .map(|row| {
            (
                row[0].as_deref().unwrap().parse().unwrap(),
                row[1].as_deref().unwrap().parse().unwrap(),
            )
        })
        .collect()
}

async fn replays(p: &sluice::app::Proxy, result: &str) -> u32 {
    let series = format!("sluice_transaction_replays_total{{result=\"{result}\"}} ");
    admin_get(p, "/metrics")
        .await
        .1
        .lines()
        .find_map(|l| l.strip_prefix(series.as_str()).map(|v| v.parse().unwrap()))
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_interrupted_by_kill_9_completes_through_replay() {
    let t = topology("replay-kill").await;
    let mut cfg = failover_config(&t);
    cfg.failover.transaction_replay = true;
    let p = common::proxy(cfg).await;
    let mut c = prepared_table(&t, &p).await;
    c.query_drop("BEGIN").await.unwrap();
    c.query_drop("UPDATE fo.r SET v = v + 1 WHERE id = 1")
        .await
        .unwrap();
    c.query_drop("INSERT INTO fo.r VALUES (2, 20)")
        .await
        .unwrap();
    let n: u64 = c
        .query_first("SELECT COUNT(*) FROM fo.r")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 2);
    t.sb.kill(0);
    let started = std::time::Instant::now();
    // the same transaction goes on: held until a new primary is there, then replayed on it
    c.query_drop("INSERT INTO fo.r VALUES (3, 30)")
        .await
        .expect("the statement after the kill runs in the replayed transaction");
    c.query_drop("COMMIT")
        .await
        .expect("COMMIT on the new primary");
    println!("transaction resumed {:?} after kill -9", started.elapsed());
    let new_primary = index_of(&primary_name(&p).await);
    assert_ne!(new_primary, 0);
    assert_eq!(
        rows_on(&t, new_primary).await,
        vec![(1, 11), (2, 20), (3, 30)],
        "the whole transaction, once"
    );
    assert_eq!(replays(&p, "success").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchover_moves_open_transactions_or_fails_them_when_the_data_changed() {
    let t = topology("replay-switch").await;
    let mut cfg = failover_config(&t);
    cfg.failover.transaction_replay = true;
    let p = common::proxy(cfg).await;
    let mut other = prepared_table(&t, &p).await;
    let mut a = client(&p).await;
    let mut b = client(&p).await;
    a.query_drop("START TRANSACTION").await.unwrap();
    a.query_drop("INSERT INTO fo.r VALUES (2, 20)")
        .await
        .unwrap();
    b.query_drop("BEGIN").await.unwrap();
    let seen: u64 = b
        .query_first("SELECT COUNT(*) FROM fo.r")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen, 1);
    // committed after b's read: a replay of b's read would see it
    other
        .query_drop("INSERT INTO fo.r VALUES (100, 0)")
        .await
        .unwrap();
    let reply = post(&p, "/switchover", r#"{"to": "db1"}"#).await;
    assert!(reply.contains("\"success\""), "{reply}");
    a.query_drop("INSERT INTO fo.r VALUES (3, 30)")
        .await
        .expect("a's transaction continues on the new primary");
    a.query_drop("COMMIT").await.unwrap();
    assert_eq!(
        rows_on(&t, 1).await,
        vec![(1, 10), (2, 20), (3, 30), (100, 0)]
    );
    let err = b
        .query_drop("UPDATE fo.r SET v = 1 WHERE id = 1")
        .await
        .expect_err("b's read would answer differently: its transaction is lost");
    assert!(err.to_string().contains("lost"), "{err}");
    b.query_drop("ROLLBACK").await.unwrap();
    let v: i64 = b
        .query_first("SELECT v FROM fo.r WHERE id = 1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v, 10, "b's update never ran");
    assert_eq!(replays(&p, "success").await, 1);
    assert_eq!(replays(&p, "mismatch").await, 1);
    // the old primary replicates the moved transaction
    t.sb.wait_caught_up(Duration::from_secs(10)).await.unwrap();
    assert_eq!(rows_on(&t, 0).await.len(), 4);
}
