//! Shared test harness: one real primary + 2 replicas per test binary (started on first use,
//! killed with the process), and helpers to start Sluice in-process.
#![allow(dead_code)]

use mysql_async::prelude::*;
use mysql_async::{Conn, OptsBuilder};
use mysql_common::constants::{CapabilityFlags, MariadbCapabilities};
use mysql_common::io::ParseBuf;
use mysql_common::packets::{AuthPlugin, HandshakePacket, HandshakeResponse};
use mysql_common::proto::{MyDeserialize, MySerialize};
use sluice::app::Proxy;
use sluice::config::Config;
use sluice::protocol::packet::{PacketReader, PacketWriter};
use sluice::sandbox::{server::remove_stale, Options, Sandbox};
use std::sync::OnceLock;
use tokio::net::TcpStream;

static TOPOLOGY: OnceLock<Sandbox> = OnceLock::new();
/// Set when a test panicked (failed): the topology's folder is then kept for a look.
static FAILED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// At process exit: stop the servers and remove their folder unless a test failed (or
/// `SLUICE_KEEP_TEST_DATA` is set). Folders left behind are removed by the next run.
extern "C" fn clean_up_topology() {
    if let Some(sb) = TOPOLOGY.get() {
        sb.shutdown();
        let keep = FAILED.load(std::sync::atomic::Ordering::Relaxed)
            || std::env::var_os("SLUICE_KEEP_TEST_DATA").is_some();
        if !keep {
            let _ = std::fs::remove_dir_all(&sb.dir);
        }
    }
}

fn watch_for_failures() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        FAILED.store(true, std::sync::atomic::Ordering::Relaxed);
        default(info)
    }));
    // SAFETY: registers a plain function to run at exit
    unsafe {
        libc::atexit(clean_up_topology);
    }
}

/// The shared topology (servers[0] = primary, server_id 1; replicas 2 and 3).
pub fn topology() -> &'static Sandbox {
    TOPOLOGY.get_or_init(|| {
        watch_for_failures();
        std::thread::spawn(|| {
            let tmp = std::env::temp_dir();
            remove_stale(&tmp, "sluice-test-");
            let dir = tmp.join(format!("sluice-test-{}", std::process::id()));
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let opts = Options {
                dir,
                replicas: 2,
                base_port: None,
                fresh: true,
                progress: false,
            };
            rt.block_on(Sandbox::start(opts))
                .unwrap_or_else(|e| panic!("cannot start the test topology: {e}"))
        })
        .join()
        .expect("topology start thread")
    })
}

pub fn config() -> Config {
    topology().proxy_config("127.0.0.1:0", "127.0.0.1:0")
}

pub async fn proxy(cfg: Config) -> Proxy {
    Proxy::start(cfg).await.expect("start sluice")
}

pub fn opts(proxy: &Proxy, db: Option<&str>) -> OptsBuilder {
    OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(proxy.addr.port())
        .user(Some(sluice::sandbox::APP_USER))
        .pass(Some(sluice::sandbox::APP_PASSWORD))
        .db_name(db)
        .prefer_socket(false)
}

pub async fn client(proxy: &Proxy, db: Option<&str>) -> Conn {
    Conn::new(opts(proxy, db))
        .await
        .expect("connect through sluice")
}

/// Creates a fresh database for one test through the admin user on the primary, and waits
/// until the replicas have it.
pub async fn database(name: &str) -> String {
    let t = topology();
    t.sql(0, &format!("DROP DATABASE IF EXISTS {name}"))
        .await
        .unwrap();
    t.sql(0, &format!("CREATE DATABASE {name}")).await.unwrap();
    caught_up().await;
    name.to_string()
}

pub async fn caught_up() {
    topology()
        .wait_caught_up(std::time::Duration::from_secs(20))
        .await
        .expect("replicas caught up");
}

