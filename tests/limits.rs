//! Limits against hostile or broken clients: announced-but-unsent packets, silent sockets,
//! half-sent packets, password guessing.
#![allow(clippy::disallowed_methods)] // clients of the proxy: tokio timers are theirs

mod common;
use common::*;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Reads until EOF (or an error); panics if the connection stays open past `within`.
async fn closed_within(s: &mut tokio::net::TcpStream, within: Duration) -> Vec<u8> {
    let mut got = Vec::new();
    let r = tokio::time::timeout(within, s.read_to_end(&mut got)).await;
    assert!(r.is_ok(), "connection still open after {within:?}");
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announced_16_mib_packets_cost_no_memory_until_sent() {
    let p = proxy(config()).await;
    let mut conns = Vec::new();
    for _ in 0..5 {
        // warm up allocator arenas with logged-in idle clients
        conns.push(raw_login(p.addr.port(), true).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = rss_kib();
    for _ in 0..20 {
        let (r, mut w) = raw_login(p.addr.port(), true).await;
        // a header announcing 16 MiB - 1 of payload, and then nothing
        w.get_mut()
            .write_all(&[0xff, 0xff, 0xff, 0x00])
            .await
            .unwrap();
        w.get_mut().flush().await.unwrap();
        conns.push((r, w));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let grown_mib = (rss_kib().saturating_sub(before)) / 1024;
    assert!(
        grown_mib < 40,
        "20 announced 16 MiB packets grew RSS by {grown_mib} MiB (was 320 before the fix)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_half_sent_clients_are_disconnected() {
    let mut cfg = config();
    cfg.listen.handshake_timeout = sluice::config::Dur(Duration::from_millis(300));
    cfg.listen.idle_timeout = sluice::config::Dur(Duration::from_millis(400));
    let p = proxy(cfg).await;

    // connects, reads the greeting, never logs in
    let mut s = tokio::net::TcpStream::connect(p.addr).await.unwrap();
    let started = Instant::now();
    closed_within(&mut s, Duration::from_secs(3)).await;
    assert!(started.elapsed() >= Duration::from_millis(250));

    // logs in, then stays silent: ERR 4031 then EOF
    let (mut r, w) = raw_login(p.addr.port(), true).await;
    let mut pkt = Vec::new();
    let res = tokio::time::timeout(Duration::from_secs(3), r.read_logical(&mut pkt, 1 << 20)).await;
    assert!(res.expect("disconnected in time").is_ok());
    assert_eq!(pkt[0], 0xFF);
    assert_eq!(u16::from_le_bytes([pkt[1], pkt[2]]), 4031);
    drop((r, w));

    // logs in, sends two bytes of a header, then nothing
    let (r, mut w) = raw_login(p.addr.port(), true).await;
    w.get_mut().write_all(&[0x10, 0x00]).await.unwrap();
    let mut s = r.into_inner().reunite(w.into_inner()).unwrap();
    closed_within(&mut s, Duration::from_secs(3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_client_stays_and_is_disconnected_once_quiet_for_the_limit() {
    use mysql_async::prelude::Queryable;
    let mut cfg = config();
    cfg.listen.idle_timeout = sluice::config::Dur(Duration::from_millis(600));
    let p = proxy(cfg).await;
    let mut c = client(&p, None).await;
    // busy for 2 s (three idle limits), never quiet for 600 ms: the idle timer fires and is
    // re-armed while commands keep coming, and must not end the session
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(2) {
        c.query_drop("SELECT 1")
            .await
            .expect("a busy client is kept");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    // then quiet: gone after the limit (ERR 4031, then end of stream)
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let e = c.query_drop("SELECT 1").await.unwrap_err();
    assert!(
        matches!(e, mysql_async::Error::Server(ref s) if s.code == 4031)
            || matches!(e, mysql_async::Error::Io(_) | mysql_async::Error::Driver(_)),
        "{e:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_guessing_blocks_the_host() {
    let mut cfg = config();
    cfg.listen.auth_failure_limit = 5;
    let p = proxy(cfg).await;
    for _ in 0..5 {
        let bad = opts(&p, None).pass(Some("guess"));
        let e = mysql_async::Conn::new(bad).await.unwrap_err();
        assert!(
            matches!(e, mysql_async::Error::Server(ref s) if s.code == 1045),
            "{e:?}"
        );
    }
    // now even the right password is refused, before any authentication
    let e = mysql_async::Conn::new(opts(&p, None)).await.unwrap_err();
    assert!(
        matches!(e, mysql_async::Error::Server(ref s) if s.code == 1129),
        "{e:?}"
    );
    assert_eq!(p.shared.metrics.auth_failures_total.get(), 5);
    assert_eq!(p.shared.metrics.auth_blocked_hosts_total.get(), 1);
}

async fn http(addr: std::net::SocketAddr, req: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out)).await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_posts_need_the_token_when_one_is_set() {
    let mut cfg = config();
    cfg.admin.token = Some("t0k'\"en".into());
    let p = proxy(cfg).await;
    let post = |auth: &str| {
        format!("POST /backends/db1/undrain HTTP/1.1\r\nHost: x\r\n{auth}Content-Length: 0\r\n\r\n")
    };
    let none = http(p.admin_addr, &post("")).await;
    assert!(none.starts_with("HTTP/1.1 401"), "{none}");
    let wrong = http(p.admin_addr, &post("Authorization: Bearer t0k\r\n")).await;
    assert!(wrong.starts_with("HTTP/1.1 401"), "{wrong}");
    let right = http(p.admin_addr, &post("Authorization: Bearer t0k'\"en\r\n")).await;
    assert!(right.starts_with("HTTP/1.1 200"), "{right}");
    // reads stay open
    let live = http(p.admin_addr, "GET /live HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(live.starts_with("HTTP/1.1 200"), "{live}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_admin_connections_do_not_lock_out_the_api() {
    let p = proxy(config()).await;
    let mut silent = Vec::new();
    for _ in 0..80 {
        silent.push(tokio::net::TcpStream::connect(p.admin_addr).await.unwrap());
    }
    // the header read timeout (5 s) frees their slots: the API answers again
    let started = Instant::now();
    loop {
        let live = http(p.admin_addr, "GET /live HTTP/1.1\r\nHost: x\r\n\r\n").await;
        if live.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "{live:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(silent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_user_connection_limit() {
    let mut cfg = config();
    cfg.users[0].max_connections = 2;
    let p = proxy(cfg).await;
    let a = mysql_async::Conn::new(opts(&p, None)).await.unwrap();
    let b = mysql_async::Conn::new(opts(&p, None)).await.unwrap();
    let e = mysql_async::Conn::new(opts(&p, None)).await.unwrap_err();
    assert!(
        matches!(e, mysql_async::Error::Server(ref s) if s.code == 1226),
        "{e:?}"
    );
    drop(a);
    drop(b);
    // slots come back when sessions end, however they end
    let started = Instant::now();
    loop {
        match mysql_async::Conn::new(opts(&p, None)).await {
            Ok(_) => break,
            Err(e) => assert!(started.elapsed() < Duration::from_secs(5), "{e:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
