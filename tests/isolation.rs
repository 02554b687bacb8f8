//! Session isolation: nothing a client leaves on a backend connection (transaction, rows,
//! user variables, locks, temporary tables, running statements, prepared statements) reaches
//! another client, whether the client quits, vanishes or is killed.
#![allow(clippy::disallowed_methods)] // clients of the proxy: tokio timers are theirs

mod common;
use common::*;
use mysql_async::prelude::*;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Leaves a transaction with a row, a user variable, a named lock and a temporary table on
/// the primary connection of a raw client, then returns the client's socket halves.
async fn dirty_session(p: &sluice::app::Proxy, db: &str, id: i32) -> impl Sized {
    let (mut r, mut w) = raw_login(p.addr.port(), true).await;
    for sql in [
        format!("USE {db}"),
        "BEGIN".into(),
        format!("INSERT INTO t VALUES ({id})"),
        "SET @leak = 42".into(),
        "SELECT GET_LOCK('iso_lock', 0)".into(),
        "CREATE TEMPORARY TABLE tmp_leak (a INT)".into(),
    ] {
        let reply = raw_query(&mut r, &mut w, &sql).await;
        assert_ne!(reply.last().unwrap()[0], 0xFF, "{sql}: {:?}", reply.last());
    }
    (r, w)
}

