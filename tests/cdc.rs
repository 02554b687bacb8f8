//! Change-data-capture clients through Sluice: `mariadb-binlog --read-from-remote-server`
//! (COM_REGISTER_SLAVE, COM_BINLOG_DUMP) reads the primary's binary log through Sluice
//! exactly as it reads it direct.
#![allow(clippy::disallowed_methods)] // clients of the proxy: tokio timers are theirs

mod common;
use common::*;

async fn mariadb_binlog(port: u16, file: &str) -> (bool, String, String) {
    let out = tokio::process::Command::new("mariadb-binlog")
        .args([
            "--read-from-remote-server",
            "--host=127.0.0.1",
            "--user=cdc",
        ])
        .arg("--password=cdcpw")
        .arg(format!("--port={port}"))
        .arg(file)
        .output()
        .await
        .expect("mariadb-binlog (Debian package mariadb-client)");
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    (out.status.success(), text(out.stdout), text(out.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_binlog_reads_the_primary_log_through_sluice_as_direct() {
    user("cdc", "cdcpw").await;
    let t = topology();
    t.sql(
        0,
        "GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO 'cdc'@'127.0.0.1'",
    )
    .await
    .unwrap();
    let db = database("cdc_db").await;
    t.sql(
        0,
        &format!("CREATE TABLE {db}.cdc_marker_tbl (id INT PRIMARY KEY)"),
    )
    .await
    .unwrap();
    t.sql(0, &format!("INSERT INTO {db}.cdc_marker_tbl VALUES (42)"))
        .await
        .unwrap();
    let logs = t.sql(0, "SHOW BINARY LOGS").await.unwrap();
    let file = logs.rows.last().unwrap()[0].clone().unwrap();
    let p = proxy(config_for("cdc", "cdcpw")).await;
    let (ok, through, err) = mariadb_binlog(p.addr.port(), &file).await;
    assert!(ok, "through Sluice: {err}");
    assert!(through.contains("cdc_marker_tbl"), "{through}");
    let (ok, direct, err) = mariadb_binlog(t.servers[0].port, &file).await;
    assert!(ok, "direct: {err}");
    // the log may have grown between the two reads (other tests, the monitor's heartbeat):
    // what Sluice relayed is the start of what the server sends
    let upto = through.rfind("# at ").unwrap();
    assert_eq!(&through[..upto], &direct[..upto]);
    // the session is still usable, and the stream's connection was not pooled
    let mut c = mysql_async::Conn::new(opts(&p, None).user(Some("cdc")).pass(Some("cdcpw")))
        .await
        .unwrap();
    use mysql_async::prelude::*;
    let one: Option<i64> = c.query_first("SELECT 1").await.unwrap();
    assert_eq!(one, Some(1));
}