pub async fn server_id(c: &mut Conn, sql: &str) -> u32 {
    c.query_first::<u32, _>(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .expect("a row")
}

/// Creates (once) a user with the app privileges, for tests that must not disturb others.
pub async fn user(name: &str, password: &str) {
    let t = topology();
    t.sql(
        0,
        &format!("CREATE USER IF NOT EXISTS '{name}'@'127.0.0.1' IDENTIFIED BY '{password}'"),
    )
    .await
    .unwrap();
    t.sql(
        0,
        &format!("GRANT SELECT, INSERT, CREATE, PROCESS ON *.* TO '{name}'@'127.0.0.1'"),
    )
    .await
    .unwrap();
    caught_up().await;
}

/// A config whose only user is `name`.
pub fn config_for(name: &str, password: &str) -> Config {
    let mut cfg = config();
    cfg.users = vec![sluice::config::User {
        name: name.into(),
        password: password.into(),
        password_hash: None,
        require_tls: false,
        max_connections: 0,
    }];
    cfg
}

/// The value of one series (name with its labels) of `/metrics`; 0 if absent.
#[allow(dead_code)] // not every test binary reads metrics
pub async fn metric(p: &Proxy, series: &str) -> f64 {
    let (_, text) = admin_get(p, "/metrics").await;
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.strip_prefix(' ')))
        .map(|v| v.parse().unwrap())
        .unwrap_or(0.0)
}

/// GET `path` on the admin listener; returns (status code, body).
pub async fn admin_get(proxy: &Proxy, path: &str) -> (u16, String) {
    admin(proxy, "GET", path, "", None).await
}

/// One request to the admin listener with Sluice's own client; (status code, body).
pub async fn admin(
    proxy: &Proxy,
    method: &str,
    path: &str,
    body: &str,
    token: Option<&str>,
) -> (u16, String) {
    let addr = proxy.admin_addr.to_string();
    let limit = std::time::Duration::from_secs(90);
    sluice::admin::client::request(&addr, (method, path, body), token, limit)
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

/// The /status entry of backend `name`.
pub async fn backend_status(proxy: &Proxy, name: &str) -> serde_json::Value {
    let (_, body) = admin_get(proxy, "/status").await;
    let v: serde_json::Value = serde_json::from_str(&body).expect("status is JSON");
    v["backends"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == name)
        .cloned()
        .expect("backend in status")
}

/// Logs in with mysql_native_password and CLIENT_DEPRECATE_EOF as `deprecate_eof` says.
pub async fn raw_login(
    port: u16,
    deprecate_eof: bool,
) -> (
    PacketReader<tokio::net::tcp::OwnedReadHalf>,
    PacketWriter<tokio::net::tcp::OwnedWriteHalf>,
) {
    let extra = if deprecate_eof {
        CapabilityFlags::CLIENT_DEPRECATE_EOF
    } else {
        CapabilityFlags::empty()
    };
    raw_login_with(port, extra, MariadbCapabilities::empty()).await
}

/// Logs in with mysql_native_password and `extra` capabilities; with MariaDB extended
/// capabilities, as a MariaDB client (without CLIENT_MYSQL).
pub async fn raw_login_with(
    port: u16,
    extra: CapabilityFlags,
    mariadb: MariadbCapabilities,
) -> (
    PacketReader<tokio::net::tcp::OwnedReadHalf>,
    PacketWriter<tokio::net::tcp::OwnedWriteHalf>,
) {
    let (r, w) = TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap()
        .into_split();
    let (mut r, mut w) = (PacketReader::new(r), PacketWriter::new(w));
    let mut buf = Vec::new();
    r.read_logical(&mut buf, 1 << 20).await.unwrap();
    let hs = HandshakePacket::deserialize((), &mut ParseBuf(&buf)).unwrap();
    let scramble = mysql_common::auth::plugins::mysql_native_password::scramble_native(
        &hs.nonce(),
        b"apppass",
    )
    .unwrap();
    let mut caps = CapabilityFlags::CLIENT_PROTOCOL_41
        | CapabilityFlags::CLIENT_SECURE_CONNECTION
        | CapabilityFlags::CLIENT_PLUGIN_AUTH
        | CapabilityFlags::CLIENT_LONG_PASSWORD;
    caps |= extra;
    if !mariadb.is_empty() {
        caps -= CapabilityFlags::CLIENT_LONG_PASSWORD;
    }
    let resp = HandshakeResponse::new(
        Some(&scramble[..]),
        (8, 0, 36),
        Some(&b"app"[..]),
        None::<&[u8]>,
        Some(AuthPlugin::MysqlNativePassword),
        caps,
        None,
        1 << 24,
    )
    .with_mariadb_ext_capabilities(mariadb);
    let mut out = Vec::new();
    resp.serialize(&mut out);
    w.write_packet(&mut 1, &out).await.unwrap();
    w.flush().await.unwrap();
    r.read_logical(&mut buf, 1 << 20).await.unwrap();
    assert_eq!(buf[0], 0x00, "login OK");
    (r, w)
}

/// Reads packets until a terminator (EOF/OK with 0xFE header) or ERR; returns them.
pub async fn read_until_terminator(
    r: &mut PacketReader<tokio::net::tcp::OwnedReadHalf>,
) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    loop {
        let mut p = Vec::new();
        tokio::time::timeout(
            std::time::Duration::from_secs(5),
            r.read_logical(&mut p, 1 << 24),
        )
        .await
        .expect("no hang")
        .unwrap();
        let end = p[0] == 0xFF || (p[0] == 0xFE && p.len() < 0xFF_FFFF);
        got.push(p);
        if end {
            return got;
        }
    }
}

