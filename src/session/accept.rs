//! Accepting clients: connection cap, accept-error backoff, one task per session.

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
                crate::timer::sleep(Duration::from_millis(100)).await;
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
                super::serve(sh, stream, h2).await;
            },
            move |abort| *handle.abort.lock() = Some(abort),
        );
    }
}
