//! Opens N logged-in client connections to a MySQL endpoint and keeps them idle, for
//! measuring a proxy's memory per idle client. With the proxy's process id it prints the
//! proxy's RSS before, with the clients connected (once quiet for 7 s: Sluice releases an
//! idle session's buffers after 1 s and returns freed memory within 5 s) and 7 s after they
//! left; otherwise it holds them for 30 s.
//!
//! cargo run --release --example idle_clients -- 127.0.0.1:6033 app apppass 10000 [PID]
#![allow(clippy::disallowed_methods)] // clients of the proxy: tokio timers are theirs

use mysql_async::prelude::*;
use mysql_async::{Conn, OptsBuilder};

fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain getrlimit/setrlimit on our own process.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    raise_fd_limit();
    let args: Vec<String> = std::env::args().collect();
    let (addr, user, pass) = (&args[1], &args[2], &args[3]);
    let n: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let pid: Option<u32> = args.get(5).and_then(|s| s.parse().ok());
    let before = pid.map(rss_mib);
    let (host, port) = addr.rsplit_once(':').expect("host:port");
    let opts = OptsBuilder::default()
        .ip_or_hostname(host)
        .tcp_port(port.parse().expect("port"))
        .user(Some(user))
        .pass(Some(pass))
        .prefer_socket(false);
    let mut conns = Vec::with_capacity(n);
    let started = std::time::Instant::now();
    for i in 0..n {
        let mut c = Conn::new(opts.clone())
            .await
            .unwrap_or_else(|e| panic!("connection {i}: {e}"));
        if i % 1000 == 0 {
            c.query_drop("DO 1").await.expect("query");
        }
        conns.push(c);
    }
    println!(
        "{n} clients connected and idle after {:?}",
        started.elapsed()
    );
    let mut c = Conn::new(opts).await.expect("one more");
    let v: Option<u32> = c.query_first("SELECT 1").await.expect("still serving");
    println!("proxy still answers: {v:?}");
    drop(c);
    let (Some(pid), Some(before)) = (pid, before) else {
        println!("holding the connections for 30s");
        tokio::time::sleep(std::time::Duration::from_secs(30)).await;
        return;
    };
    tokio::time::sleep(std::time::Duration::from_secs(7)).await;
    let held = rss_mib(pid);
    for c in conns {
        let _ = c.disconnect().await;
    }
    tokio::time::sleep(std::time::Duration::from_secs(7)).await;
    let after = rss_mib(pid);
    println!(
        "idle clients: {n}; proxy RSS {before:.1} MiB before, {held:.1} MiB with them ({:.1} KiB each), {after:.1} MiB after they left",
        (held - before) * 1024.0 / n as f64
    );
}

/// Resident memory of process `pid` in MiB (Linux `/proc`).
fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kib| kib / 1024.0)
}
