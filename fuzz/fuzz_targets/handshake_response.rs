//! A client's handshake response (and what follows it): login never panics.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sluice::config::User;
use sluice::frontend::auth::Handshake;
use sluice::protocol::packet::{PacketReader, PacketWriter};

fuzz_target!(|data: &[u8]| {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    rt.block_on(async {
        let users = vec![User {
            name: "app".into(),
            password: "pw".into(),
            password_hash: None,
            require_tls: false,
            max_connections: 0,
        }];
        // the first half is the response, the rest what the client sends after it
        let (resp, rest) = data.split_at(data.len() / 2);
        let mut r = PacketReader::new(rest);
        let mut w = PacketWriter::new(tokio::io::sink());
        let hs = Handshake {
            r: &mut r,
            w: &mut w,
            users: &users,
            accounts: None,
            server_version: "5.5.5-10.11.0-MariaDB-sluice",
            connection_id: 1,
            peer_host: "fuzz".into(),
        };
        let _ = hs.login(*b"abcdefghij0123456789", resp, 2).await;
    });
});
