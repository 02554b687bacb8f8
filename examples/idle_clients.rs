//! Opens N logged-in client connections to a MySQL endpoint and keeps them idle, for
//! measuring a proxy's memory per idle client.
//!
//! cargo run --release --example idle_clients -- 127.0.0.1:6033 app apppass 10000

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
    println!("proxy still answers: {v:?}; holding connections for 30s");
    tokio::time::sleep(std::time::Duration::from_secs(30)).await;
}
