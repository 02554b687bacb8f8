//! The compressed protocol through Sluice (in a process of its own: its 20 MB reply would
//! disturb the memory measurements of tests/protocol.rs).
#![allow(clippy::disallowed_methods)] // clients of the proxy: tokio timers are theirs

mod common;
use common::*;
use mysql_async::prelude::*;

/// The compressed protocol (`CLIENT_COMPRESS`): a driver and the `mariadb` CLI get through
/// Sluice what they get without it: large and multi-row replies, prepared statements,
/// writes, a pipelined multi-statement and LOAD DATA LOCAL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compressed_protocol_works_through_sluice() {
    let db = database("compressed").await;
    let p = proxy(config()).await;
    let compressed = opts(&p, Some(&db)).compression(Some(mysql_async::Compression::fast()));
    let mut c = mysql_async::Conn::new(compressed).await.unwrap();
    // the client's own connection is compressed (the backend's leg is not)
    let on: Option<(String, String)> = c
        .query_first("SHOW STATUS LIKE 'Compression'")
        .await
        .unwrap();
    assert_eq!(on, Some(("Compression".into(), "ON".into())));
    c.query_drop("CREATE TABLE z (id INT PRIMARY KEY, v TEXT)")
        .await
        .unwrap();
    for i in 0..50 {
        c.exec_drop("INSERT INTO z VALUES (?, REPEAT('v', ?))", (i, i * 1000))
            .await
            .unwrap();
    }
    let rows: Vec<(i32, String)> = c.query("SELECT id, v FROM z ORDER BY id").await.unwrap();
    assert_eq!(rows.len(), 50);
    assert!(rows.iter().all(|(i, v)| v.len() == *i as usize * 1000));
    // a reply of several compressed frames (over 16 MiB uncompressed)
    let big: Option<String> = c.query_first("SELECT REPEAT('x', 20000000)").await.unwrap();
    assert_eq!(big.map(|s| s.len()), Some(20_000_000));
    let n: Option<i64> = c
        .exec_first("SELECT COUNT(*) FROM z WHERE id >= ?", (10,))
        .await
        .unwrap();
    assert_eq!(n, Some(40));
    c.disconnect().await.unwrap();

    let file = std::env::temp_dir().join(format!("sluice-zinfile-{}.csv", std::process::id()));
    std::fs::write(&file, "100,a\n101,b\n").unwrap();
    let sql = format!(
        "LOAD DATA LOCAL INFILE '{}' INTO TABLE z FIELDS TERMINATED BY ','; \
         SELECT COUNT(*) AS n, SUM(LENGTH(v)) AS l FROM z FOR UPDATE; \
         SHOW STATUS LIKE 'compression';",
        file.display()
    );
    let port = p.addr.port().to_string();
    let args = ["-h", "127.0.0.1", "-P", &port, "-u", "app", "-papppass"];
    let out = tokio::process::Command::new("mariadb")
        .args(args)
        .args(["--compress", "--local-infile=1", "--batch", &db, "-e", &sql])
        .output()
        .await
        .unwrap();
    let _ = std::fs::remove_file(&file);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("n\tl\n52\t1225002\n"), "{stdout}");
    assert!(stdout.contains("Compression\tON"), "{stdout}");
    // and without compression the same statement says so
    let mut plain = client(&p, None).await;
    let off: Option<(String, String)> = plain
        .query_first("SHOW STATUS LIKE 'Compression'")
        .await
        .unwrap();
    assert_eq!(off, Some(("Compression".into(), "OFF".into())));
}
