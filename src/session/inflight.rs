//! A statement on its way through a backend connection: the marks that say it is running
//! (for KILL, shutdown and a switchover's drain), the wait for the first reply byte while
//! watching the client, and what a connection that broke before replying tells about it.

use crate::pool::Lease;
use crate::protocol::packet::PacketReader;
use crate::protocol::stream::ClientRead;
use crate::shared::{SessionHandle, Shared};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;

/// Whether a connection that failed before any reply was closed by the server before it
/// could read the command: then it cannot have run. A connection failing otherwise (a reset,
/// a timeout) might have delivered it, so it counts as sent.
pub(super) fn closed_unread(e: &std::io::Error, lease: &Lease) -> bool {
    lease.r.get_ref().command_never_read(e.kind())
}

/// Waits until the backend starts answering (reading its first bytes into the lease's
/// buffer, where the relay finds them); `false` if the client disconnected first (the
/// lease is then dropped mid-command, so the pool kills the backend thread). Costs no
/// system call while the client is quiet: its socket's readiness was cleared by the read
/// of the command.
pub(super) async fn reply_or_client_left(
    client_r: &mut PacketReader<ClientRead>,
    lease: &mut Lease,
) -> std::io::Result<bool> {
    if lease.r.buffered() > 0 || client_r.buffered() > 0 {
        return Ok(true);
    }
    let client = client_r.get_ref();
    tokio::select! {
        biased;
        r = lease.r.fill_if_empty() => r.map(|()| true),
        _ = client.closed() => Ok(false),
    }
}

/// `reply_or_client_left` for a plain TCP client with nothing buffered on either side (the
/// caller checks): one poll function for both, no select and no nested futures. The
/// statement path's wait (`run_on`); other callers take `reply_or_client_left`.
pub(super) fn reply_or_tcp_client_left<'a>(
    client: &'a ClientRead,
    lease: &'a mut Lease,
) -> impl std::future::Future<Output = std::io::Result<bool>> + 'a {
    let mut watching = true;
    std::future::poll_fn(move |cx| {
        if let Poll::Ready(r) = lease.r.poll_fill(cx) {
            return Poll::Ready(r.map(|()| true));
        }
        client.poll_closed(cx, &mut watching).map(|()| Ok(false))
    })
}

/// A statement in flight: the session's `running` (for KILL and shutdown) and, on the
/// primary, the proxy's `primary_inflight` (a switchover drains it). Both come back down when
/// the statement ends, whichever way it ends, including a cancelled session task.
pub(super) struct InFlight<'a> {
    handle: &'a SessionHandle,
    primary: Option<&'a AtomicUsize>,
}

impl<'a> InFlight<'a> {
    pub(super) fn start(
        handle: &'a SessionHandle,
        shared: &'a Shared,
        backend: usize,
        thread_id: u32,
        on_primary: bool,
    ) -> Self {
        handle.set_running(backend, thread_id);
        let primary = on_primary.then_some(&shared.primary_inflight);
        if let Some(p) = primary {
            p.fetch_add(1, Ordering::Relaxed);
        }
        Self { handle, primary }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.handle.clear_running();
        if let Some(p) = self.primary {
            p.fetch_sub(1, Ordering::Relaxed);
        }
    }
}
