//! The result cache on the real topology (db0 primary, db1 and db2 replicas): a rule's
//! reads reach a backend once, writes through Sluice and writes straight to the primary
//! invalidate, identical misses run once, volatile reads and transactions are never cached.
//! Backend executions are counted in the servers' general logs.
#![allow(clippy::disallowed_methods)] // clients of the proxy: tokio timers are theirs

mod common;
use common::*;
use mysql_async::prelude::*;
use sluice::config::rules::Rule;
use sluice::config::{Config, Dur};
use std::time::{Duration, Instant};

/// A proxy whose rule `cached` caches statements that contain `marker` for `ttl`.
fn caching(marker: &str, ttl: Duration) -> Config {
    let mut cfg = config();
    cfg.rules = vec![Rule {
        name: "cached".into(),
        pattern: Some(marker.into()),
        cache_ttl: Some(Dur(ttl)),
        ..Default::default()
    }];
    cfg
}

/// A proxy with `caching(marker, ttl)` whose binary log client follows the primary (it
/// purges the cache when it starts following: entries kept before would be dropped).
async fn cache_proxy(marker: &str, ttl: Duration) -> sluice::app::Proxy {
    following(caching(marker, ttl)).await
}

/// A proxy of `cfg` whose binary log client follows the primary.
async fn following(cfg: Config) -> sluice::app::Proxy {
    let p = proxy(cfg).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while admin_get(&p, "/cache")
        .await
        .1
        .contains("\"following\":null")
    {
        assert!(
            Instant::now() < deadline,
            "{}",
            admin_get(&p, "/cache").await.1
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    p
}

/// Times statements containing `marker` were executed on any server of the topology.
async fn executions(marker: &str) -> usize {
    let mut n = 0;
    for i in 0..3 {
        let t = topology();
        t.sql(i, "SET GLOBAL log_output = 'TABLE', general_log = 1")
            .await
            .unwrap();
        let sql = format!(
            "SELECT COUNT(*) FROM mysql.general_log WHERE command_type IN ('Query', 'Execute') \
             AND argument LIKE '%{marker}%' AND argument NOT LIKE '%general_log%'"
        );
        n += column(i, &sql).await[0]
            .as_deref()
            .unwrap_or("0")
            .parse::<usize>()
            .unwrap();
    }
    n
}

async fn table(db: &str) {
    let t = topology();
    t.sql(
        0,
        &format!("CREATE TABLE {db}.items (id INT PRIMARY KEY, v INT)"),
    )
    .await
    .unwrap();
    t.sql(
        0,
        &format!("INSERT INTO {db}.items VALUES (1, 10), (2, 20)"),
    )
    .await
    .unwrap();
    caught_up().await;
    executions("prime the general log").await;
}

/// The `cache` row of `EXPLAIN ROUTE sql`.
async fn explain(c: &mut mysql_async::Conn, sql: &str) -> String {
    let rows: Vec<(String, String)> = c.query(format!("EXPLAIN ROUTE {sql}")).await.unwrap();
    let row = rows.into_iter().find(|(k, _)| k == "cache");
    row.map(|(_, v)| v).unwrap_or_default()
}

async fn read(c: &mut mysql_async::Conn, sql: &str) -> i64 {
    c.query_first::<i64, _>(sql).await.unwrap().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_identical_reads_reach_a_backend_once() {
    let db = database("cache_once").await;
    table(&db).await;
    let p = cache_proxy("c_once", Duration::from_secs(30)).await;
    let mut c = client(&p, Some(&db)).await;
    let sql = "SELECT v /* c_once */ FROM items WHERE id = 1";
    for _ in 0..200 {
        assert_eq!(read(&mut c, sql).await, 10);
    }
    assert_eq!(executions("c_once").await, 1);
    let cache_row = explain(&mut c, sql).await;
    assert!(cache_row.starts_with("cache hit, age "), "{cache_row}");
    let (_, body) = admin_get(&p, "/cache").await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["rules"][0]["hits"], 199, "{v}");
    assert_eq!(v["rules"][0]["stores"], 1, "{v}");
    // another user-visible setting is another entry
    c.query_drop("SET NAMES latin1").await.unwrap();
    assert_eq!(read(&mut c, sql).await, 10);
    assert_eq!(executions("c_once").await, 2);
    let (code, _) = admin(&p, "POST", "/cache/purge", "", None).await;
    assert_eq!(code, 200);
    assert_eq!(read(&mut c, sql).await, 10);
    assert_eq!(executions("c_once").await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_sluice_is_seen_at_once_by_another_session() {
    let db = database("cache_write").await;
    table(&db).await;
    let p = cache_proxy("c_write", Duration::from_secs(60)).await;
    let (mut reader, mut writer) = (client(&p, Some(&db)).await, client(&p, Some(&db)).await);
    let sql = "SELECT v /* c_write */ FROM items WHERE id = 1";
    for round in 1..=20 {
        assert_eq!(read(&mut reader, sql).await, 10 + round - 1);
        assert_eq!(read(&mut reader, sql).await, 10 + round - 1);
        writer
            .query_drop("UPDATE items SET v = v + 1 WHERE id = 1")
            .await
            .unwrap();
        assert_eq!(read(&mut reader, sql).await, 10 + round, "round {round}");
    }
    // a transaction's write is seen after its COMMIT, never the value from before it
    writer.query_drop("BEGIN").await.unwrap();
    writer
        .query_drop("UPDATE items SET v = 100 WHERE id = 1")
        .await
        .unwrap();
    assert_eq!(read(&mut reader, sql).await, 30);
    writer.query_drop("COMMIT").await.unwrap();
    assert_eq!(read(&mut reader, sql).await, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_straight_to_the_primary_is_seen_within_200ms() {
    let db = database("cache_binlog").await;
    table(&db).await;
    let p = cache_proxy("c_binlog", Duration::from_secs(60)).await;
    let mut c = client(&p, Some(&db)).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while admin_get(&p, "/cache")
        .await
        .1
        .contains("\"following\":null")
    {
        assert!(
            Instant::now() < deadline,
            "{}",
            admin_get(&p, "/cache").await.1
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let sql = "SELECT v /* c_binlog */ FROM items WHERE id = 2";
    let mut worst = Duration::ZERO;
    for round in 1..=5 {
        assert_eq!(read(&mut c, sql).await, 20 + round - 1);
        assert_eq!(read(&mut c, sql).await, 20 + round - 1);
        let t = topology();
        t.sql(0, &format!("UPDATE {db}.items SET v = v + 1 WHERE id = 2"))
            .await
            .unwrap();
        let wrote = Instant::now();
        while read(&mut c, sql).await != 20 + round {
            assert!(wrote.elapsed() < Duration::from_secs(5), "never seen");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        worst = worst.max(wrote.elapsed());
    }
    let state = admin_get(&p, "/cache").await.1;
    assert!(
        worst < Duration::from_millis(200),
        "worst {worst:?}: {state}"
    );
    // and the entries were served from the cache in between (not one run per read)
    assert!(executions("c_binlog").await < 5 * 3 + 5, "cache unused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_concurrent_identical_misses_run_once() {
    let db = database("cache_flight").await;
    table(&db).await;
    let p = cache_proxy("c_flight", Duration::from_secs(60)).await;
    let mut conns = Vec::new();
    for _ in 0..500 {
        conns.push(client(&p, Some(&db)).await);
    }
    let sql = "SELECT SUM(a.v) /* c_flight */, COUNT(*) FROM items a JOIN items b";
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|mut c| {
            tokio::spawn(async move {
                let r: Option<(i64, i64)> = c.query_first(sql).await.unwrap();
                r.unwrap()
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), (60, 4));
    }
    assert_eq!(executions("c_flight").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volatile_reads_and_transactions_are_never_cached() {
    let db = database("cache_volatile").await;
    table(&db).await;
    let p = cache_proxy("c_vol", Duration::from_secs(60)).await;
    let mut c = client(&p, Some(&db)).await;
    for sql in [
        "SELECT NOW(6) /* c_vol1 */",
        "SELECT RAND() /* c_vol2 */ FROM items",
        "SELECT v /* c_vol3 */ FROM items WHERE id = 1 FOR UPDATE",
        "SELECT @@hostname /* c_vol4 */",
    ] {
        c.query_drop(sql).await.unwrap();
        c.query_drop(sql).await.unwrap();
    }
    // a view: writes name its base table, so a read of it is never kept
    let t = topology();
    t.sql(
        0,
        &format!("CREATE VIEW {db}.items_v AS SELECT * FROM {db}.items"),
    )
    .await
    .unwrap();
    caught_up().await;
    for _ in 0..2 {
        c.query_drop("SELECT v /* c_vol6 */ FROM items_v")
            .await
            .unwrap();
    }
    c.query_drop("BEGIN").await.unwrap();
    c.query_drop("SELECT v /* c_vol5 */ FROM items")
        .await
        .unwrap();
    c.query_drop("SELECT v /* c_vol5 */ FROM items")
        .await
        .unwrap();
    c.query_drop("COMMIT").await.unwrap();
    for i in 1..=6 {
        assert_eq!(executions(&format!("c_vol{i}")).await, 2, "c_vol{i}");
    }
    let row = explain(&mut c, "SELECT NOW(6) /* c_vol1 */").await;
    assert!(
        row.starts_with("not cacheable: a volatile function"),
        "{row}"
    );
    let (_, body) = admin_get(&p, "/cache").await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["rules"][0]["stores"], 0, "{v}");
    assert_eq!(v["rules"][0]["hits"], 0, "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prepared_statement_gets_one_entry_per_bound_value() {
    let db = database("cache_ps").await;
    table(&db).await;
    let p = cache_proxy("c_ps", Duration::from_secs(60)).await;
    let mut c = client(&p, Some(&db)).await;
    let sql = "SELECT v /* c_ps */ FROM items WHERE id = ?";
    for _ in 0..3 {
        for (id, v) in [(1, 10), (2, 20)] {
            let got: Option<i64> = c.exec_first(sql, (id,)).await.unwrap();
            assert_eq!(got, Some(v));
        }
    }
    let state = admin_get(&p, "/cache").await.1;
    assert_eq!(executions("c_ps").await, 2, "{state}");
    c.query_drop("UPDATE items SET v = 11 WHERE id = 1")
        .await
        .unwrap();
    let got: Option<i64> = c.exec_first(sql, (1,)).await.unwrap();
    assert_eq!(got, Some(11));
    // the text protocol's reply to the same query is another entry (rows in text form)
    let text: Option<i64> = c
        .query_first("SELECT v /* c_ps */ FROM items WHERE id = 2")
        .await
        .unwrap();
    assert_eq!(text, Some(20));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_binary_log_entries_end_by_their_ttl_and_status_says_so() {
    let db = database("cache_ttl").await;
    table(&db).await;
    let mut cfg = caching("c_ttl", Duration::from_millis(500));
    cfg.cache.binlog = false;
    let p = proxy(cfg).await;
    let mut c = client(&p, Some(&db)).await;
    let sql = "SELECT v /* c_ttl */ FROM items WHERE id = 1";
    assert_eq!(read(&mut c, sql).await, 10);
    let stored = Instant::now();
    topology()
        .sql(0, &format!("UPDATE {db}.items SET v = 12 WHERE id = 1"))
        .await
        .unwrap();
    // the entry is served until its TTL ends: the write was not seen
    assert_eq!(read(&mut c, sql).await, 10);
    let (_, status) = admin_get(&p, "/status").await;
    assert!(status.contains("[cache] binlog = false"), "{status}");
    let (_, metrics) = admin_get(&p, "/metrics").await;
    assert!(
        metrics.contains("sluice_cache_binlog_following 0"),
        "{metrics}"
    );
    while read(&mut c, sql).await != 12 {
        assert!(
            stored.elapsed() < Duration::from_secs(3),
            "the TTL never ended"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let seen = stored.elapsed();
    assert!(
        seen >= Duration::from_millis(450),
        "seen after {seen:?}, before the TTL"
    );
    // a write through Sluice still invalidates at once
    c.query_drop("UPDATE items SET v = 13 WHERE id = 1")
        .await
        .unwrap();
    assert_eq!(read(&mut c, sql).await, 13);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hit_near_the_end_of_the_ttl_refreshes_the_entry_ahead_of_expiry() {
    let db = database("cache_ahead").await;
    table(&db).await;
    let ttl = Duration::from_secs(4);
    let mut cfg = caching("c_ahead", ttl);
    cfg.rules[0].cache_refresh_ahead = true;
    let p = following(cfg).await;
    let mut c = client(&p, Some(&db)).await;
    c.query_drop("SET NAMES latin1").await.unwrap();
    let sql = "SELECT v /* c_ahead */ FROM items WHERE id = 1";
    assert_eq!(read(&mut c, sql).await, 10);
    let stored = Instant::now();
    let hits = |body: &str| {
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        v["rules"][0]["hits"].as_u64().unwrap()
    };
    // early in the TTL a hit is only a hit
    assert_eq!(read(&mut c, sql).await, 10);
    // a time during which a wrongly started refresh would have run (nothing to wait for)
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(executions("c_ahead").await, 1);
    // in its last 10% a hit is served and one refresh runs beside it
    tokio::time::sleep((stored + ttl * 37 / 40).saturating_duration_since(Instant::now())).await;
    assert_eq!(read(&mut c, sql).await, 10);
    assert!(stored.elapsed() < ttl, "the test came too late to hit");
    assert_eq!(hits(&admin_get(&p, "/cache").await.1), 2);
    let deadline = Instant::now() + Duration::from_secs(5);
    while executions("c_ahead").await < 2 {
        assert!(Instant::now() < deadline, "no refresh ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // past the first TTL the refreshed entry serves (without the refresh: a miss), made
    // with the session's variables
    tokio::time::sleep((stored + ttl * 9 / 8).saturating_duration_since(Instant::now())).await;
    let row = explain(&mut c, sql).await;
    assert!(row.starts_with("cache hit, age 0."), "{row}");
    assert_eq!(read(&mut c, sql).await, 10);
    let (_, body) = admin_get(&p, "/cache").await;
    assert_eq!(hits(&body), 3, "{body}");
    assert_eq!(executions("c_ahead").await, 2);
    // the refreshed entry is invalidated by writes like any other
    c.query_drop("UPDATE items SET v = 12 WHERE id = 1")
        .await
        .unwrap();
    assert_eq!(read(&mut c, sql).await, 12);
}
