//! Gives memory freed by departed clients back to the system. glibc's allocator keeps freed
//! pages in its arenas (a burst of 10,000 clients would leave its peak RSS behind for good,
//! and the login buffers of idle clients would stay resident); every few seconds, if clients
//! came or went since the last look, `malloc_trim` returns the free pages. Costs nothing
//! while the set of clients is stable.

use crate::shared::Shared;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

const EVERY: Duration = Duration::from_secs(5);

pub fn spawn(shared: &Arc<Shared>, mut stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    let shared = shared.clone();
    tokio::spawn(async move {
        let mut seen = (0u64, 0u64);
        loop {
            tokio::select! {
                _ = crate::timer::sleep(EVERY) => {}
                _ = stop.changed() => return,
            }
            let total = shared.clients_total.load(Ordering::Relaxed);
            let open = shared.clients.load(Ordering::Relaxed) as u64;
            if (total, open) != seen {
                seen = (total, open);
                trim();
            }
        }
    })
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn trim() {
    // SAFETY: malloc_trim only walks the allocator's own free lists
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() {}
