//! `sluice sandbox` as a user runs it: Sluice runs from the file the sandbox writes (an edit
//! plus SIGHUP, or `POST /reload`, applies it), and a stop signal stops the servers cleanly.
#![allow(clippy::disallowed_methods)] // clients of the proxy: tokio timers are theirs

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// A base port with the 12 ports the sandbox uses free.
fn free_base() -> u16 {
    free_base_from(0)
}

/// The same, searched from `skip` blocks of 12 further on (tests running at once differ).
fn free_base_from(skip: u16) -> u16 {
    let start = 30_000 + ((std::process::id() % 500) as u16 + skip) * 12;
    (0..200)
        .map(|i| start.wrapping_add(i * 12) % 30_000 + 30_000)
        .find(|&b| (0..12).all(|k| std::net::TcpListener::bind(("127.0.0.1", b + k)).is_ok()))
        .expect("12 free ports")
}

type Lines = Arc<Mutex<Vec<String>>>;

fn collect(r: impl tokio::io::AsyncRead + Unpin + Send + 'static, into: Lines) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(r).lines();
        while let Ok(Some(l)) = lines.next_line().await {
            into.lock().unwrap().push(l);
        }
    });
}

async fn wait_for(lines: &Lines, what: &str, limit: Duration) -> String {
    let t = Instant::now();
    loop {
        if let Some(l) = lines.lock().unwrap().iter().find(|l| l.contains(what)) {
            return l.clone();
        }
        assert!(
            t.elapsed() < limit,
            "no line with {what:?} after {limit:?}:\n{}",
            lines.lock().unwrap().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(50)).await; // polling interval
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_reloads_its_file_and_stops_its_servers_cleanly() {
    let dir = std::env::temp_dir().join(format!("sluice-sandbox-cli-{}", std::process::id()));
    let base = free_base();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["sandbox", "--fresh", "--replicas", "1", "--base-port"])
        .arg(base.to_string())
        .arg("--dir")
        .arg(&dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let out: Lines = Default::default();
    collect(child.stdout.take().unwrap(), out.clone());
    collect(child.stderr.take().unwrap(), out.clone());
    wait_for(&out, "Press Ctrl-C", Duration::from_secs(120)).await;
    let hint = wait_for(&out, "try:", Duration::ZERO).await;
    assert!(hint.contains("the primary's (1)"), "{hint}");

    // edit the file the banner names, then SIGHUP
    let path = dir.join("sluice.toml");
    let mut cfg = sluice::config::Config::load(&path).unwrap();
    cfg.backends[1].weight = 0;
    std::fs::write(&path, toml::to_string_pretty(&cfg).unwrap()).unwrap();
    let pid = child.id().unwrap() as i32;
    // SAFETY: signalling our own child
    unsafe { libc::kill(pid, libc::SIGHUP) };
    let reloaded = wait_for(&out, "configuration reloaded", Duration::from_secs(10)).await;
    assert!(reloaded.contains("db1: weight 1 -> 0"), "{reloaded}");

    // POST /reload and /status know the file
    let admin = format!("127.0.0.1:{}", base + 11);
    let limit = Duration::from_secs(10);
    let req = |m: &'static str, p: &'static str| {
        sluice::admin::client::request(&admin, (m, p, ""), None, limit)
    };
    let (code, body) = req("POST", "/reload").await.unwrap();
    assert_eq!(code, 200, "{body}");
    let (_, status) = req("GET", "/status").await.unwrap();
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(v["config"]["path"], path.display().to_string(), "{status}");

    // after a switchover the sandbox names the new primary and its id (the banner's hint
    // would be stale), and that is the server a transaction runs on
    let (code, body) = sluice::admin::client::request(
        &admin,
        ("POST", "/switchover", r#"{"to": "db1"}"#),
        None,
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    assert_eq!(code, 200, "{body}");
    let now = wait_for(&out, "primary is now", Duration::from_secs(10)).await;
    assert!(now.contains("db1") && now.ends_with("shows 2"), "{now}");
    let url = format!("mysql://app:apppass@127.0.0.1:{}/", base + 10);
    let mut c = mysql_async::Conn::from_url(url.as_str()).await.unwrap();
    use mysql_async::prelude::Queryable;
    c.query_drop("BEGIN").await.unwrap();
    let id: Option<u32> = c.query_first("SELECT @@server_id").await.unwrap();
    assert_eq!(id, Some(2));
    c.query_drop("COMMIT").await.unwrap();
    c.disconnect().await.unwrap();

    // a stop signal stops Sluice and shuts the servers down (their logs say so)
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let st = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("the sandbox stops")
        .unwrap();
    assert!(st.success(), "{st:?}");
    for server in ["db0", "db1"] {
        let log = std::fs::read_to_string(dir.join(server).join("error.log")).unwrap();
        assert!(log.contains("Shutdown complete"), "{server}:\n{log}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A base port something else listens on is refused before any server starts: the readiness
/// check would otherwise reach the other server and the setup fail on its accounts.
#[tokio::test]
async fn a_base_port_in_use_is_refused_clearly() {
    let base = free_base_from(250);
    let _other = std::net::TcpListener::bind(("127.0.0.1", base + 1)).unwrap();
    let dir = std::env::temp_dir().join(format!("sluice-sbx-taken-{}", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "sandbox",
            "--fresh",
            "--base-port",
            &base.to_string(),
            "--dir",
        ])
        .arg(&dir)
        .output()
        .await
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    // (base + 1 is ours; base itself could have been taken by anyone since the search)
    assert!(
        stderr.contains(&format!("port {} is not free", base + 1))
            || stderr.contains(&format!("port {base} is not free")),
        "{stderr}"
    );
}
