//! Limits against hostile or broken clients: announced-but-unsent packets, silent sockets,
//! half-sent packets, password guessing.

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
