//! Affinity: a session's connection, returned clean, waits in a cell of its own (one of a
//! few per session worker, chosen by session id) still holding its semaphore permit. The
//! session's next checkout of the same slot takes it back with one atomic swap, skipping the
//! idle list's lock and the semaphore: a client running statement after statement gets its
//! own connection back. Two sessions sharing a cell displace each other to the idle list.
//!
//! A parked connection counts against the limit like a busy one, so it must never keep a
//! waiter waiting: a checkout that has to wait for a permit first moves every parked
//! connection to the idle list (releasing the permits), and a return made while someone waits
//! goes to the idle list. Each side announces itself before looking at the other (sequentially
//! consistent), so at least one of them sees the other.

use crate::backend::BackendConn;
use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering::SeqCst};

/// Workers with cells (0 is outside the workers); connections of others use the idle list.
const LANES: usize = 16;
/// Cells per worker.
const PER_LANE: usize = 16;

pub(super) struct Hot {
    /// Each non-null pointer owns a `Box<BackendConn>` whose `parked` is set.
    cells: Box<[AtomicPtr<BackendConn>]>,
    /// Checkouts waiting for a permit.
    waiting: AtomicUsize,
    /// Cells in use (an upper bound while swaps are under way): waiters skip the scan at 0.
    parked: AtomicUsize,
}

/// The cell of session `affinity` on worker `lane`, if that worker has cells.
pub(super) fn cell(lane: u16, affinity: u32) -> Option<usize> {
    let lane = lane as usize;
    (lane < LANES).then(|| lane * PER_LANE + affinity as usize % PER_LANE)
}

impl Hot {
    pub(super) fn new() -> Self {
        Self {
            cells: (0..LANES * PER_LANE)
                .map(|_| AtomicPtr::new(ptr::null_mut()))
                .collect(),
            waiting: AtomicUsize::new(0),
            parked: AtomicUsize::new(0),
        }
    }

    /// Puts `conn` (or nothing) in cell `at` (from `cell`); returns what was there. `conn`
    /// must carry its `Parked`.
    pub(super) fn swap(
        &self,
        at: usize,
        conn: Option<Box<BackendConn>>,
    ) -> Option<Box<BackendConn>> {
        let new = conn.map_or(ptr::null_mut(), Box::into_raw);
        if !new.is_null() {
            self.parked.fetch_add(1, SeqCst);
        }
        let old = self.cells[at].swap(new, SeqCst);
        if old.is_null() {
            return None;
        }
        self.parked.fetch_sub(1, SeqCst);
        // SAFETY: non-null cell pointers come from `Box::into_raw` above, and the swap hands
        // each to exactly one caller
        Some(unsafe { Box::from_raw(old) })
    }

    /// Whether a checkout waits for a permit (then nothing may be parked).
    pub(super) fn contended(&self) -> bool {
        self.waiting.load(SeqCst) > 0
    }

    /// Announces a checkout that waits for a permit until the guard is dropped (also when
    /// the wait is cancelled).
    pub(super) fn wait(&self) -> Waiting<'_> {
        self.waiting.fetch_add(1, SeqCst);
        Waiting(&self.waiting)
    }

    /// Empties every cell.
    pub(super) fn take_all(&self) -> impl Iterator<Item = Box<BackendConn>> + '_ {
        let any = self.parked.load(SeqCst) > 0;
        (0..self.cells.len())
            .filter(move |&at| any && !self.cells[at].load(SeqCst).is_null())
            .filter_map(|at| self.swap(at, None))
    }

    pub(super) fn count(&self) -> usize {
        self.parked.load(SeqCst)
    }
}

impl Drop for Hot {
    fn drop(&mut self) {
        self.take_all().for_each(drop);
    }
}

pub(super) struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}
