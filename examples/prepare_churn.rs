//! Many clients preparing statements for a while (re-prepared, distinct, in transactions),
//! then disconnecting: for checking that the backends' `Prepared_stmt_count` stays bounded.
//!
//! cargo run --release --example prepare_churn -- 127.0.0.1:6033 app apppass 800 120

use mysql_async::prelude::*;
use mysql_async::{Conn, OptsBuilder};
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (addr, user, pass) = (&args[1], &args[2], &args[3]);
    let clients: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(800);
    let secs: u64 = args.get(5).and_then(|s| s.parse().ok()).unwrap_or(120);
    let (host, port) = addr.rsplit_once(':').expect("host:port");
    let opts = OptsBuilder::default()
        .ip_or_hostname(host)
        .tcp_port(port.parse().expect("port"))
        .user(Some(user.as_str()))
        .pass(Some(pass.as_str()))
        .stmt_cache_size(0)
        .prefer_socket(false);
    let until = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for t in 0..clients {
        let opts = opts.clone();
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut failed) = (0u64, 0u64);
            let Ok(mut c) = Conn::new(opts).await else {
                return (0, 1);
            };
            let mut i = 0u64;
            while Instant::now() < until {
                i += 1;
                let distinct = format!("SELECT ? + {} AS churn_{t}", i % 50);
                let r1 = c.exec_first::<i64, _, _>("SELECT ? + 0", (i,)).await;
                let r2 = c.exec_first::<i64, _, _>(distinct.as_str(), (i,)).await;
                let r3 = c.query_drop("BEGIN").await;
                let r4 = c
                    .exec_first::<i64, _, _>("SELECT ? + 1 FOR UPDATE", (i,))
                    .await;
                let r5 = c.query_drop("COMMIT").await;
                if r1.is_ok() && r2.is_ok() && r3.is_ok() && r4.is_ok() && r5.is_ok() {
                    ok += 1;
                } else {
                    failed += 1;
                }
            }
            let _ = c.disconnect().await;
            (ok, failed)
        }));
    }
    let (mut ok, mut failed) = (0, 0);
    for t in tasks {
        if let Ok((o, f)) = t.await {
            ok += o;
            failed += f;
        }
    }
    println!("{clients} clients x {secs} s: {ok} iterations ok, {failed} failed");
}
