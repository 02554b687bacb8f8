//! Accepting clients: connection cap, accept-error backoff, one task per session.

pub mod accounts;
pub mod auth;
pub mod login;
pub mod rsa_key;
pub mod throttle;
pub mod user_limit;

use crate::error::SqlError;
use crate::protocol::packet::PacketWriter;
use crate::shared::{SessionHandle, Shared};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Removes a session from the registry when its task ends (also when aborted).
struct Registered {
    shared: Arc<Shared>,
    id: u32,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.shared.sessions.lock().remove(&self.id);
        self.shared.clients.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn refuse(stream: TcpStream, e: SqlError) {
    let mut w = PacketWriter::new(stream);
    let _ = w.write_packet(&mut 0, &e.to_packet()).await;
    let _ = w.flush().await;
}

pub async fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    workers: Arc<crate::workers::Workers>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop.changed() => return,
        };
        let (stream, _) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let max = shared.config.load().listen.max_client_connections;
        if shared.clients.load(Ordering::Relaxed) >= max {
            tokio::spawn(refuse(
                stream,
                SqlError::new(
                    1040,
                    "08004",
                    "Too many connections (Sluice listen.max_client_connections)",
                ),
            ));
            continue;
        }
        shared.clients.fetch_add(1, Ordering::Relaxed);
        shared.clients_total.fetch_add(1, Ordering::Relaxed);
        shared.metrics.client_connections_total.inc();
        let id = shared.next_connection_id();
        let handle = Arc::new(SessionHandle::new(id));
        shared.sessions.lock().insert(id, handle.clone());
        let guard = Registered {
            shared: shared.clone(),
            id,
        };
        let sh = shared.clone();
        let h2 = handle.clone();
        workers.spawn(
            stream,
            move |stream, seat| async move {
                let _guard = (guard, seat);
                crate::session::serve(sh, stream, h2).await;
            },
            move |abort| *handle.abort.lock() = Some(abort),
        );
    }
}

/// The `password_hash` forms of `password`: `*` + hex SHA1(SHA1(pw)) (mysql_native_password)
/// and `0x` + hex of a caching_sha2_password string with a random salt (the hex form keeps
/// the salt's bytes TOML-safe).
pub fn password_hashes(password: &str) -> (String, String) {
    use crate::password::{native, sha2crypt};
    use rand::Rng;
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02X}")).collect::<String>();
    let native = format!("*{}", hex(&native::stored_of(password)));
    let mut rng = rand::rng();
    let salt: Vec<u8> = (0..20)
        .map(|_| rng.sample(rand::distr::Alphanumeric))
        .collect();
    let sha2 = sha2crypt::Sha2Crypt::new(password.as_bytes(), &salt, 5000);
    (native, format!("0x{}", hex(&sha2.to_bytes())))
}