/// Sends one COM_QUERY on a raw connection (logged in with CLIENT_DEPRECATE_EOF) and reads
/// the whole reply; returns its packets (the last one is OK, ERR or the terminator).
pub async fn raw_query(
    r: &mut PacketReader<tokio::net::tcp::OwnedReadHalf>,
    w: &mut PacketWriter<tokio::net::tcp::OwnedWriteHalf>,
    sql: &str,
) -> Vec<Vec<u8>> {
    let mut p = vec![0x03];
    p.extend_from_slice(sql.as_bytes());
    w.write_packet(&mut 0, &p).await.unwrap();
    w.flush().await.unwrap();
    let mut first = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        r.read_logical(&mut first, 1 << 24),
    )
    .await
    .expect("no hang")
    .unwrap();
    if first[0] == 0x00 || first[0] == 0xFF {
        return vec![first];
    }
    let mut all = vec![first];
    all.extend(read_until_terminator(r).await);
    all
}

/// Rows of `sql` on server `i` of the topology, first column as text.
pub async fn column(i: usize, sql: &str) -> Vec<Option<String>> {
    let r = topology()
        .sql(i, sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    r.rows.into_iter().map(|mut row| row.remove(0)).collect()
}

/// Statements containing `marker` running on the topology's servers.
pub async fn running(marker: &str) -> usize {
    let sql = format!(
        "SELECT COUNT(*) FROM information_schema.processlist \
         WHERE info LIKE '%{marker}%' AND info NOT LIKE '%processlist%'"
    );
    let mut n = 0;
    for i in 0..3 {
        n += column(i, &sql).await[0]
            .as_deref()
            .unwrap_or("0")
            .parse::<usize>()
            .unwrap();
    }
    n
}

/// Backend connections a proxy has opened so far, over all backends.
pub fn backend_connections_opened(p: &Proxy) -> u64 {
    p.shared
        .topology
        .backends()
        .iter()
        .map(|b| b.pool.opened.load(std::sync::atomic::Ordering::Relaxed))
        .sum()
}

/// Resident memory of this process (the test and the in-process proxies), in KiB.
pub fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .parse()
        .unwrap()
}

/// Waits until the monitor has probed every backend at least `n` more times than now.
pub async fn probed(p: &Proxy, n: u64) {
    use std::time::{Duration, Instant};
    let count = |v: &serde_json::Value| -> Vec<u64> {
        v["backends"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["probes"].as_u64().unwrap_or(0))
            .collect()
    };
    let status = || async {
        let (_, body) = admin_get(p, "/status").await;
        serde_json::from_str::<serde_json::Value>(&body).unwrap()
    };
    let before = count(&status().await);
    let started = Instant::now();
    loop {
        let now = count(&status().await);
        if now.iter().zip(&before).all(|(a, b)| *a >= b + n) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "probes {before:?} -> {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