/// What the next client sees on the primary: (user variable, in transaction, lock holder).
async fn assert_clean(p: &sluice::app::Proxy, db: &str, gone_id: i32) {
    let mut c = client(p, Some(db)).await;
    let row: (Option<i64>, i64, Option<i64>) = c
        .query_first("SELECT @leak, @@in_transaction, IS_USED_LOCK('iso_lock')")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row, (None, 0, None), "state of the previous client leaked");
    c.query_drop("CREATE TEMPORARY TABLE tmp_leak (a INT)")
        .await
        .expect("the previous client's temporary table is gone");
    c.query_drop("DROP TEMPORARY TABLE tmp_leak").await.unwrap();
    c.query_drop("COMMIT").await.unwrap();
    drop(c);
    let rows = column(
        0,
        &format!("SELECT COUNT(*) FROM {db}.t WHERE id = {gone_id}"),
    )
    .await;
    assert_eq!(
        rows,
        vec![Some("0".into())],
        "the abandoned insert must roll back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_session_state_never_reaches_the_next_client() {
    let db = database("iso_abandon").await;
    topology()
        .sql(0, "CREATE TABLE iso_abandon.t (id INT PRIMARY KEY)")
        .await
        .unwrap();
    caught_up().await;
    let mut cfg = config();
    // one primary connection: the next client must get the very connection left behind
    cfg.pool.max_connections_per_backend = 1;
    let p = proxy(cfg).await;

    // 1. the client vanishes (socket closed, no COM_QUIT)
    let halves = dirty_session(&p, &db, 1).await;
    drop(halves);
    assert_clean(&p, &db, 1).await;

    // 2. the client is killed by another one (its session task is aborted)
    let mut a = client(&p, Some(&db)).await;
    let a_id = a.id();
    a.query_drop("BEGIN").await.unwrap();
    a.query_drop("INSERT INTO t VALUES (2)").await.unwrap();
    a.query_drop("SET @leak = 7").await.unwrap();
    let mut killer = client(&p, None).await;
    killer.query_drop(format!("KILL {a_id}")).await.unwrap();
    drop(killer);
    std::mem::forget(a); // never touch the killed connection again
    assert_clean(&p, &db, 2).await;

    let primary = &p.shared.topology.backend(0).pool;
    assert_eq!(
        primary.opened.load(Ordering::Relaxed),
        1,
        "the test must have reused the one primary connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statements_of_a_vanished_client_are_killed() {
    let p = proxy(config()).await;
    for (marker, sql) in [
        ("iso_sleep_read", "SELECT SLEEP(30) AS iso_sleep_read"),
        (
            "iso_sleep_write",
            "SELECT SLEEP(30) AS iso_sleep_write FOR UPDATE",
        ),
    ] {
        let (r, mut w) = raw_login(p.addr.port(), true).await;
        let mut pkt = vec![0x03];
        pkt.extend_from_slice(sql.as_bytes());
        w.write_packet(&mut 0, &pkt).await.unwrap();
        w.flush().await.unwrap();
        let started = Instant::now();
        while running(marker).await == 0 {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{marker} never ran"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        drop((r, w));
        let left = Instant::now();
        while running(marker).await > 0 {
            assert!(
                left.elapsed() < Duration::from_secs(5),
                "{marker} still runs on a backend 5 s after its client left"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn prepared_count() -> i64 {
    let mut n = 0;
    for i in 0..3 {
        let r = topology()
            .sql(i, "SHOW GLOBAL STATUS LIKE 'Prepared_stmt_count'")
            .await
            .unwrap();
        n += r.rows[0][1].as_deref().unwrap().parse::<i64>().unwrap();
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_prepared_statements_stay_bounded() {
    let mut cfg = config();
    cfg.pool.max_prepared_per_connection = 8;
    let p = proxy(cfg).await;
    let before = prepared_count().await;
    let opts = opts(&p, None).stmt_cache_size(0);
    let mut tasks = Vec::new();
    for t in 0..4 {
        let opts = opts.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = mysql_async::Conn::new(opts).await.unwrap();
            for i in 0..150 {
                // the same statement prepared again and again, and many distinct ones
                let _: Option<i64> = c.exec_first("SELECT ? + 0", (i,)).await.unwrap();
                let sql = format!("SELECT ? + {} AS iso_distinct_{t}", i);
                let _: Option<i64> = c.exec_first(sql.as_str(), (i,)).await.unwrap();
                // and on the primary, inside transactions
                c.query_drop("BEGIN").await.unwrap();
                let _: Option<i64> = c.exec_first("SELECT ? + 1 FOR UPDATE", (i,)).await.unwrap();
                c.query_drop("COMMIT").await.unwrap();
            }
            c.disconnect().await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let opened = backend_connections_opened(&p);
    let grown = prepared_count().await - before;
    // at most the cap per backend connection Sluice ever opened (other tests share servers)
    assert!(
        grown <= 8 * opened as i64 + 10,
        "backend prepared statements grew by {grown} over {opened} connections"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_statement_queries_return_every_result() {
    let mut cfg = config();
    cfg.pool.max_connections_per_backend = 1;
    let p = proxy(cfg).await;
    // a client without CLIENT_MULTI_STATEMENTS leaves state that makes Sluice reset its
    // primary connection; the next client (with the capability) gets that connection
    let (mut r, mut w) = raw_login(p.addr.port(), true).await;
    let reply = raw_query(&mut r, &mut w, "SELECT 1 FOR UPDATE; SELECT 2").await;
    assert_eq!(
        reply.last().unwrap()[0],
        0xFF,
        "no multi-statements without the capability"
    );
    raw_query(&mut r, &mut w, "SET SESSION sql_mode = ''").await;
    raw_query(&mut r, &mut w, "SET @x = 1").await;
    drop((r, w));
    let mut c = client(&p, None).await;
    for sql in [
        "SELECT 1; SELECT 2; SELECT 3",
        "SELECT 1 FOR UPDATE; SELECT 2; SELECT 3",
    ] {
        let mut res = c.query_iter(sql).await.unwrap();
        let mut got = Vec::new();
        while !res.is_empty() {
            let v: Vec<i64> = res.collect().await.unwrap();
            got.extend(v);
        }
        assert_eq!(got, vec![1, 2, 3], "{sql}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_id_is_the_handshake_id_and_kill_takes_it() {
    let p = proxy(config()).await;
    let mut victim = client(&p, None).await;
    let seen: u64 = victim
        .query_first("SELECT CONNECTION_ID()")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen, victim.id() as u64, "CONNECTION_ID() = handshake id");
    let aliased: u64 = victim
        .query_first("select connection_id() as cid;")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(aliased, seen);
    // node-mysql2 style: another connection kills the id the victim reported
    let mut killer = client(&p, None).await;
    killer.query_drop(format!("KILL {seen}")).await.unwrap();
    let after = victim.query_drop("SELECT 1").await;
    assert!(after.is_err(), "the killed connection must be closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_state_changes_reach_clients_that_ask_for_them() {
    use mysql_common::constants::CapabilityFlags as C;
    let p = proxy(config()).await;
    let caps = C::CLIENT_DEPRECATE_EOF | C::CLIENT_SESSION_TRACK;
    let none = mysql_common::constants::MariadbCapabilities::empty();
    let (mut r, mut w) = raw_login_with(p.addr.port(), caps, none).await;
    let ok = raw_query(&mut r, &mut w, "SET time_zone = '+01:00'").await;
    let ok = &ok[0];
    assert_eq!(ok[0], 0x00, "OK");
    let status = sluice::protocol::reply::parse_ok(ok).unwrap().status;
    assert!(status & 0x4000 != 0, "SERVER_SESSION_STATE_CHANGED set");
    let text = String::from_utf8_lossy(ok);
    assert!(
        text.contains("time_zone") && text.contains("+01:00"),
        "{text:?}"
    );
    // a client without the capability gets no session-state block
    let (mut r, mut w) = raw_login(p.addr.port(), true).await;
    let ok = raw_query(&mut r, &mut w, "SET time_zone = '+02:00'").await;
    assert!(!String::from_utf8_lossy(&ok[0]).contains("time_zone"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_warnings_follows_a_statement_on_the_sessions_primary_connection() {
    let db = database("iso_warn").await;
    let p = proxy(config()).await;
    let mut c = client(&p, Some(&db)).await;
    c.query_drop("SET @keep = 1").await.unwrap(); // the session now holds a primary connection
    c.query_drop("CREATE TABLE IF NOT EXISTS w (a INT)")
        .await
        .unwrap();
    c.query_drop("CREATE TABLE IF NOT EXISTS w (a INT)")
        .await
        .unwrap();
    let notes: Vec<(String, u32, String)> = c.query("SHOW WARNINGS").await.unwrap();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0].1, 1050);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_read_your_writes_shows_other_sessions_writes() {
    let db = database("iso_global").await;
    topology()
        .sql(0, "CREATE TABLE iso_global.t (id INT PRIMARY KEY)")
        .await
        .unwrap();
    caught_up().await;
    let mut cfg = config();
    cfg.routing.read_your_writes = sluice::config::ReadYourWrites::Global;
    let p = proxy(cfg).await;
    let mut writer = client(&p, Some(&db)).await;
    let mut reader = client(&p, Some(&db)).await;
    for i in 1..=3 {
        delay_replicas(2).await;
        writer
            .query_drop(format!("INSERT INTO t VALUES ({i})"))
            .await
            .unwrap();
        // another connection, which never wrote, reads at once
        let n = rows_with_id(&mut reader, i).await;
        assert_eq!(
            n, 1,
            "a write acknowledged to one session is visible to the next read"
        );
    }
    delay_replicas(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_extended_metadata_reaches_clients_that_ask_for_it() {
    use mysql_common::constants::{CapabilityFlags as C, MariadbCapabilities as M};
    let db = database("iso_meta").await;
    topology()
        .sql(0, "CREATE TABLE iso_meta.j (doc JSON)")
        .await
        .unwrap();
    caught_up().await;
    let p = proxy(config()).await;
    let ext = M::MARIADB_CLIENT_EXTENDED_METADATA;
    for (mariadb, want_json) in [(ext, true), (M::empty(), false)] {
        let (mut r, mut w) = raw_login_with(p.addr.port(), C::CLIENT_DEPRECATE_EOF, mariadb).await;
        let sql = format!("SELECT doc, CONNECTION_ID() FROM {db}.j");
        let reply = raw_query(&mut r, &mut w, &sql).await;
        assert_ne!(reply.last().unwrap()[0], 0xFF, "{:?}", reply.last());
        let column = String::from_utf8_lossy(&reply[1]);
        assert_eq!(column.contains("json"), want_json, "{column:?}");
        // a column Sluice writes itself follows the same format
        let reply = raw_query(&mut r, &mut w, "SELECT CONNECTION_ID()").await;
        assert_eq!(reply.len(), 4, "count, column, row, terminator: {reply:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_see_writes_committed_with_autocommit_off() {
    // Django's atomic blocks through mysqlclient: SET autocommit=0, writes, COMMIT,
    // SET autocommit=1, then a read that must see the writes (was: a stale replica, 1062)
    let db = database("iso_autocommit").await;
    topology()
        .sql(0, "CREATE TABLE iso_autocommit.t (id INT PRIMARY KEY)")
        .await
        .unwrap();
    caught_up().await;
    let p = proxy(config()).await;
    let mut c = client(&p, Some(&db)).await;
    for i in 1..=3 {
        delay_replicas(2).await;
        c.query_drop("SET autocommit = 0").await.unwrap();
        c.query_drop(format!("INSERT INTO t VALUES ({i})"))
            .await
            .unwrap();
        c.query_drop("COMMIT").await.unwrap();
        c.query_drop("SET autocommit = 1").await.unwrap();
        let n = rows_with_id(&mut c, i).await;
        assert_eq!(
            n, 1,
            "the session's committed write is visible to its next read"
        );
    }
    delay_replicas(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_variables_set_by_prepared_statements_stick() {
    // node-mysql2's charset tests: execute('set character_set_results = ?', ['cp1251'])
    let p = proxy(config()).await;
    let mut c = client(&p, None).await;
    for cs in ["cp1251", "koi8r", "utf8mb4"] {
        c.exec_drop("SET character_set_results = ?", (cs,))
            .await
            .unwrap();
        for _ in 0..3 {
            let got: String = c
                .query_first("SELECT @@character_set_results")
                .await
                .unwrap()
                .unwrap();
            assert_eq!(got, cs);
        }
    }
}

/// Makes both replicas apply events `secs` seconds late (0 undoes it).
async fn delay_replicas(secs: u32) {
    for i in [1, 2] {
        topology().delay_replica(i, secs).await.unwrap();
    }
}

async fn rows_with_id(c: &mut mysql_async::Conn, id: i32) -> i64 {
    c.query_first(format!("SELECT COUNT(*) FROM t WHERE id = {id}"))
        .await
        .unwrap()
        .unwrap()
}

/// Lets this process open a few thousand sockets (clients and Sluice share it).
fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit on this process with a valid struct
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_clients_with_autocommit_off_hold_no_backend_connection() {
    raise_fd_limit();
    const CLIENTS: usize = 1000;
    let db = database("iso_idle_ac").await;
    topology()
        .sql(0, "CREATE TABLE iso_idle_ac.t (id INT PRIMARY KEY, n INT)")
        .await
        .unwrap();
    caught_up().await;
    let mut cfg = config();
    cfg.pool.max_connections_per_backend = 100;
    cfg.listen.max_client_connections = CLIENTS + 100;
    let p = proxy(cfg).await;
    // as PyMySQL and mysqlclient connect (PEP 249): autocommit off, then one transaction
    let mut clients = Vec::new();
    for batch in 0..CLIENTS / 50 {
        let mut opened = tokio::task::JoinSet::new();
        for k in 0..50 {
            let o = opts(&p, Some(&db));
            opened.spawn(async move {
                let id = batch * 50 + k;
                let mut c = mysql_async::Conn::new(o).await.unwrap();
                c.query_drop("SET autocommit = 0").await.unwrap();
                c.query_drop(format!("INSERT INTO t VALUES ({id}, 0)"))
                    .await
                    .unwrap();
                c.query_drop("COMMIT").await.unwrap();
                (id, c)
            });
        }
        clients.extend(opened.join_all().await);
    }
    let mut idle = Vec::new();
    // all connected at once and idle between transactions: nothing held
    let primary = &p.shared.topology.backends()[0].pool;
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while primary.busy.load(Ordering::Relaxed) > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(
        primary.busy.load(Ordering::Relaxed),
        0,
        "idle clients hold connections"
    );
    assert!(primary.open_count() <= 100);
    // and every one is usable, its autocommit still off
    while !clients.is_empty() {
        let mut used = tokio::task::JoinSet::new();
        for (id, mut c) in clients.drain(..clients.len().min(100)) {
            used.spawn(async move {
                let ac: i64 = c.query_first("SELECT @@autocommit").await.unwrap().unwrap();
                assert_eq!(ac, 0, "autocommit stays off for the client");
                c.query_drop(format!("UPDATE t SET n = 1 WHERE id = {id}"))
                    .await
                    .unwrap();
                c.query_drop("COMMIT").await.unwrap();
                c
            });
        }
        // kept open until the end: all connected at once
        idle.extend(used.join_all().await);
    }
    let done = column(0, "SELECT COUNT(*) FROM iso_idle_ac.t WHERE n = 1").await;
    assert_eq!(done, vec![Some(CLIENTS.to_string())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn savepoints_with_autocommit_off_stay_on_their_connection() {
    let db = database("iso_savepoint").await;
    topology()
        .sql(0, "CREATE TABLE iso_savepoint.t (id INT PRIMARY KEY)")
        .await
        .unwrap();
    caught_up().await;
    let p = proxy(config()).await;
    let mut c = client(&p, Some(&db)).await;
    // as Django's TestCase does: autocommit off, then savepoints around each test
    c.query_drop("SET autocommit = 0").await.unwrap();
    for round in 0..5 {
        // a SAVEPOINT with autocommit off opens no transaction, yet the connection keeps it
        c.query_drop("SAVEPOINT s1").await.unwrap();
        c.query_drop(format!("INSERT INTO t VALUES ({round})"))
            .await
            .unwrap();
        c.query_drop("ROLLBACK TO SAVEPOINT s1").await.unwrap();
        c.query_drop("RELEASE SAVEPOINT s1").await.unwrap();
        c.query_drop("COMMIT").await.unwrap();
    }
    c.query_drop("INSERT INTO t VALUES (100)").await.unwrap();
    c.query_drop("ROLLBACK").await.unwrap();
    let n = column(0, "SELECT COUNT(*) FROM iso_savepoint.t").await;
    assert_eq!(
        n,
        vec![Some("0".to_string())],
        "every insert was rolled back"
    );
}

/// A new session after `SET GLOBAL` (through Sluice) starts with the new default, as a new
/// direct connection would: pooled connections opened before are retired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_global_default_changed_through_sluice_reaches_the_next_session() {
    let t = topology();
    for sql in [
        "CREATE USER IF NOT EXISTS 'iso_admin'@'127.0.0.1' IDENTIFIED BY 'iso_pw'",
        "GRANT ALL PRIVILEGES ON *.* TO 'iso_admin'@'127.0.0.1' WITH GRANT OPTION",
    ] {
        t.sql(0, sql).await.unwrap();
    }
    caught_up().await;
    let p = proxy(config_for("iso_admin", "iso_pw")).await;
    let o = |p: &sluice::app::Proxy| opts(p, None).user(Some("iso_admin")).pass(Some("iso_pw"));
    let read = "/* sluice:primary */ SELECT @@session.div_precision_increment";
    // two primary connections with the old default go back to the pool
    let (mut w1, mut w2) = (
        mysql_async::Conn::new(o(&p)).await.unwrap(),
        mysql_async::Conn::new(o(&p)).await.unwrap(),
    );
    w1.query_drop("BEGIN").await.unwrap();
    w2.query_drop("BEGIN").await.unwrap();
    let before: u32 = w1.query_first(read).await.unwrap().unwrap();
    w2.query_drop(read).await.unwrap();
    w1.disconnect().await.unwrap();
    w2.disconnect().await.unwrap();
    let mut a = mysql_async::Conn::new(o(&p)).await.unwrap();
    a.query_drop("SET GLOBAL div_precision_increment = 7")
        .await
        .unwrap();
    let mut b = mysql_async::Conn::new(o(&p)).await.unwrap();
    let seen: u32 = b.query_first(read).await.unwrap().unwrap();
    a.query_drop(format!("SET GLOBAL div_precision_increment = {before}"))
        .await
        .unwrap();
    assert_eq!(
        seen, 7,
        "the new session got a pooled connection with the old default"
    );
}

/// Dropping the current database unsets it, as on the server, whether `USE` and `DROP` are
/// text statements or prepared ones; the connection it ran on goes back to the pool without
/// a database Sluice would wrongly believe selected (mtr --ps-protocol: "No database
/// selected" for the next client that got it, after a prepared `USE` Sluice had not seen).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_current_database_unsets_it() {
    let p = proxy(config()).await;
    for prepared in [false, true] {
        let first = database(&format!("iso_dropdb_first_{prepared}")).await;
        let db = database(&format!("iso_dropdb_{prepared}")).await;
        let mut c = client(&p, Some(&first)).await;
        c.query_drop("SET @pin = 1").await.unwrap(); // the session keeps its connection
        for sql in [format!("USE {db}"), format!("DROP DATABASE {db}")] {
            if prepared {
                c.exec_drop(sql, ()).await.unwrap();
            } else {
                c.query_drop(sql).await.unwrap();
            }
        }
        let current: Option<String> = c.query_first("SELECT DATABASE()").await.unwrap().unwrap();
        assert_eq!(current, None, "prepared: {prepared}");
        c.disconnect().await.unwrap();
        // a client that asks for the first database gets it on whatever pooled connection
        for _ in 0..4 {
            let mut n = client(&p, Some(&first)).await;
            n.exec_drop("CREATE TABLE IF NOT EXISTS t (a INT)", ())
                .await
                .unwrap();
            let here: Option<String> = n.query_first("SELECT DATABASE()").await.unwrap().unwrap();
            assert_eq!(here.as_deref(), Some(first.as_str()));
        }
    }
}
