//! Digest statistics (`GET /digests`, `POST /digests/reset`, the status page) and the
//! slow-query log, through a real topology.
#![allow(clippy::disallowed_methods)] // clients of the proxy: tokio timers are theirs

mod common;
use common::*;
use mysql_async::prelude::*;
use std::io::Write;
use std::sync::Mutex;

/// Everything the proxy logs in this test binary.
static LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct Capture;
impl Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        LOG.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digests_slow_log_and_status_page() {
    tracing_subscriber::fmt()
        .with_writer(|| Capture)
        .with_ansi(false)
        .with_env_filter("sluice::slow=warn")
        .init();
    let db = database("obs").await;
    topology()
        .sql(0, &format!("CREATE TABLE {db}.t (id INT PRIMARY KEY)"))
        .await
        .unwrap();
    topology()
        .sql(
            0,
            &format!("INSERT INTO {db}.t SELECT seq FROM mysql.seq_0_to_19"),
        )
        .await
        .unwrap();
    caught_up().await;
    let mut cfg = config();
    // far above a point select even on a loaded machine, below the sleep
    cfg.stats.slow_query = Some(sluice::config::Dur(std::time::Duration::from_millis(400)));
    let p = proxy(cfg).await;
    let mut c = client(&p, Some(&db)).await;
    for i in 0..20 {
        c.query_drop(format!("SELECT id FROM t WHERE id = {i}"))
            .await
            .unwrap();
    }
    c.query_drop("SELECT SLEEP(0.5)").await.unwrap();
    // one shape in two databases: two rows. In a transaction the USE and the reads run on
    // the same connection by the same route: only the database tells the rows apart (the
    // session keeps its digest context only while the database stays the same)
    c.query_drop("BEGIN").await.unwrap();
    for db_now in [db.as_str(), "mysql"] {
        c.query_drop(format!("USE {db_now}")).await.unwrap();
        for _ in 0..if db_now == "mysql" { 3 } else { 2 } {
            c.query_drop("SELECT 7 + 0").await.unwrap();
        }
    }
    c.query_drop("COMMIT").await.unwrap();
    c.query_drop(format!("USE {db}")).await.unwrap();

    let (code, body) = admin_get(&p, "/digests?sort=count&limit=50").await;
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    // one row per backend that served the shape (the two replicas here)
    let rows: Vec<&serde_json::Value> = v["digests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["text"] == "SELECT id FROM t WHERE id = ?")
        .collect();
    let sum = |k: &str| rows.iter().map(|r| r[k].as_u64().unwrap()).sum::<u64>();
    assert_eq!((sum("count"), sum("rows")), (20, 20), "{body}");
    let in_db = |name: &str| -> u64 {
        v["digests"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["text"] == "SELECT ? + ?" && r["database"] == name)
            .map(|r| r["count"].as_u64().unwrap())
            .sum()
    };
    assert_eq!((in_db(&db), in_db("mysql")), (2, 3), "{body}");
    let top = rows[0];
    assert_eq!(top["user"], "app");
    assert_eq!(top["database"], db.as_str());
    assert_eq!(top["route"], "read");
    assert!(top["p99_us"].as_u64().unwrap() >= top["p50_us"].as_u64().unwrap());
    let (_, top3) = admin_get(&p, "/digests?sort=count&limit=3").await;
    let top3: serde_json::Value = serde_json::from_str(&top3).unwrap();
    let all = v["digests"].as_array().unwrap().len();
    assert_eq!(
        top3["digests"].as_array().unwrap().len(),
        all.min(3),
        "{top3}"
    );
    let (code, _) = admin_get(&p, "/digests?sort=nonsense").await;
    assert_eq!(code, 400);

    let log = String::from_utf8(LOG.lock().unwrap().clone()).unwrap();
    let slow: Vec<&str> = log.lines().filter(|l| l.contains("slow query")).collect();
    assert_eq!(slow.len(), 1, "only the sleeping statement is slow: {log}");
    assert!(
        slow[0].ends_with("statement=SELECT SLEEP(?)") && !slow[0].contains("SLEEP(0.5)"),
        "{}",
        slow[0]
    );
    assert!(
        slow[0].contains("user=app") && slow[0].contains("digest="),
        "{}",
        slow[0]
    );

    let (_, page) = admin_get(&p, "/").await;
    assert!(page.contains("Top statements") && page.contains("SELECT SLEEP(?)"));

    assert_eq!(admin(&p, "POST", "/digests/reset", "", None).await.0, 200);
    let (_, body) = admin_get(&p, "/digests").await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["rows_held"], 0, "{body}");
    p.shutdown().await;
}

