//! Routing through Sluice against a real primary + 2 replicas, proven with @@server_id.
#![allow(clippy::disallowed_methods)] // clients of the proxy: tokio timers are theirs

mod common;
use common::*;
use mysql_async::prelude::*;

const PRIMARY: u32 = 1;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_go_to_replicas_and_spread_by_weight() {
    let mut cfg = config();
    cfg.backends[1].weight = 1;
    cfg.backends[2].weight = 3;
    let p = proxy(cfg).await;
    let mut c = client(&p, None).await;
    let mut counts = [0u32; 4];
    for _ in 0..400 {
        counts[server_id(&mut c, "SELECT @@server_id").await as usize] += 1;
    }
    assert_eq!(
        counts[PRIMARY as usize], 0,
        "no plain read may reach the primary: {counts:?}"
    );
    let ratio = counts[3] as f64 / counts[2] as f64;
    assert!(
        (2.0..4.5).contains(&ratio),
        "weights 1:3 should give ~3x reads to replica 3: {counts:?}"
    );
    for sql in [
        "SHOW VARIABLES LIKE 'server_id'",
        "DESCRIBE mysql.user",
        "EXPLAIN SELECT 1",
        "HELP 'select'",
    ] {
        c.query_drop(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_transactions_locking_reads_and_session_functions_go_to_primary() {
    let db = database("route_primary").await;
    let p = proxy(config()).await;
    let mut c = client(&p, Some(&db)).await;
    c.query_drop("CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, sid INT)")
        .await
        .unwrap();
    c.query_drop("INSERT INTO t (sid) VALUES (@@server_id)")
        .await
        .unwrap();
    caught_up().await;
    let sid: u32 = c.query_first("SELECT sid FROM t").await.unwrap().unwrap();
    assert_eq!(sid, PRIMARY, "the INSERT ran on the primary");

    let primary_cases = [
        "SELECT @@server_id FROM t FOR UPDATE",
        "SELECT @@server_id FROM t LOCK IN SHARE MODE",
        "SELECT @@server_id + 0 * LAST_INSERT_ID()",
        "SELECT @@server_id + 0 * FOUND_ROWS()",
        "SELECT @@server_id + 0 * ROW_COUNT()",
        "SELECT @@server_id + 0 * IS_FREE_LOCK('x')",
        "/* sluice:primary */ SELECT @@server_id",
    ];
    for sql in primary_cases {
        assert_eq!(server_id(&mut c, sql).await, PRIMARY, "{sql}");
    }
    c.query_drop("BEGIN").await.unwrap();
    for _ in 0..5 {
        assert_eq!(
            server_id(&mut c, "SELECT @@server_id").await,
            PRIMARY,
            "inside BEGIN"
        );
    }
    c.query_drop("COMMIT").await.unwrap();
    assert_ne!(
        server_id(&mut c, "SELECT @@server_id").await,
        PRIMARY,
        "after COMMIT reads go back to replicas"
    );

    c.query_drop("SET autocommit = 0").await.unwrap();
    c.query_drop("INSERT INTO t (sid) VALUES (@@server_id)")
        .await
        .unwrap();
    assert_eq!(
        server_id(&mut c, "SELECT @@server_id").await,
        PRIMARY,
        "autocommit=0 is a transaction"
    );
    let n: u32 = c
        .query_first("SELECT COUNT(*) FROM t")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        n, 2,
        "the uncommitted row is visible to its own transaction"
    );
    c.query_drop("COMMIT").await.unwrap();
    c.query_drop("SET autocommit = 1").await.unwrap();
    assert_ne!(server_id(&mut c, "SELECT @@server_id").await, PRIMARY);

    c.query_drop("START TRANSACTION").await.unwrap();
    assert_eq!(server_id(&mut c, "SELECT @@server_id").await, PRIMARY);
    c.query_drop("ROLLBACK").await.unwrap();

    // LAST_INSERT_ID is the session's own even though connections are pooled
    c.query_drop("INSERT INTO t (sid) VALUES (0)")
        .await
        .unwrap();
    let id: u64 = c
        .query_first("SELECT LAST_INSERT_ID()")
        .await
        .unwrap()
        .unwrap();
    let mut other = client(&p, Some(&db)).await;
    other
        .query_drop("INSERT INTO t (sid) VALUES (0)")
        .await
        .unwrap();
    let again: u64 = c
        .query_first("SELECT LAST_INSERT_ID()")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        id, again,
        "another session's insert must not change this session's LAST_INSERT_ID"
    );

    // GET_LOCK pins: the lock stays held by this session
    assert_eq!(
        server_id(&mut c, "SELECT @@server_id + 0 * GET_LOCK('sluice_t', 1)").await,
        PRIMARY
    );
    let used: Option<u64> = other
        .query_first("SELECT IS_USED_LOCK('sluice_t') IS NOT NULL")
        .await
        .unwrap();
    assert_eq!(used, Some(1));
    c.query_drop("DO RELEASE_LOCK('sluice_t')").await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_state_follows_the_client_across_backends() {
    let db = database("route_state").await;
    // this test checks state across backends; read-your-writes would narrow the choice
    let mut cfg = config();
    cfg.routing.read_your_writes = sluice::config::ReadYourWrites::Off;
    let p = proxy(cfg).await;
    let mut c = client(&p, None).await;
    c.query_drop(format!("USE {db}")).await.unwrap();
    c.query_drop("CREATE TABLE k (id INT PRIMARY KEY, v VARCHAR(20))")
        .await
        .unwrap();
    c.query_drop("INSERT INTO k VALUES (1, 'one'), (2, 'two')")
        .await
        .unwrap();
    caught_up().await;
    c.query_drop("SET NAMES latin1").await.unwrap();
    c.query_drop("SET SESSION sql_mode = 'ANSI_QUOTES'")
        .await
        .unwrap();
    c.query_drop("SET @greeting = 'hello'").await.unwrap();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..30 {
        let (sid, dbname, cs, mode): (u32, String, String, String) = c
            .query_first("SELECT @@server_id, DATABASE(), @@character_set_client, @@sql_mode")
            .await
            .unwrap()
            .unwrap();
        seen.insert(sid);
        assert_eq!(dbname, db);
        assert_eq!(cs, "latin1");
        assert_eq!(mode, "ANSI_QUOTES");
        let v: String = c.query_first("SELECT @greeting").await.unwrap().unwrap();
        assert_eq!(v, "hello");
        let n: u32 = c
            .query_first("SELECT COUNT(*) FROM k")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 2);
    }
    assert!(
        seen.len() >= 2 && !seen.contains(&PRIMARY),
        "reads spread over replicas: {seen:?}"
    );

    // prepared statements work wherever they execute
    let stmt = c
        .prep("SELECT v, @@server_id FROM k WHERE id = ?")
        .await
        .unwrap();
    let mut where_ = std::collections::HashSet::new();
    for i in 0..20u32 {
        let (v, sid): (String, u32) = c.exec_first(&stmt, (1 + i % 2,)).await.unwrap().unwrap();
        assert_eq!(v, if i % 2 == 0 { "one" } else { "two" });
        where_.insert(sid);
    }
    assert!(
        !where_.contains(&PRIMARY),
        "prepared reads go to replicas: {where_:?}"
    );
    c.query_drop("BEGIN").await.unwrap();
    let (_, sid): (String, u32) = c.exec_first(&stmt, (1,)).await.unwrap().unwrap();
    assert_eq!(
        sid, PRIMARY,
        "the same prepared statement inside a transaction runs on the primary"
    );
    c.query_drop("COMMIT").await.unwrap();
    let ins = c.prep("INSERT INTO k VALUES (?, ?)").await.unwrap();
    c.exec_drop(&ins, (3, "three")).await.unwrap();
    c.close(stmt).await.unwrap();

    // COM_RESET_CONNECTION clears user variables and session variables
    c.reset().await.unwrap();
    let v: Option<String> = c.query_first("SELECT @greeting").await.unwrap().unwrap();
    assert_eq!(v, None);
    let mode: String = c.query_first("SELECT @@sql_mode").await.unwrap().unwrap();
    assert_ne!(mode, "ANSI_QUOTES");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporary_tables_pin_the_session() {
    let db = database("route_temp").await;
    let p = proxy(config()).await;
    let mut c = client(&p, Some(&db)).await;
    c.query_drop("CREATE TEMPORARY TABLE tmp (a INT)")
        .await
        .unwrap();
    c.query_drop("INSERT INTO tmp VALUES (1), (2)")
        .await
        .unwrap();
    for _ in 0..5 {
        let n: u32 = c
            .query_first("SELECT COUNT(*) FROM tmp")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(n, 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_procedure_multi_results_and_multi_statements() {
    let db = database("route_proc").await;
    let p = proxy(config()).await;
    let mut c = client(&p, Some(&db)).await;
    c.query_drop("CREATE PROCEDURE two() BEGIN SELECT 1 AS a; SELECT 2 AS b, 3 AS c; END")
        .await
        .unwrap();
    let mut r = c.query_iter("CALL two()").await.unwrap();
    let first: Vec<u32> = r.collect().await.unwrap();
    let second: Vec<(u32, u32)> = r.collect().await.unwrap();
    drop(r);
    assert_eq!(first, vec![1]);
    assert_eq!(second, vec![(2, 3)]);
    let mut r = c
        .query_iter("SELECT @@server_id; SELECT @@server_id")
        .await
        .unwrap();
    let a: Vec<u32> = r.collect().await.unwrap();
    let b: Vec<u32> = r.collect().await.unwrap();
    drop(r);
    assert_ne!(
        a[0], PRIMARY,
        "a multi-statement of reads may go to a replica"
    );
    assert_eq!(a, b);
    c.query_drop("CREATE TABLE m (a INT)").await.unwrap();
    let mut r = c
        .query_iter("INSERT INTO m VALUES (@@server_id); SELECT @@server_id")
        .await
        .unwrap();
    let _: Vec<u32> = r.collect().await.unwrap();
    let s: Vec<u32> = r.collect().await.unwrap();
    drop(r);
    assert_eq!(
        s,
        vec![PRIMARY],
        "a multi-statement with a write goes to the primary"
    );
}

/// Minimal check of the Prometheus text exposition format.
fn assert_exposition(text: &str) {
    for line in text.lines().filter(|l| !l.is_empty()) {
        if line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value: {line}"));
        assert!(
            value.parse::<f64>().is_ok() || ["NaN", "+Inf", "-Inf"].contains(&value),
            "bad value: {line}"
        );
        let name_end = series.find('{').unwrap_or(series.len());
        let name = &series[..name_end];
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name: {line}"
        );
        if name_end < series.len() {
            assert!(series.ends_with('}'), "unterminated labels: {line}");
        }
    }
}

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("{series} not in metrics"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_traffic_with_labels() {
    let db = database("route_metrics").await;
    let p = proxy(config()).await;
    let mut c = client(&p, Some(&db)).await;
    c.query_drop("CREATE TABLE m (a INT)").await.unwrap();
    for _ in 0..10 {
        c.query_drop("SELECT 1").await.unwrap();
    }
    c.query_drop("BEGIN").await.unwrap();
    c.query_drop("INSERT INTO m VALUES (1)").await.unwrap();
    c.query_drop("COMMIT").await.unwrap();
    c.query_drop("SELECT * FROM m FOR UPDATE").await.unwrap();
    assert!(c.query_drop("SELECT * FROM no_such_table").await.is_err());
    let (code, text) = admin_get(&p, "/metrics").await;
    assert_eq!(code, 200);
    assert_exposition(&text);
    assert_eq!(
        metric(
            &text,
            r#"sluice_queries_total{backend="db0",route="write"}"#
        ),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            r#"sluice_queries_total{backend="db0",route="transaction"}"#
        ),
        3.0
    );
    assert_eq!(
        metric(
            &text,
            r#"sluice_queries_total{backend="db0",route="locking_read"}"#
        ),
        1.0
    );
    let reads = metric(&text, r#"sluice_queries_total{backend="db1",route="read"}"#)
        + metric(&text, r#"sluice_queries_total{backend="db2",route="read"}"#);
    // mysql_async's connect-time SELECT @@max_allowed_packet..., 10 x SELECT 1, the failing read
    assert_eq!(reads, 12.0);
    let errors = metric(&text, r#"sluice_query_errors_total{backend="db1"}"#)
        + metric(&text, r#"sluice_query_errors_total{backend="db2"}"#);
    assert_eq!(errors, 1.0);
    assert_eq!(metric(&text, "sluice_client_connections"), 1.0);
    assert_eq!(
        metric(
            &text,
            r#"sluice_backend_role{backend="db0",role="primary"}"#
        ),
        1.0
    );
    assert_eq!(metric(&text, r#"sluice_backend_up{backend="db1"}"#), 1.0);
    assert!(
        metric(
            &text,
            r#"sluice_query_duration_seconds_count{role="replica"}"#
        ) >= 11.0
    );
    let (code, page) = admin_get(&p, "/").await;
    assert_eq!(code, 200);
    assert!(
        page.contains("<table>") && page.contains("db1") && page.contains("primary"),
        "{page}"
    );
    for name in [
        "sluice_pool_wait_seconds_count",
        "sluice_failovers_total",
        "sluice_split_brain",
        "sluice_config_last_reload_success_timestamp_seconds",
    ] {
        assert!(text.contains(name), "{name} missing");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_set_statements_do_not_accumulate() {
    let p = proxy(config()).await;
    let mut c = client(&p, None).await;
    for i in 0..200 {
        c.query_drop("SET NAMES utf8mb4").await.unwrap();
        c.query_drop(format!("SET SESSION sql_select_limit = {}", 1000 + i % 3))
            .await
            .unwrap();
    }
    // still routed to replicas with the latest values in effect
    let mut replicas = 0;
    for _ in 0..20 {
        let (sid, limit): (u32, u64) = c
            .query_first("SELECT @@server_id, @@sql_select_limit")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(limit, 1000 + 199 % 3);
        replicas += (sid != 1) as u32;
    }
    assert!(replicas > 0, "reads still go to replicas");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pin_metrics_say_why_sessions_keep_a_connection() {
    let db = database("pins").await;
    let p = proxy(config()).await;
    let mut a = client(&p, Some(&db)).await;
    let mut b = client(&p, None).await;
    a.query_drop("CREATE TEMPORARY TABLE pinned_tmp (x INT)")
        .await
        .unwrap();
    b.query_drop("SET @v = 1").await.unwrap();
    b.query_drop("SET @w = 2").await.unwrap(); // already pinned: counted once
    let (_, text) = admin_get(&p, "/metrics").await;
    assert_eq!(
        metric(
            &text,
            r#"sluice_session_pins_total{reason="temporary_table"}"#
        ),
        1.0
    );
    assert_eq!(
        metric(
            &text,
            r#"sluice_session_pins_total{reason="user_variable"}"#
        ),
        1.0
    );
    assert_eq!(metric(&text, "sluice_pinned_sessions"), 2.0);
    a.reset().await.unwrap(); // COM_RESET_CONNECTION unpins
    drop(b.disconnect().await);
    let t = std::time::Instant::now();
    loop {
        let (_, text) = admin_get(&p, "/metrics").await;
        if metric(&text, "sluice_pinned_sessions") == 0.0 {
            break;
        }
        assert!(
            t.elapsed() < std::time::Duration::from_secs(3),
            "pinned sessions back to 0"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_state_reads_go_where_the_state_lives() {
    let db = database("route_srv").await;
    topology()
        .sql(0, "CREATE TABLE route_srv.t (a INT)")
        .await
        .unwrap();
    caught_up().await;
    let p = proxy(config()).await;
    let mut c = client(&p, Some(&db)).await;
    for _ in 0..20 {
        // the primary's values, not the replica's that happens to run it
        assert_eq!(
            server_id(&mut c, "SELECT @@global.server_id").await,
            PRIMARY
        );
        let row: (String, u32) = c
            .query_first("SHOW GLOBAL VARIABLES LIKE 'server_id'")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.1, PRIMARY);
        // an unqualified variable answers for the server that runs the read
        assert_ne!(server_id(&mut c, "SELECT @@server_id").await, PRIMARY);
    }
    let primary_state = column(0, "SELECT @@global.gtid_binlog_state").await;
    let through: Option<String> = c
        .query_first("SELECT @@global.gtid_binlog_state")
        .await
        .unwrap();
    assert_eq!(Some(through), primary_state.into_iter().next());
    // EXPLAIN of a write: a read-only replica refuses it (ERR 1290)
    c.query_drop("EXPLAIN UPDATE t SET a = 1").await.unwrap();
    c.query_drop("EXPLAIN DELETE FROM t WHERE a = 2")
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diagnostics_answer_about_the_clients_own_previous_statement() {
    let db = database("route_diag").await;
    topology()
        .sql(
            0,
            "CREATE TABLE route_diag.t (a INT); INSERT INTO route_diag.t VALUES (1)",
        )
        .await
        .unwrap();
    caught_up().await;
    let p = proxy(config()).await;
    let mut c = client(&p, Some(&db)).await;
    for _ in 0..10 {
        // after an error, SHOW WARNINGS / SHOW ERRORS show it
        assert!(c.query_drop("SELECT * FROM no_such_table").await.is_err());
        let warnings: Vec<(String, u32, String)> = c.query("SHOW WARNINGS").await.unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert_eq!(warnings[0].1, 1146, "{warnings:?}");
        assert!(c.query_drop("SELECT * FROM no_such_table").await.is_err());
        let errors: Vec<(String, u32, String)> = c.query("SHOW ERRORS").await.unwrap();
        assert_eq!(errors.first().map(|e| e.1), Some(1146), "{errors:?}");
    }
    // the profile and the optimizer trace of the client's own statement
    c.query_drop("SET profiling = 1").await.unwrap();
    c.query_drop("SET optimizer_trace = 'enabled=on'")
        .await
        .unwrap();
    for n in 0..10 {
        let marker = format!("SELECT a, {n} AS diag_marker FROM t WHERE a = 1");
        c.query_drop(&marker).await.unwrap();
        let trace: Option<String> = c
            .query_first("SELECT query FROM information_schema.OPTIMIZER_TRACE")
            .await
            .unwrap();
        assert_eq!(trace.as_deref(), Some(marker.as_str()));
        c.query_drop(&marker).await.unwrap();
        let profiles: Vec<(u32, f64, String)> = c.query("SHOW PROFILES").await.unwrap();
        assert!(
            profiles.last().is_some_and(|p| p.2 == marker),
            "{profiles:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_diagnostics_of_a_write_stay_the_clients_under_read_your_writes() {
    use sluice::config::ReadYourWrites;
    let db = database("route_rowcount").await;
    topology()
        .sql(0, "CREATE TABLE route_rowcount.t (a INT, b TINYINT)")
        .await
        .unwrap();
    caught_up().await;
    for mode in [ReadYourWrites::Gtid, ReadYourWrites::Global] {
        let mut cfg = config();
        cfg.routing.read_your_writes = mode;
        let p = proxy(cfg).await;
        let mut c = client(&p, Some(&db)).await;
        c.query_drop("DELETE FROM t").await.unwrap();
        c.query_drop("INSERT INTO t VALUES (1, 1), (2, 2), (3, 3)")
            .await
            .unwrap();
        let n: i64 = c.query_first("SELECT ROW_COUNT()").await.unwrap().unwrap();
        assert_eq!(n, 3, "{mode:?}: ROW_COUNT() after an INSERT of 3 rows");
        c.query_drop("DELETE FROM t WHERE a > 1").await.unwrap();
        let n: i64 = c.query_first("SELECT ROW_COUNT()").await.unwrap().unwrap();
        assert_eq!(n, 2, "{mode:?}: ROW_COUNT() after a DELETE of 2 rows");
        // a write with a warning (1264: out of range, clipped by IGNORE)
        c.query_drop("INSERT IGNORE INTO t VALUES (4, 1000)")
            .await
            .unwrap();
        let w: Vec<(String, u32, String)> = c.query("SHOW WARNINGS").await.unwrap();
        assert_eq!(
            w.iter().map(|w| w.1).collect::<Vec<_>>(),
            [1264],
            "{mode:?}: {w:?}"
        );
        // and the next read still sees the writes, wherever it runs
        let rows: i64 = c
            .query_first("SELECT COUNT(*) FROM t")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(rows, 2, "{mode:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_flush_status_the_session_counts_its_own_statements() {
    // FLUSH STATUS needs RELOAD
    topology()
        .sql(0, "GRANT RELOAD ON *.* TO 'app'@'127.0.0.1'")
        .await
        .unwrap();
    caught_up().await;
    let p = proxy(config()).await;
    let mut c = client(&p, None).await;
    let mut other = client(&p, None).await;
    c.query_drop("FLUSH STATUS").await.unwrap();
    for _ in 0..10 {
        c.query_drop("SELECT 1").await.unwrap();
        other.query_drop("SELECT 1").await.unwrap();
    }
    let (_, n): (String, u64) = c
        .query_first("SHOW STATUS LIKE 'Com_select'")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 10, "the session's own SELECTs since FLUSH STATUS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reads_answer_for_the_primary() {
    // status variables mix the server's (Threads_connected: mtr's count_sessions, which
    // waits for it to come down) with the connection's: they are read on the primary, first
    // statement of a session or after a read a replica served
    let p = proxy(config()).await;
    let mut c = client(&p, None).await;
    let replicas_attached = |v: Option<(String, u32)>| v.map(|v| v.1);
    let v = c
        .query_first("SHOW STATUS LIKE 'Slaves_connected'")
        .await
        .unwrap();
    assert_eq!(replicas_attached(v), Some(2), "the first statement");
    assert_ne!(server_id(&mut c, "SELECT @@server_id").await, PRIMARY);
    let v = c
        .query_first("SHOW SESSION STATUS LIKE 'Slaves_connected'")
        .await
        .unwrap();
    assert_eq!(replicas_attached(v), Some(2), "after a replica's read");
    assert_ne!(server_id(&mut c, "SELECT @@server_id").await, PRIMARY);
    let v: Option<u32> = c
        .query_first(
            "SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS \
             WHERE VARIABLE_NAME = 'SLAVES_CONNECTED'",
        )
        .await
        .unwrap();
    assert_eq!(v, Some(2), "information_schema.SESSION_STATUS");
}
