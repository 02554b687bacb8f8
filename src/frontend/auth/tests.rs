//! Unit tests of client authentication: password checks and whole logins over a pipe.

use super::*;

#[test]
fn verify_native_and_sha2() {
    let n = nonce();
    let good = scramble_native(&n, b"pw").unwrap();
    assert!(verify(NATIVE, &good, &n, "pw"));
    assert!(!verify(NATIVE, &good, &n, "other"));
    let good = scramble_sha256(&n, b"pw").unwrap();
    assert!(verify(SHA2, &good, &n, "pw"));
    assert!(!verify(NATIVE, &good, &n, "pw"));
    assert!(verify(NATIVE, &[], &n, ""));
    assert!(!verify(NATIVE, &[], &n, "pw"));
    assert!(n.iter().all(|b| (0x21..0x7F).contains(b)));
}

#[test]
fn extended_metadata_only_for_mariadb_10_5_and_later() {
    assert!(offers_extended_metadata(
        "5.5.5-10.11.19-MariaDB-0+deb12u1-log-sluice"
    ));
    assert!(offers_extended_metadata("11.4.2-MariaDB-sluice"));
    assert!(!offers_extended_metadata("5.5.5-10.4.30-MariaDB-sluice"));
    assert!(!offers_extended_metadata("8.4.0-sluice"));
}

/// The server side of whole logins over an in-memory pipe.
mod handshake {
    use super::*;
    use mysql_common::packets::AuthPlugin;

    /// Runs the server side of a login over an in-memory pipe with a client that answers
    /// with `plugin`; returns the packets the client received after its response.
    async fn login_with(plugin: AuthPlugin<'static>, password: &str) -> Vec<Vec<u8>> {
        let (srv, cli) = tokio::io::duplex(1 << 16);
        let (sr, sw) = tokio::io::split(srv);
        let users = vec![User {
            name: "app".into(),
            password: "pw".into(),
            password_hash: None,
            require_tls: false,
            max_connections: 0,
        }];
        let server = tokio::spawn(async move {
            let (mut r, mut w) = (PacketReader::new(sr), PacketWriter::new(sw));
            let hs = Handshake {
                requires_tls: None,
                r: &mut r,
                w: &mut w,
                users: &users,
                accounts: None,
                server_version: "8.0-test",
                connection_id: 1,
                peer_host: "t".into(),
                tls: false,
                on_reject: None,
            };
            let res = hs.run().await;
            if let Ok((_, mut seq)) = res {
                w.write_packet(&mut seq, &crate::protocol::reply::ok(0, 0, 2, 0))
                    .await
                    .unwrap();
                w.flush().await.unwrap();
            }
        });
        let (cr, cw) = tokio::io::split(cli);
        let (mut r, mut w) = (PacketReader::new(cr), PacketWriter::new(cw));
        let mut buf = Vec::new();
        r.read_logical(&mut buf, 1 << 20).await.unwrap();
        let hs = HandshakePacket::deserialize((), &mut ParseBuf(&buf)).unwrap();
        let nonce: [u8; 20] = hs.nonce()[..20].try_into().unwrap();
        let data = match plugin {
            AuthPlugin::CachingSha2Password => scramble_sha256(&nonce, password.as_bytes())
                .unwrap()
                .to_vec(),
            _ => scramble_native(&nonce, password.as_bytes())
                .unwrap()
                .to_vec(),
        };
        let caps = CapabilityFlags::CLIENT_PROTOCOL_41
            | CapabilityFlags::CLIENT_SECURE_CONNECTION
            | CapabilityFlags::CLIENT_PLUGIN_AUTH;
        let resp = HandshakeResponse::new(
            Some(&data[..]),
            (8, 0, 36),
            Some(&b"app"[..]),
            None::<&[u8]>,
            Some(plugin),
            caps,
            None,
            1 << 24,
        );
        let mut out = Vec::new();
        resp.serialize(&mut out);
        w.write_packet(&mut 1, &out).await.unwrap();
        w.flush().await.unwrap();
        let mut got = Vec::new();
        loop {
            let mut p = Vec::new();
            if r.read_logical(&mut p, 1 << 20).await.is_err() {
                break;
            }
            let done = matches!(p[0], 0x00 | 0xFF | 0xFE);
            got.push(p);
            if done {
                break;
            }
        }
        server.abort();
        got
    }

    #[tokio::test]
    async fn sha2_fast_path() {
        let got = login_with(AuthPlugin::CachingSha2Password, "pw").await;
        assert_eq!(
            got,
            vec![vec![0x01, 0x03], crate::protocol::reply::ok(0, 0, 2, 0)]
        );
        // a wrong sha2 scramble: the client is asked to switch to mysql_native_password
        let got = login_with(AuthPlugin::CachingSha2Password, "bad").await;
        let last = got.last().unwrap();
        assert_eq!(last[0], 0xFE);
        assert!(last.windows(NATIVE.len()).any(|w| w == NATIVE));
    }

    #[tokio::test]
    async fn native() {
        let got = login_with(AuthPlugin::MysqlNativePassword, "pw").await;
        assert_eq!(got, vec![crate::protocol::reply::ok(0, 0, 2, 0)]);
        let got = login_with(AuthPlugin::MysqlNativePassword, "bad").await;
        assert_eq!(got.last().unwrap()[0], 0xFF);
    }
}
