//! Read-your-writes after many reloads: backends re-added by reloads get ever higher indices
//! (a backend keeps its index for the life of the process), and a replica confirmed at one
//! index must never make another one look confirmed. Own binary: it blocks replication on
//! one replica of its topology for the whole test.
#![allow(clippy::disallowed_methods)] // clients of the proxy: tokio timers are theirs

mod common;
use common::*;
use mysql_async::prelude::*;
use sluice::config::{Backend, ReadYourWrites, Role};
use std::path::PathBuf;
use std::time::Duration;

fn write_config(path: &PathBuf, cfg: &sluice::config::Config) {
    std::fs::write(path, toml::to_string_pretty(cfg).unwrap()).unwrap();
}

async fn post_reload(p: &sluice::app::Proxy) -> (u16, String) {
    admin(p, "POST", "/reload", "", None).await
}

/// Reload `n` of 70: the entry for the second replica server either disappears (n = 1, 3,
/// ..., 13) or comes back under a new name (every other reload). 63 of them add it again, so
/// it ends at index 2 + 63 = 65, which is 1 modulo 64: the index of the first replica.
fn entry_for(n: usize, address: &str) -> Option<Backend> {
    (n > 14 || n.is_multiple_of(2)).then(|| Backend {
        name: format!("again{n}"),
        address: address.to_string(),
        role: Role::Replica,
        weight: 1,
        tls: None,
        groups: Vec::new(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seventy_reloads_re_adding_backends_never_read_stale() {
    let db = database("ryw70").await;
    topology()
        .sql(0, &format!("CREATE TABLE {db}.t (id INT PRIMARY KEY)"))
        .await
        .unwrap();
    caught_up().await;
    let dir = std::env::temp_dir().join(format!("sluice-ryw70-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sluice.toml");
    let mut cfg = config();
    cfg.routing.read_your_writes = ReadYourWrites::Gtid;
    cfg.routing.gtid_wait = sluice::config::Dur(Duration::from_secs(2));
    // the blocked replica must stay eligible however far behind it falls
    cfg.routing.max_replica_lag = sluice::config::Dur(Duration::from_secs(3600));
    write_config(&path, &cfg);
    let p = sluice::app::Proxy::start_from_file(&path).await.unwrap();
    let second = topology().servers[2].address();
    for n in 1..=70 {
        cfg.backends.truncate(2);
        cfg.backends.extend(entry_for(n, &second));
        write_config(&path, &cfg);
        let (code, reply) = post_reload(&p).await;
        assert_eq!(code, 200, "reload {n}: {reply}");
    }
    let st = backend_status(&p, "again70").await;
    assert_eq!(st["removed"], false, "{st}");
    let (_, status) = admin_get(&p, "/status").await;
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    let index = v["backends"]
        .as_array()
        .unwrap()
        .iter()
        .position(|b| b["name"] == "again70")
        .unwrap();
    assert_eq!(index, 65, "the re-added replica's index");

    // block replication on the first replica (index 1): its SQL thread waits for the lock
    let mut blocker = mysql_async::Conn::new(
        mysql_async::OptsBuilder::default()
            .ip_or_hostname("127.0.0.1")
            .tcp_port(topology().servers[1].port)
            .user(Some(sluice::sandbox::ADMIN_USER))
            .pass(Some(sluice::sandbox::ADMIN_PASSWORD))
            .prefer_socket(false),
    )
    .await
    .unwrap();
    blocker
        .query_drop(format!("LOCK TABLES {db}.t READ"))
        .await
        .unwrap();

    let mut c = client(&p, Some(&db)).await;
    let (mut stale, mut from_blocked) = (0, 0);
    for id in 1..=30 {
        c.query_drop(format!("INSERT INTO t VALUES ({id})"))
            .await
            .unwrap();
        for _ in 0..10 {
            let (n, sid): (u32, u32) = c
                .query_first(format!(
                    "SELECT COUNT(*), @@server_id FROM t WHERE id = {id}"
                ))
                .await
                .unwrap()
                .unwrap();
            stale += (n == 0) as u32;
            from_blocked += (sid == 2) as u32;
        }
    }
    println!("300 reads after 30 writes: {stale} stale, {from_blocked} from the blocked replica");
    blocker.query_drop("UNLOCK TABLES").await.unwrap();
    assert_eq!(stale, 0, "read-your-writes served a stale read");
    p.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}
