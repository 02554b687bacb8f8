//! Wire-level behaviour through Sluice: auth plugins, COM_CHANGE_USER, streaming, LOCAL
//! INFILE, COM_STATISTICS — against the real topology.
#![allow(clippy::disallowed_methods)] // clients of the proxy: tokio timers are theirs

mod common;
use common::*;
use mysql_async::prelude::*;
use mysql_common::auth::plugins::caching_sha2_password::scramble_sha256;
use mysql_common::constants::CapabilityFlags;
use mysql_common::io::ParseBuf;
use mysql_common::packets::{AuthPlugin, HandshakePacket, HandshakeResponse};
use mysql_common::proto::{MyDeserialize, MySerialize};
use sluice::protocol::packet::{PacketReader, PacketWriter};
use sluice::protocol::reply;
use tokio::net::TcpStream;

/// Logs in with caching_sha2_password (as MySQL 8 clients do by default); returns the
/// packets the server sent after the handshake response.
async fn sha2_login(
    port: u16,
    password: &str,
) -> (
    Vec<Vec<u8>>,
    PacketReader<tokio::net::tcp::OwnedReadHalf>,
    PacketWriter<tokio::net::tcp::OwnedWriteHalf>,
) {
    let (r, w) = TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap()
        .into_split();
    let (mut r, mut w) = (PacketReader::new(r), PacketWriter::new(w));
    let mut buf = Vec::new();
    r.read_logical(&mut buf, 1 << 20).await.unwrap();
    let hs = HandshakePacket::deserialize((), &mut ParseBuf(&buf)).unwrap();
    let nonce: [u8; 20] = hs.nonce()[..20].try_into().unwrap();
    let scramble = scramble_sha256(&nonce, password.as_bytes()).unwrap();
    let caps = CapabilityFlags::CLIENT_PROTOCOL_41
        | CapabilityFlags::CLIENT_SECURE_CONNECTION
        | CapabilityFlags::CLIENT_PLUGIN_AUTH
        | CapabilityFlags::CLIENT_DEPRECATE_EOF
        | CapabilityFlags::CLIENT_LONG_PASSWORD;
    let resp = HandshakeResponse::new(
        Some(&scramble[..]),
        (8, 0, 36),
        Some(&b"app"[..]),
        None::<&[u8]>,
        Some(AuthPlugin::CachingSha2Password),
        caps,
        None,
        1 << 24,
    );
    let mut out = Vec::new();
    resp.serialize(&mut out);
    let mut seq = 1;
    w.write_packet(&mut seq, &out).await.unwrap();
    w.flush().await.unwrap();
    let mut got = Vec::new();
    loop {
        let mut p = Vec::new();
        let seq = r.read_logical(&mut p, 1 << 20).await.unwrap();
        if p[0] == 0xFE {
            // auth switch (to mysql_native_password): answer it like a client library does
            let sw = mysql_common::packets::AuthSwitchRequest::deserialize((), &mut ParseBuf(&p))
                .unwrap();
            let data = mysql_common::auth::plugins::mysql_native_password::scramble_native(
                sw.plugin_data(),
                password.as_bytes(),
            )
            .unwrap();
            w.write_packet(&mut seq.wrapping_add(1), &data)
                .await
                .unwrap();
            w.flush().await.unwrap();
        }
        let done = p[0] == 0x00 || p[0] == 0xFF;
        got.push(p);
        if done {
            return (got, r, w);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caching_sha2_password_clients_take_the_fast_path() {
    let p = proxy(config()).await;
    let (got, mut r, mut w) = sha2_login(p.addr.port(), sluice::sandbox::APP_PASSWORD).await;
    assert_eq!(got[0], vec![0x01, 0x03], "fast-auth success marker");
    assert_eq!(got[1][0], 0x00, "then OK");
    let mut seq = 0;
    w.write_packet(&mut seq, b"\x03SELECT 42").await.unwrap();
    w.flush().await.unwrap();
    let mut p1 = Vec::new();
    r.read_logical(&mut p1, 1 << 20).await.unwrap();
    assert_eq!(p1, vec![1], "one column");

    let (got, _, _) = sha2_login(p.addr.port(), "wrong").await;
    let last = got.last().unwrap();
    assert_eq!(last[0], 0xFF);
    assert_eq!(u16::from_le_bytes([last[1], last[2]]), 1045);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_user_reauthenticates_and_resets_the_session() {
    let db = database("proto_change_user").await;
    let p = proxy(config()).await;
    let mut c = client(&p, None).await;
    c.query_drop("SET @v = 1").await.unwrap();
    let opts = mysql_async::ChangeUserOpts::default()
        .with_user(Some("app".into()))
        .with_pass(Some("apppass".into()))
        .with_db_name(Some(db.clone()));
    c.change_user(opts).await.unwrap();
    let (v, d): (Option<u32>, String) = c
        .query_first("SELECT @v, DATABASE()")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(v, None);
    assert_eq!(d, db);
    let bad = mysql_async::ChangeUserOpts::default()
        .with_user(Some("app".into()))
        .with_pass(Some("nope".into()));
    assert!(c.change_user(bad).await.is_err());
}

/// Sluice's memory stays flat while a slow client reads a 200 MB result. The client is the
/// `mariadb` CLI in its own process, so the resident memory measured here is Sluice's (an
/// in-process client library's buffers would count too), and it reads through a pipe the
/// test drains (the CLI and the test are slower than Sluice, so Sluice must wait for the
/// client rather than buffer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_million_rows_stream_without_growing_memory() {
    use tokio::io::AsyncReadExt;
    let db = database("proto_stream").await;
    let p = proxy(config()).await;
    let before = rss_kib();
    let mut cli = tokio::process::Command::new("mariadb")
        .args(["-h", "127.0.0.1", "-P", &p.addr.port().to_string()])
        .args([
            "-u",
            "app",
            "-papppass",
            "--quick",
            "--batch",
            "-N",
            &db,
            "-e",
        ])
        .arg("SELECT seq, REPEAT('x', 200) FROM seq_1_to_1000000")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("mariadb CLI");
    let mut out = cli.stdout.take().unwrap();
    let (mut rows, mut bytes, mut peak) = (0u64, 0u64, before);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = out.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        rows += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        bytes += n as u64;
        if bytes % (8 << 20) < n as u64 {
            peak = peak.max(rss_kib());
        }
    }
    assert!(cli.wait().await.unwrap().success());
    assert_eq!(rows, 1_000_000);
    assert!(bytes >= 200_000_000);
    let growth_mib = (peak.saturating_sub(before)) / 1024;
    assert!(
        growth_mib < 64,
        "{} MiB of rows went through; Sluice's resident memory grew by {growth_mib} MiB",
        bytes >> 20
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_data_local_infile_and_statistics_via_the_cli() {
    let db = database("proto_infile").await;
    let p = proxy(config()).await;
    let mut c = client(&p, Some(&db)).await;
    c.query_drop("CREATE TABLE f (a INT, b VARCHAR(10))")
        .await
        .unwrap();
    let file = std::env::temp_dir().join(format!("sluice-infile-{}.csv", std::process::id()));
    std::fs::write(&file, "1,one\n2,two\n3,three\n").unwrap();
    let port = p.addr.port().to_string();
    let sql = format!(
        "LOAD DATA LOCAL INFILE '{}' INTO TABLE f FIELDS TERMINATED BY ','; SELECT COUNT(*) AS n FROM f FOR UPDATE;",
        file.display()
    );
    let out = tokio::process::Command::new("mariadb")
        .args([
            "-h",
            "127.0.0.1",
            "-P",
            &port,
            "-u",
            "app",
            "-papppass",
            "--local-infile=1",
            "--batch",
            &db,
            "-e",
            &sql,
        ])
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
    assert!(stdout.contains("n\n3\n"), "{stdout}");

    let out = tokio::process::Command::new("mariadb-admin")
        .args([
            "-h",
            "127.0.0.1",
            "-P",
            &port,
            "-u",
            "app",
            "-papppass",
            "status",
        ])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Uptime"),
        "COM_STATISTICS answer: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_cursor_fetch() {
    let p = proxy(config()).await;
    for deprecate_eof in [true, false] {
        let (mut r, mut w) = raw_login(p.addr.port(), deprecate_eof).await;
        let mut prep = vec![0x16];
        prep.extend_from_slice(b"SELECT 1 AS n UNION ALL SELECT 2 UNION ALL SELECT 3");
        w.write_packet(&mut 0, &prep).await.unwrap();
        w.flush().await.unwrap();
        let mut ok = Vec::new();
        r.read_logical(&mut ok, 1 << 20).await.unwrap();
        assert_eq!(ok[0], 0x00, "prepare OK");
        let id = u32::from_le_bytes(ok[1..5].try_into().unwrap());
        let cols = u16::from_le_bytes(ok[5..7].try_into().unwrap());
        for _ in 0..cols {
            r.read_logical(&mut Vec::new(), 1 << 20).await.unwrap();
        }
        if !deprecate_eof && cols > 0 {
            r.read_logical(&mut Vec::new(), 1 << 20).await.unwrap();
        }
        // execute with a read-only cursor: metadata and a terminator, no rows yet
        let mut exec = vec![0x17];
        exec.extend_from_slice(&id.to_le_bytes());
        exec.push(0x01);
        exec.extend_from_slice(&1u32.to_le_bytes());
        w.write_packet(&mut 0, &exec).await.unwrap();
        w.flush().await.unwrap();
        let meta = read_until_terminator(&mut r).await;
        assert_ne!(meta.last().unwrap()[0], 0xFF, "execute failed: {meta:?}");
        // fetch 2 rows, then the rest
        let mut rows = 0;
        for _ in 0..3 {
            let mut fetch = vec![0x1C];
            fetch.extend_from_slice(&id.to_le_bytes());
            fetch.extend_from_slice(&2u32.to_le_bytes());
            w.write_packet(&mut 0, &fetch).await.unwrap();
            w.flush().await.unwrap();
            let got = read_until_terminator(&mut r).await;
            assert_ne!(got.last().unwrap()[0], 0xFF, "fetch failed: {got:?}");
            rows += got.len() - 1;
            let term = got.last().unwrap();
            let status = if term.len() >= 5 && !deprecate_eof {
                u16::from_le_bytes([term[3], term[4]])
            } else {
                reply::parse_ok(term).map(|o| o.status).unwrap_or(0)
            };
            if status & 0x0080 != 0 {
                break; // last row sent
            }
        }
        assert_eq!(
            rows, 3,
            "all rows fetched (deprecate_eof = {deprecate_eof})"
        );
        // the stream is in sync: the next packet answers a ping
        w.write_packet(&mut 0, &[0x0E]).await.unwrap();
        w.flush().await.unwrap();
        let mut pong = Vec::new();
        r.read_logical(&mut pong, 1 << 20).await.unwrap();
        assert_eq!(
            pong[0], 0x00,
            "stray packet after the cursor (deprecate_eof = {deprecate_eof}): {pong:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn change_user_to_an_unknown_user_is_refused_with_1045_and_the_session_goes_on() {
    let p = proxy(config()).await;
    let mut c = client(&p, None).await;
    let opts = mysql_async::ChangeUserOpts::default()
        .with_user(Some("nobody_here".into()))
        .with_pass(Some("wrong".into()));
    match c.change_user(opts).await {
        Err(mysql_async::Error::Server(e)) => assert_eq!(e.code, 1045, "{e}"),
        other => panic!("expected ERR 1045, got {other:?}"),
    }
    // still logged in as before, like a server keeps the previous user
    let user: Option<String> = c.query_first("SELECT CURRENT_USER()").await.unwrap();
    assert!(user.unwrap_or_default().starts_with("app@"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_that_ignore_spaces_get_backend_connections_that_do() {
    let p = proxy(config()).await;
    let port = p.addr.port().to_string();
    // `mariadb -i` asks for CLIENT_IGNORE_SPACE: `COUNT (*)` is then a function call, on a
    // replica (a read) and on the primary (in a transaction) alike; without it, ERR 1064
    for (flag, ok) in [("-i", true), ("--batch", false)] {
        let out = tokio::process::Command::new("mariadb")
            .args(["-h", "127.0.0.1", "-P", &port, "-u", "app", "-papppass", flag])
            .args(["-N", "-e", "SELECT COUNT (*) FROM (SELECT 1) t; BEGIN; SELECT COUNT (*) FROM (SELECT 1) t; COMMIT"])
            .output()
            .await
            .expect("run the mariadb client");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.success(), ok, "{flag}: {text}");
        if ok {
            assert_eq!(text, "1\n1\n", "{flag}");
        } else {
            assert!(text.contains("1064"), "{flag}: {text}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_database_invalid_in_the_clients_character_set_is_refused_as_direct() {
    // mtr's mysql_not_windows: the server reads the name in the client's character set
    let p = proxy(config()).await;
    let login = |port: u16, charset: &'static str| async move {
        let out = tokio::process::Command::new("mariadb")
            .args([
                "-h",
                "127.0.0.1",
                "-P",
                &port.to_string(),
                "-u",
                "app",
                "-papppass",
            ])
            .arg(format!("--default-character-set={charset}"))
            .args(["-e", "SELECT 1", "test\u{1F601} "])
            .output()
            .await
            .expect("run the mariadb client");
        String::from_utf8_lossy(&out.stderr).trim().to_string()
    };
    let direct = topology().servers[0].port;
    for charset in ["utf8", "binary", "utf8mb4"] {
        let (d, s) = (
            login(direct, charset).await,
            login(p.addr.port(), charset).await,
        );
        assert!(d.contains("1300"), "{charset} direct: {d}");
        assert_eq!(s, d, "{charset}");
    }
}
