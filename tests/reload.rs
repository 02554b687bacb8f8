//! Hot reload through the file watcher and the admin API, with clients connected.
#![allow(clippy::disallowed_methods)] // clients of the proxy: tokio timers are theirs

mod common;
use common::*;
use mysql_async::prelude::*;
use sluice::app::Proxy;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn config_file(tag: &str, edit: impl FnOnce(&mut sluice::config::Config)) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sluice-reload-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sluice.toml");
    let mut cfg = config();
    edit(&mut cfg);
    std::fs::write(&path, toml::to_string_pretty(&cfg).unwrap()).unwrap();
    path
}

fn rewrite(path: &PathBuf, edit: impl FnOnce(&mut sluice::config::Config)) {
    let mut cfg = sluice::config::Config::load(path).unwrap();
    edit(&mut cfg);
    std::fs::write(path, toml::to_string_pretty(&cfg).unwrap()).unwrap();
}

/// Reads until `n` consecutive reads avoid `server_id`; returns how long that took.
async fn until_avoided(
    c: &mut mysql_async::Conn,
    server_id: u32,
    n: usize,
    limit: Duration,
) -> Duration {
    let t = Instant::now();
    let mut streak = 0;
    while streak < n {
        assert!(
            t.elapsed() < limit,
            "reads still reach server {server_id} after {limit:?}"
        );
        let sid: u32 = c.query_first("SELECT @@server_id").await.unwrap().unwrap();
        streak = if sid == server_id { 0 } else { streak + 1 };
    }
    t.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weight_zero_in_the_file_moves_reads_within_a_second_and_bad_edits_are_rejected() {
    let path = config_file("weight", |_| {});
    let p = Proxy::start_from_file(&path).await.unwrap();
    let mut c = client(&p, None).await;
    let mut seen = std::collections::HashSet::new();
    for _ in 0..40 {
        seen.insert(server_id(&mut c, "SELECT @@server_id").await);
    }
    assert!(
        seen.contains(&3),
        "db2 (server 3) takes reads before the edit: {seen:?}"
    );
    let edited = Instant::now();
    rewrite(&path, |cfg| cfg.backends[2].weight = 0);
    let took = until_avoided(&mut c, 3, 50, Duration::from_secs(3)).await;
    let since_edit = edited.elapsed();
    println!("reads left the weight-0 replica {took:?} after reading started; {since_edit:?} after the edit");
    assert!(since_edit < Duration::from_secs(2));
    // an invalid edit is rejected; the old configuration keeps serving the same client
    std::fs::write(
        &path,
        std::fs::read_to_string(&path)
            .unwrap()
            .replace("[pool]", "[pool]\nmax_conections_per_backend = 3"),
    )
    .unwrap();
    let t = Instant::now();
    while metric(&p, r#"sluice_config_reloads_total{result="failure"}"#).await < 1.0 {
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "the failed reload is counted"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (_, status) = admin_get(&p, "/status").await;
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(v["config"]["last"]["ok"], false, "{status}");
    assert!(
        v["config"]["last"]["errors"]
            .to_string()
            .contains("max_conections_per_backend"),
        "{status}"
    );
    for _ in 0..20 {
        assert_ne!(
            server_id(&mut c, "SELECT @@server_id").await,
            3,
            "the old (valid) config still applies"
        );
    }
    assert!(metric(&p, r#"sluice_config_reloads_total{result="success"}"#).await >= 1.0);
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adding_a_replica_puts_it_in_rotation_and_removing_one_drains_it() {
    let path = config_file("membership", |_| {});
    let p = Proxy::start_from_file(&path).await.unwrap();
    let mut c = client(&p, None).await;
    for _ in 0..20 {
        server_id(&mut c, "SELECT @@server_id").await;
    }
    let replica1 = topology().servers[1].address();
    rewrite(&path, |cfg| {
        cfg.backends.push(sluice::config::Backend {
            name: "db3".into(),
            address: replica1.clone(),
            role: sluice::config::Role::Replica,
            weight: 5,
            tls: None,
            groups: Vec::new(),
        })
    });
    let t = Instant::now();
    while metric(&p, r#"sluice_queries_total{backend="db3",route="read"}"#).await < 1.0 {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the added replica takes reads"
        );
        server_id(&mut c, "SELECT @@server_id").await;
    }
    println!(
        "added replica took its first read {:?} after the edit",
        t.elapsed()
    );
    rewrite(&path, |cfg| cfg.backends.retain(|b| b.name != "db2"));
    // (a streak of reads elsewhere alone proves little: db3's weight 5 makes one likely)
    let t = Instant::now();
    while backend_status(&p, "db2").await["removed"] != true {
        assert!(t.elapsed() < Duration::from_secs(3), "the removal applies");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    until_avoided(&mut c, 3, 50, Duration::from_secs(3)).await;
    println!(
        "removed replica out of rotation {:?} after the edit",
        t.elapsed()
    );
    let st = backend_status(&p, "db2").await;
    assert_eq!(st["removed"], true, "{st}");
    assert_eq!(
        st["pool"]["idle"], 0,
        "its idle connections are closed: {st}"
    );
    p.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_reload_needs_the_token_and_config_is_redacted() {
    let path = config_file("token", |cfg| cfg.admin.token = Some("s3cret".into()));
    let p = Proxy::start_from_file(&path).await.unwrap();
    let post = |token| admin(&p, "POST", "/reload", "", token);
    assert_eq!(post(None).await.0, 401);
    assert_eq!(post(Some("wrong")).await.0, 401);
    let (code, ok) = post(Some("s3cret")).await;
    assert_eq!(code, 200, "{ok}");
    let (code, cfg) = admin_get(&p, "/config").await;
    assert_eq!(code, 200);
    assert!(
        !cfg.contains("apppass") && !cfg.contains("s3cret") && !cfg.contains("monitorpass"),
        "{cfg}"
    );
    assert!(cfg.contains("***"));
    let (code, _) = admin_get(&p, "/ready").await;
    assert_eq!(code, 200);
    p.shutdown().await;
}
