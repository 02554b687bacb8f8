//! What a pooled connection carries for its pool (set and read by `crate::pool`; the
//! connection only holds them, so that dropping it anywhere releases them).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::OwnedSemaphorePermit;

/// Counts a connection among the backend's open ones until it is dropped (closed), wherever
/// that happens (returned broken, reset failed, killed, evicted, pool closed).
pub struct Counted(pub(crate) Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What a parked connection carries for the pool.
pub struct Parked {
    pub(crate) permit: OwnedSemaphorePermit,
    pub(crate) slot: usize,
    /// `coarse_ms()` when it was returned.
    pub(crate) since: u64,
}
