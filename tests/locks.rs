//! Locks that outlive their statement stay with the client that took them and go with it:
//! a global read lock (`FLUSH TABLES WITH READ LOCK`) and tables flushed for export never
//! reach another client through a pooled connection, and Sluice's own heartbeat does not
//! mistake a locked primary for a dead one. Own binary: a global read lock stops every write
//! on the primary, which would disturb tests running beside it.
#![allow(clippy::disallowed_methods)] // clients of the proxy: tokio timers are theirs

mod common;
use common::*;
use mysql_async::prelude::*;
use std::time::Duration;

/// The next client's write goes through (bounded): nothing is left locked.
async fn write_goes_through(p: &sluice::app::Proxy, db: &str, id: i32) {
    let mut c = client(p, Some(db)).await;
    let insert = c.query_drop(format!("INSERT INTO t VALUES ({id})"));
    match tokio::time::timeout(Duration::from_secs(5), insert).await {
        Ok(r) => r.unwrap_or_else(|e| panic!("the next client's write failed: {e}")),
        Err(_) => panic!("the next client's write waits on a lock left behind"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_global_read_lock_stays_with_its_client_and_goes_with_it() {
    let db = database("locks_ftwrl").await;
    let t = topology();
    t.sql(0, "CREATE TABLE locks_ftwrl.t (id INT PRIMARY KEY)")
        .await
        .unwrap();
    // FLUSH ... WITH READ LOCK / FOR EXPORT need RELOAD (a backup tool's account has it)
    t.sql(0, "GRANT RELOAD ON *.* TO 'app'@'127.0.0.1'")
        .await
        .unwrap();
    caught_up().await;
    let mut cfg = config();
    // few primary connections: a lock left on one would meet the next client
    cfg.pool.max_connections_per_backend = 2;
    let p = proxy(cfg).await;

    let mut a = client(&p, Some(&db)).await;
    a.query_drop("FLUSH TABLES WITH READ LOCK").await.unwrap();
    // held for several probes: the primary stays healthy (only writes wait)
    probed(&p, 5).await;
    let st = backend_status(&p, "db0").await;
    assert_eq!(
        st["healthy"], true,
        "a locked primary is not a dead one: {st}"
    );
    assert!(st["probe_error"].is_null(), "probes keep succeeding: {st}");
    assert_eq!(st["role"], "primary", "{st}");
    // the lock's own connection releases it
    a.query_drop("UNLOCK TABLES").await.unwrap();
    write_goes_through(&p, &db, 1).await;

    // a client that vanishes holding the lock takes it with it
    a.query_drop("FLUSH TABLES WITH READ LOCK").await.unwrap();
    drop(a); // no COM_QUIT
    write_goes_through(&p, &db, 2).await;

    // tables flushed for export, the same
    let mut b = client(&p, Some(&db)).await;
    b.query_drop("FLUSH TABLES t FOR EXPORT").await.unwrap();
    b.disconnect().await.unwrap();
    write_goes_through(&p, &db, 3).await;
}
