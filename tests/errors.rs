//! Errors Sluice itself sends, as libmariadb-based clients show them. Client libraries own
//! codes 2000-2999: one received from a server reads as "malformed packet" (2027) and the
//! message is lost, so Sluice uses server-range codes.
#![allow(clippy::disallowed_methods)] // clients of the proxy: tokio timers are theirs

mod common;
use common::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// Runs the `mariadb` CLI through Sluice on `port`; (success, stdout + stderr).
async fn cli(port: u16, sql: &str) -> (bool, String) {
    let out = tokio::process::Command::new("mariadb")
        .args(["-h", "127.0.0.1", "-P", &port.to_string()])
        .args(["-u", "app", "-papppass", "--batch", "-e", sql])
        .output()
        .await
        .expect("run the mariadb client");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A loopback port nothing listens on.
async fn dead_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_backend_shows_sluices_message_in_the_cli() {
    let mut cfg = config();
    cfg.monitor = None;
    let port = dead_port().await;
    for b in &mut cfg.backends {
        b.address = format!("127.0.0.1:{port}");
    }
    let p = proxy(cfg).await;
    let (ok, out) = cli(p.addr.port(), "SELECT 1").await;
    assert!(!ok, "{out}");
    assert!(out.contains("ERROR 1429"), "{out}");
    assert!(out.contains("Sluice: backend db"), "{out}");
    assert!(!out.contains("malformed"), "{out}");
    // without a [monitor] nothing probes: readiness still means a reachable primary
    let (code, body) = admin_get(&p, "/ready").await;
    assert_eq!(code, 503, "{body}");
    let mut cfg = config();
    cfg.monitor = None;
    let live = proxy(cfg).await;
    let (code, body) = admin_get(&live, "/ready").await;
    assert_eq!(code, 200, "{body}");
}

/// Forwards connections to `to` until `cut` is set: then every connection is reset and new
/// ones are refused.
async fn forwarder(to: String, cut: Arc<AtomicBool>) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((client, _)) = l.accept().await {
            if cut.load(Ordering::Relaxed) {
                return; // the listener closes: connections refused
            }
            let (to, cut) = (to.clone(), cut.clone());
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(&to).await else {
                    return;
                };
                let (mut a, mut b) = (client, server);
                let relay = tokio::io::copy_bidirectional(&mut a, &mut b);
                let cutting = async {
                    while !cut.load(Ordering::Relaxed) {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                };
                tokio::select! {
                    _ = relay => {}
                    _ = cutting => {
                        // a reset after the command was read (an abortive close, a middlebox
                        // cutting the connection): the command may have run
                        if let Ok(std) = a.into_std() {
                            let _ = socket_linger_zero(&std);
                        }
                    }
                }
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_lost_with_its_connection_shows_sluices_message_in_the_cli() {
    let db = database("errors_lost").await;
    let t = topology();
    t.sql(
        0,
        &format!("CREATE TABLE {db}.t (a INT); INSERT INTO {db}.t VALUES (1)"),
    )
    .await
    .unwrap();
    let mut cfg = config();
    cfg.monitor = None;
    let cut = Arc::new(AtomicBool::new(false));
    let primary = t.servers[0].address();
    cfg.backends.truncate(1);
    cfg.backends[0].address = format!("127.0.0.1:{}", forwarder(primary, cut.clone()).await);
    let p = proxy(cfg).await;
    let port = p.addr.port();
    let sql = format!("SELECT SLEEP(5) FROM {db}.t FOR UPDATE");
    let run = tokio::spawn(async move {
        // a locking read: it may have taken locks, so it is not run again
        cli(port, &sql).await
    });
    assert!(
        wait_for_running("SLEEP(5) FROM errors_lost").await,
        "the statement started"
    );
    cut.store(true, Ordering::Relaxed);
    let (ok, out) = run.await.unwrap();
    assert!(!ok, "{out}");
    assert!(out.contains("ERROR 1927"), "{out}");
    assert!(
        out.contains("Sluice: lost connection to backend db0"),
        "{out}"
    );
}

/// Waits until the primary runs `sql` (bounded).
async fn wait_for_running(sql: &str) -> bool {
    for _ in 0..200 {
        if running(sql).await > 0 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// SO_LINGER 0: closing sends a reset (zero linger never blocks).
fn socket_linger_zero(s: &std::net::TcpStream) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let l = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: setsockopt on an open socket with a linger struct of the size given
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
