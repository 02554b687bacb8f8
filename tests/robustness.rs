//! Protocol edge cases and failure handling through Sluice on a real topology.
#![allow(clippy::disallowed_methods)] // clients of the proxy: tokio timers are theirs

mod common;
use common::*;
use mysql_async::prelude::*;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blob_of_20_mib_round_trips() {
    let db = database("rob_blob").await;
    let p = proxy(config()).await;
    let mut c = client(&p, Some(&db)).await;
    c.query_drop("CREATE TABLE b (id INT PRIMARY KEY, data LONGBLOB)")
        .await
        .unwrap();
    let blob: Vec<u8> = (0..20 * 1024 * 1024u32)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    // binary protocol (prepared) and text protocol (escaped literal) inserts, both > 16 MiB
    c.exec_drop("INSERT INTO b VALUES (1, ?)", (blob.clone(),))
        .await
        .unwrap();
    let hex: String = blob.iter().map(|b| format!("{b:02x}")).collect();
    c.query_drop(format!("INSERT INTO b VALUES (2, x'{hex}')"))
        .await
        .unwrap();
    caught_up().await;
    for id in [1, 2] {
        let back: Vec<u8> = c
            .query_first(format!("SELECT data FROM b WHERE id = {id}"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(back.len(), blob.len());
        assert!(back == blob, "blob {id} differs");
        let back: Vec<u8> = c
            .exec_first("SELECT data FROM b WHERE id = ?", (id,))
            .await
            .unwrap()
            .unwrap();
        assert!(back == blob, "blob {id} differs (binary protocol)");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_gets_1045_and_reaches_no_backend() {
    let p = proxy(config()).await;
    let bad = opts(&p, None).pass(Some("not-the-password"));
    let err = mysql_async::Conn::new(bad).await.unwrap_err();
    match err {
        mysql_async::Error::Server(e) => {
            assert_eq!(e.code, 1045);
            assert_eq!(e.state, "28000");
        }
        other => panic!("expected ERR 1045, got {other:?}"),
    }
    let unknown = opts(&p, None).user(Some("nobody"));
    assert!(mysql_async::Conn::new(unknown).await.is_err());
    let opened = backend_connections_opened(&p);
    assert_eq!(
        opened, 0,
        "a rejected login must not open backend connections"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_database_at_login_is_an_error() {
    let p = proxy(config()).await;
    let err = mysql_async::Conn::new(opts(&p, Some("no_such_db")))
        .await
        .unwrap_err();
    assert!(
        matches!(err, mysql_async::Error::Server(ref e) if e.code == 1049),
        "{err:?}"
    );
}

/// Kills every backend connection of the `victim` user on server `i`.
async fn kill_app_connections(i: usize) -> usize {
    kill_connections_of(i, "victim").await
}

async fn kill_connections_of(i: usize, user: &str) -> usize {
    let t = topology();
    let ids = t
        .sql(
            i,
            &format!("SELECT id FROM information_schema.processlist WHERE user = '{user}'"),
        )
        .await
        .unwrap();
    for row in &ids.rows {
        let _ = t
            .sql(i, &format!("KILL {}", row[0].as_deref().unwrap()))
            .await;
    }
    // the server has ended them (a killed thread takes a moment to exit)
    for _ in 0..250 {
        let left = t
            .sql(
                i,
                &format!("SELECT COUNT(*) AS n FROM information_schema.processlist WHERE user = '{user}' AND command = 'Killed'"),
            )
            .await
            .unwrap();
        if left.get("n") == Some("0") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ids.rows.len()
}

/// A pooled primary connection the server closed a moment ago (sooner than the pool's stale
/// check) is noticed before the next write is sent on it: the write runs on a new connection
/// instead of failing with "Lost connection" (a write that may have run is never rerun).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_after_the_server_closed_its_pooled_connection_succeeds() {
    user("closer", "closerpw").await;
    let db = database("rob_closed").await;
    let p = proxy(config_for("closer", "closerpw")).await;
    let o = opts(&p, Some(&db))
        .user(Some("closer"))
        .pass(Some("closerpw"));
    let mut c = mysql_async::Conn::new(o).await.unwrap();
    c.query_drop("CREATE TABLE t (id INT PRIMARY KEY)")
        .await
        .unwrap();
    for id in 0..5 {
        c.query_drop(format!("INSERT INTO t VALUES ({id})"))
            .await
            .unwrap();
        assert!(kill_connections_of(0, "closer").await > 0);
        tokio::time::sleep(Duration::from_millis(20)).await;
        c.query_drop(format!("INSERT INTO t VALUES ({})", id + 100))
            .await
            .unwrap_or_else(|e| panic!("write after the server closed the connection: {e}"));
    }
    let n: u32 = c
        .query_first("SELECT COUNT(*) FROM t FOR UPDATE")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_backend_connections_do_not_kill_the_client_session() {
    user("victim", "victimpw").await;
    let p = proxy(config_for("victim", "victimpw")).await;
    let victim_opts = || opts(&p, None).user(Some("victim")).pass(Some("victimpw"));
    let mut c = mysql_async::Conn::new(victim_opts()).await.unwrap();
    for _ in 0..20 {
        server_id(&mut c, "SELECT @@server_id").await;
    }
    // idle pooled connections killed on both replicas and the primary
    let killed = kill_app_connections(1).await
        + kill_app_connections(2).await
        + kill_app_connections(0).await;
    assert!(killed > 0);
    for _ in 0..20 {
        assert_ne!(server_id(&mut c, "SELECT @@server_id").await, 0);
    }
    c.query_drop("DO 1").await.unwrap();

    // a backend connection killed in the middle of a statement: an error, then business as usual
    let p2 = p.shared.clone();
    let mut victim = mysql_async::Conn::new(victim_opts()).await.unwrap();
    let slow = tokio::spawn(async move {
        let r: Result<Option<u32>, _> = victim.query_first("SELECT SLEEP(5) + @@server_id").await;
        (r.map_err(|e| e.to_string()), victim)
    });
    let started = Instant::now();
    while running("SELECT SLEEP(5) + @@server_id").await == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the statement never ran"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for i in 1..=2 {
        let t = topology();
        let rows = t.sql(i, "SELECT id FROM information_schema.processlist WHERE user = 'victim' AND info LIKE 'SELECT SLEEP%'").await.unwrap();
        for r in rows.rows {
            t.sql(i, &format!("KILL {}", r[0].as_deref().unwrap()))
                .await
                .unwrap();
        }
    }
    let started = Instant::now();
    let (res, mut victim) = slow.await.unwrap();
    // killed before any byte reached the client: either retried on the other replica
    // (correct result) or reported as an error; never a hang or a wrong answer
    match res {
        Ok(v) => assert!(matches!(v, Some(2) | Some(3)), "{v:?}"),
        Err(e) => assert!(e.contains("1927") && e.contains("lost connection"), "{e}"),
    }
    assert!(started.elapsed() < Duration::from_secs(12), "no hang");
    assert_ne!(
        server_id(&mut victim, "SELECT @@server_id").await,
        0,
        "the session is still usable"
    );
    drop(p2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_pool_gives_a_clear_error_not_a_hang() {
    let mut cfg = config();
    cfg.pool.max_connections_per_backend = 1;
    cfg.pool.checkout_timeout = sluice::config::Dur(Duration::from_millis(300));
    let p = proxy(cfg).await;
    let mut a = client(&p, None).await;
    a.query_drop("BEGIN").await.unwrap(); // holds the only primary connection
    let mut b = client(&p, None).await;
    let t = Instant::now();
    let err = b.query_drop("DO GET_LOCK('x', 0)").await.unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(2));
    assert!(
        matches!(err, mysql_async::Error::Server(ref e) if e.code == 1040 && e.message.contains("pool")),
        "{err:?}"
    );
    a.query_drop("COMMIT").await.unwrap();
    b.query_drop("DO 1").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_query_by_sluice_connection_id() {
    let p = proxy(config()).await;
    let mut victim = client(&p, None).await;
    let id = victim.id();
    let slow = tokio::spawn(async move {
        let t = Instant::now();
        let r: Result<Option<u32>, _> = victim.query_first("SELECT SLEEP(10) /* kq_7 */").await;
        (r, t.elapsed())
    });
    let started = Instant::now();
    while running("kq_7").await == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the statement never ran"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut killer = client(&p, None).await;
    killer.query_drop(format!("KILL QUERY {id}")).await.unwrap();
    let (r, took) = slow.await.unwrap();
    // MySQL returns 1 from an interrupted SLEEP; MariaDB reports ERR 1317
    match r {
        Ok(v) => assert_eq!(v, Some(1)),
        Err(mysql_async::Error::Server(e)) => assert_eq!(e.code, 1317),
        Err(e) => panic!("{e}"),
    }
    assert!(took < Duration::from_secs(5), "{took:?}");
    let err = killer.query_drop("KILL 999999").await.unwrap_err();
    assert!(
        matches!(err, mysql_async::Error::Server(ref e) if e.code == 1094),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_statement_is_refused_and_the_session_survives() {
    let mut cfg = config();
    cfg.listen.max_packet_size = 64 * 1024;
    let p = proxy(cfg).await;
    let mut c = client(&p, None).await;
    let big = format!("SELECT '{}'", "x".repeat(100 * 1024));
    let err = c.query_drop(big).await.unwrap_err();
    assert!(
        matches!(err, mysql_async::Error::Server(ref e) if e.code == 1153),
        "{err:?}"
    );
    c.query_drop("DO 1").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_cli_works_through_sluice() {
    let db = database("rob_cli").await;
    let p = proxy(config()).await;
    let port = p.addr.port().to_string();
    let cli = |sql: &'static str| {
        let (port, db) = (port.clone(), db.clone());
        async move {
            tokio::process::Command::new("mariadb")
                .args([
                    "-h",
                    "127.0.0.1",
                    "-P",
                    &port,
                    "-u",
                    "app",
                    "-papppass",
                    "--batch",
                    &db,
                    "-e",
                    sql,
                ])
                .output()
                .await
                .expect("run the mariadb client")
        }
    };
    let out = cli("CREATE TABLE c (a INT); INSERT INTO c VALUES (1),(2)").await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    caught_up().await;
    let out = cli(
        "BEGIN; SELECT @@server_id AS in_tx; COMMIT; SELECT COUNT(*) AS n FROM c; SHOW WARNINGS;",
    )
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("in_tx\n1\n"), "{stdout}");
    assert!(stdout.contains("n\n2\n"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_lets_running_statements_finish() {
    let p = proxy(config()).await;
    let mut c = client(&p, None).await;
    let q = tokio::spawn(async move {
        c.query_first::<u32, _>("SELECT SLEEP(1) + 1 /* gs_3 */")
            .await
    });
    let started = Instant::now();
    while running("gs_3").await == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the statement never ran"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    p.shutdown().await;
    assert_eq!(q.await.unwrap().unwrap(), Some(1));
}

/// `max_connections_per_backend` counts idle connections too: a second user at the limit
/// takes the place of the first user's idle connection (closed) instead of opening one more,
/// and a checkout waiting at the limit proceeds as soon as a connection is returned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit_counts_idle_connections() {
    user("pool_other", "otherpw").await;
    let mut cfg = config();
    cfg.pool.max_connections_per_backend = 1;
    cfg.pool.checkout_timeout = sluice::config::Dur(Duration::from_secs(3));
    let mut other = cfg.users[0].clone();
    other.name = "pool_other".into();
    other.password = "otherpw".into();
    cfg.users.push(other);
    let p = proxy(cfg).await;
    let pool = &p.shared.topology.backend(0).pool;
    let opened = || pool.opened.load(std::sync::atomic::Ordering::Relaxed);

    let mut a = client(&p, None).await;
    a.query_drop("DO 1").await.unwrap(); // a write: the primary, then idle
    assert_eq!((opened(), pool.idle_count()), (1, 1));
    let other_opts = opts(&p, None)
        .user(Some("pool_other"))
        .pass(Some("otherpw"));
    let mut b = mysql_async::Conn::new(other_opts).await.unwrap();
    let t = Instant::now();
    b.query_drop("DO 1").await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    assert_eq!(
        (opened(), pool.idle_count()),
        (2, 1),
        "the first user's idle connection made room: never two open at once"
    );

    // a holds the only connection; b waits and gets in as soon as a is done
    a.query_drop("BEGIN").await.unwrap();
    let waiter = tokio::spawn(async move {
        let t = Instant::now();
        b.query_drop("DO 1").await.map(|_| t.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.query_drop("COMMIT").await.unwrap();
    let waited = waiter
        .await
        .unwrap()
        .expect("the waiting checkout succeeds");
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_millis(1500),
        "{waited:?}"
    );
}

/// A client that reads a large result slowly: Sluice's writes to it fill the socket and must
/// wait for room (the direct-send fast path falls back to the event loop), losing nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_reader_gets_all_of_a_large_result() {
    let p = proxy(config()).await;
    let (mut r, mut w) = raw_login(p.addr.port(), true).await;
    let mut q = vec![0x03];
    q.extend_from_slice(b"/* sluice:primary */ SELECT REPEAT('x', 60000) FROM mysql.seq_1_to_300");
    w.write_packet(&mut 0, &q).await.unwrap();
    w.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await; // Sluice meets a full socket
    let (mut rows, mut p) = (0, Vec::new());
    loop {
        let read = r.read_logical(&mut p, 1 << 24);
        tokio::time::timeout(Duration::from_secs(10), read)
            .await
            .expect("no hang")
            .unwrap();
        match p[0] {
            0xFE if p.len() < 60000 => break, // the OK terminator
            0xFF => panic!("error: {}", String::from_utf8_lossy(&p)),
            _ if p.len() > 60000 => {
                assert!(p[p.len() - 60000..].iter().all(|&b| b == b'x'));
                rows += 1;
                if rows % 50 == 0 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            _ => {} // column count and definition
        }
    }
    assert_eq!(rows, 300);
}

/// A connection returned clean waits for its session in a cell, holding its permit
/// (`pool::hot`); another client that needs the backend's only connection must get it at
/// once, not wait for a permit the parked connection keeps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_connection_never_keeps_another_client_waiting() {
    let mut cfg = config();
    cfg.pool.max_connections_per_backend = 1;
    cfg.pool.checkout_timeout = sluice::config::Dur(Duration::from_millis(300));
    let p = proxy(cfg).await;
    let mut a = client(&p, None).await;
    let mut b = client(&p, None).await;
    for round in 0..5 {
        for c in [&mut a, &mut b] {
            let t = Instant::now();
            c.query_drop("DO 1")
                .await
                .unwrap_or_else(|e| panic!("round {round}: {e}"));
            assert!(
                t.elapsed() < Duration::from_millis(250),
                "waited {:?}",
                t.elapsed()
            );
        }
    }
    let primary = &p.shared.topology.backend(0).pool;
    assert_eq!(primary.opened.load(std::sync::atomic::Ordering::Relaxed), 1);
}

/// A session's parked connection (`pool::hot`) goes back to the shared idle list when the
/// session ends: the next client reuses it instead of opening another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_departed_clients_connection_serves_the_next_client() {
    let p = proxy(config()).await;
    let primary = &p.shared.topology.backend(0).pool;
    let before = primary.opened.load(std::sync::atomic::Ordering::Relaxed);
    for _ in 0..3 {
        let mut c = client(&p, None).await;
        c.query_drop("DO 1").await.unwrap();
        c.disconnect().await.unwrap();
        // the session has ended (its connection back in the pool)
        let ended = Instant::now();
        while p.shared.clients.load(std::sync::atomic::Ordering::Relaxed) > 0 {
            assert!(ended.elapsed() < Duration::from_secs(5), "the session ends");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let opened = primary.opened.load(std::sync::atomic::Ordering::Relaxed) - before;
    assert_eq!(
        opened, 1,
        "one primary connection for three clients in turn"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_backend_connections_close_after_the_pool_idle_timeout() {
    let mut cfg = config();
    cfg.pool.idle_timeout = sluice::config::Dur(Duration::from_secs(1));
    let p = proxy(cfg).await;
    let mut c = client(&p, None).await;
    c.query_drop("DO 1").await.unwrap(); // the primary
                                         // the primary connection's thread id (@@pseudo_thread_id is the server's, not Sluice's)
    let thread: u64 = c
        .query_first("/* sluice:primary */ SELECT @@pseudo_thread_id")
        .await
        .unwrap()
        .unwrap();
    server_id(&mut c, "SELECT @@server_id").await; // a replica
    c.disconnect().await.unwrap();
    let open = || -> usize {
        p.shared
            .topology
            .backends()
            .iter()
            .map(|b| b.pool.open_count())
            .sum()
    };
    assert!(open() > 0);
    let started = Instant::now();
    while open() > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{} connections still open",
            open()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "idle connections closed {:?} after the client left",
        started.elapsed()
    );
    // closed politely (COM_QUIT): the server neither logs it as aborted nor counts it in
    // Aborted_clients
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = std::fs::read_to_string(topology().servers[0].error_log()).unwrap();
    let aborted = format!("Aborted connection {thread} ");
    assert!(
        !log.lines().any(|l| l.contains(&aborted)),
        "the primary logged the pool's idle close as aborted: {}",
        log.lines()
            .find(|l| l.contains(&aborted))
            .unwrap_or_default()
    );
}

/// Commands a client sends before the previous reply came (while the statement runs, and
/// at once after it) are each answered in order: the wait for a next command never relies
/// on a disconnect watch whose wake a pipelined command already took (it would stall until
/// the session's idle tick). Plain TCP, the statement path's watch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_commands_are_answered_in_order() {
    let p = proxy(config()).await;
    let (mut r, mut w) = raw_login(p.addr.port(), true).await;
    let query = |sql: &str| {
        let mut q = vec![0x03];
        q.extend_from_slice(sql.as_bytes());
        q
    };
    for round in 0..5u32 {
        let started = Instant::now();
        // the second command arrives while the first runs on the backend
        w.write_packet(&mut 0, &query("SELECT SLEEP(0.1), 1"))
            .await
            .unwrap();
        w.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
        w.write_packet(&mut 0, &query(&format!("SELECT {round} + 100")))
            .await
            .unwrap();
        w.flush().await.unwrap();
        let first = read_until_terminator(&mut r).await;
        let second = read_until_terminator(&mut r).await;
        assert!(first.len() >= 3 && second.len() >= 3, "two result sets");
        let value = second[2].clone(); // column count, definition, row, terminator
        assert_eq!(&value[1..], format!("{}", round + 100).as_bytes());
        // then one alone, and two sent together
        assert_eq!(raw_query(&mut r, &mut w, "SELECT 7").await.len(), 4);
        let mut both = Vec::new();
        for sql in ["SELECT 1", "SELECT 2"] {
            let q = query(sql);
            both.extend_from_slice(&(q.len() as u32).to_le_bytes()[..3]);
            both.push(0);
            both.extend_from_slice(&q);
        }
        w.write_raw(&both).await.unwrap();
        w.flush().await.unwrap();
        for want in [b"1", b"2"] {
            let got = read_until_terminator(&mut r).await;
            assert_eq!(&got[2][1..], want);
        }
        // a wait that missed its wake-up would stall until the session's idle tick (1 s)
        assert!(
            started.elapsed() < Duration::from_millis(700),
            "round {round} took {:?}",
            started.elapsed()
        );
    }
}