fn value(rows: &[(String, String)], item: &str) -> String {
    rows.iter()
        .find(|(i, _)| i == item)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("no {item} in {rows:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_route_says_where_and_why_without_running() {
    let db = database("explained").await;
    topology()
        .sql(0, &format!("CREATE TABLE {db}.t (id INT PRIMARY KEY)"))
        .await
        .unwrap();
    caught_up().await;
    let p = proxy(config()).await;
    let mut c = client(&p, Some(&db)).await;
    let rows: Vec<(String, String)> = c
        .query("EXPLAIN ROUTE SELECT id FROM t WHERE id = 5")
        .await
        .unwrap();
    assert_eq!(value(&rows, "route"), "replica (reason: read)", "{rows:?}");
    assert_eq!(value(&rows, "statement"), "SELECT id FROM t WHERE id = ?");
    assert!(
        value(&rows, "backend db1").contains("takes reads"),
        "{rows:?}"
    );
    assert!(
        value(&rows, "backend db0").starts_with("primary"),
        "{rows:?}"
    );
    let rows: Vec<(String, String)> = c
        .query("EXPLAIN ROUTE SELECT id FROM t WHERE id = 5 FOR UPDATE")
        .await
        .unwrap();
    assert_eq!(value(&rows, "route"), "primary (reason: locking_read)");
    assert!(value(&rows, "flags").contains("locking read"));
    c.query_drop("BEGIN").await.unwrap();
    let rows: Vec<(String, String)> = c.query("EXPLAIN ROUTE SELECT 1").await.unwrap();
    assert_eq!(value(&rows, "route"), "primary (reason: transaction)");
    assert!(value(&rows, "session").contains("in transaction: true"));
    c.query_drop("ROLLBACK").await.unwrap();
    // nothing runs
    let _: Vec<(String, String)> = c
        .query("EXPLAIN ROUTE INSERT INTO t VALUES (1)")
        .await
        .unwrap();
    let n: u64 = c
        .query_first("SELECT COUNT(*) FROM t")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 0);
    // from a shell: the admin API (what `sluice explain` calls)
    let (code, out) = admin(&p, "POST", "/explain", "UPDATE t SET id = 2", None).await;
    assert_eq!(code, 200, "{out}");
    assert!(
        out.contains(r#""value":"primary (reason: write)""#),
        "{out}"
    );
    p.shutdown().await;
}

/// `sluice check --connect` on the real topology: ready as configured; with the roles swapped
/// it names what is wrong and fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_connect_says_what_each_backend_lacks() {
    let dir = std::env::temp_dir().join(format!("sluice-preflight-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let run = |cfg: sluice::config::Config, name: &str| {
        let path = dir.join(name);
        std::fs::write(&path, toml::to_string_pretty(&cfg).unwrap()).unwrap();
        std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["check", "--connect", "-c"])
            .arg(&path)
            .output()
            .unwrap()
    };
    let out = run(config(), "good.toml");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("every backend is ready"), "{text}");
    assert!(text.contains("replication threads running"), "{text}");
    let mut swapped = config();
    swapped.backends[0].role = sluice::config::Role::Replica;
    swapped.backends[1].role = sluice::config::Role::Primary;
    swapped.users[0].password = "wrong".into();
    let out = run(swapped, "swapped.toml");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    for want in [
        "NO  read_only is ON: Sluice will not take it as the primary",
        "NO  read_only is OFF on a replica",
        "NO  not replicating",
        "cannot log in",
    ] {
        assert!(text.contains(want), "{want} not in:\n{text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
