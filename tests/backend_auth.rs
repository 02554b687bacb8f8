//! Backend authentication corner cases against a small in-process fake MySQL 8 server:
//! caching_sha2_password fast path and full authentication with the server's RSA key.
#![allow(clippy::disallowed_methods)] // clients of the proxy: tokio timers are theirs

use mysql_common::constants::{CapabilityFlags, StatusFlags};
use mysql_common::io::ParseBuf;
use mysql_common::packets::{HandshakePacket, HandshakeResponse};
use mysql_common::proto::{MyDeserialize, MySerialize};
use rsa::pkcs8::EncodePublicKey;
use rsa::{Oaep, RsaPrivateKey};
use sluice::backend::{BackendConn, ConnectOpts};
use sluice::protocol::packet::{PacketReader, PacketWriter};
use sluice::protocol::reply;
use std::time::Duration;
use tokio::net::TcpListener;

const PASSWORD: &str = "s3cret-pw";

/// Serves one connection: caching_sha2 handshake; `full` forces full authentication (as
/// after a server restart, when the password cache is empty). Returns what the server saw.
async fn fake_mysql8(
    listener: TcpListener,
    full: bool,
    key: RsaPrivateKey,
) -> Result<&'static str, String> {
    let (sock, _) = listener.accept().await.map_err(|e| e.to_string())?;
    let (r, w) = sock.into_split();
    let (mut r, mut w) = (PacketReader::new(r), PacketWriter::new(w));
    let nonce: [u8; 20] = *b"abcdefghijklmnopqrst";
    let mut s2 = nonce[8..].to_vec();
    s2.push(0);
    let caps = CapabilityFlags::CLIENT_PROTOCOL_41
        | CapabilityFlags::CLIENT_SECURE_CONNECTION
        | CapabilityFlags::CLIENT_PLUGIN_AUTH
        | CapabilityFlags::CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
        | CapabilityFlags::CLIENT_DEPRECATE_EOF
        | CapabilityFlags::CLIENT_LONG_PASSWORD
        | CapabilityFlags::CLIENT_TRANSACTIONS
        | CapabilityFlags::CLIENT_MULTI_STATEMENTS
        | CapabilityFlags::CLIENT_MULTI_RESULTS;
    let hs = HandshakePacket::new(
        10,
        &b"8.4.0-fake"[..],
        42,
        nonce[..8].try_into().unwrap(),
        Some(s2),
        caps,
        255,
        StatusFlags::SERVER_STATUS_AUTOCOMMIT,
        Some(&b"caching_sha2_password"[..]),
    );
    let mut out = Vec::new();
    hs.serialize(&mut out);
    let mut seq = 0;
    w.write_packet(&mut seq, &out).await.unwrap();
    w.flush().await.unwrap();
    let mut buf = Vec::new();
    seq = r
        .read_logical(&mut buf, 1 << 20)
        .await
        .unwrap()
        .wrapping_add(1);
    let resp =
        HandshakeResponse::deserialize((), &mut ParseBuf(&buf)).map_err(|e| e.to_string())?;
    let expected = mysql_common::auth::plugins::caching_sha2_password::scramble_sha256(
        &nonce,
        PASSWORD.as_bytes(),
    )
    .unwrap();
    if resp.scramble_buf() != expected {
        return Err("wrong fast-auth scramble".into());
    }
    if !full {
        w.write_packet(&mut seq, &[0x01, 0x03]).await.unwrap();
        w.write_packet(&mut seq, &reply::ok(0, 0, 2, 0))
            .await
            .unwrap();
        w.flush().await.unwrap();
        return Ok("fast");
    }
    // perform full authentication: the client asks for the key and answers encrypted
    w.write_packet(&mut seq, &[0x01, 0x04]).await.unwrap();
    w.flush().await.unwrap();
    seq = r
        .read_logical(&mut buf, 1 << 20)
        .await
        .unwrap()
        .wrapping_add(1);
    if buf != [0x02] {
        return Err(format!("expected a public key request, got {buf:?}"));
    }
    let pem = key
        .to_public_key()
        .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
        .unwrap();
    let mut more = vec![0x01];
    more.extend_from_slice(pem.as_bytes());
    w.write_packet(&mut seq, &more).await.unwrap();
    w.flush().await.unwrap();
    seq = r
        .read_logical(&mut buf, 1 << 20)
        .await
        .unwrap()
        .wrapping_add(1);
    let plain = key
        .decrypt(Oaep::new::<sha1::Sha1>(), &buf)
        .map_err(|e| format!("decrypt: {e}"))?;
    let pass: Vec<u8> = plain
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ nonce[i % nonce.len()])
        .collect();
    let mut want = PASSWORD.as_bytes().to_vec();
    want.push(0);
    if pass != want {
        w.write_packet(&mut seq, &reply::err(1045, "28000", "Access denied"))
            .await
            .unwrap();
        w.flush().await.unwrap();
        return Err("wrong password after RSA decryption".into());
    }
    w.write_packet(&mut seq, &reply::ok(0, 0, 2, 0))
        .await
        .unwrap();
    w.flush().await.unwrap();
    Ok("full")
}

async fn run(full: bool, password: &str) -> (Result<&'static str, String>, Result<(), String>) {
    let key = RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 1024).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = tokio::spawn(fake_mysql8(listener, full, key));
    let opts = ConnectOpts {
        address: addr,
        user: "app".into(),
        password: password.into(),
        native_hash1: None,
        database: None,
        flavour: Default::default(),
        tls: None,
        timeout: Duration::from_secs(5),
    };
    let client = BackendConn::connect(&opts)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string());
    (server.await.unwrap(), client)
}

#[tokio::test]
async fn caching_sha2_fast_path() {
    let (server, client) = run(false, PASSWORD).await;
    assert_eq!(server, Ok("fast"));
    assert_eq!(client, Ok(()));
}

#[tokio::test]
async fn caching_sha2_full_authentication_with_the_servers_rsa_key() {
    let (server, client) = run(true, PASSWORD).await;
    assert_eq!(server, Ok("full"));
    assert_eq!(client, Ok(()));
}
