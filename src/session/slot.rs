//! The heap block a session runs its commands in, reused from command to command.
//!
//! A running command's state is kilobytes; carried inline it would size every idle session's
//! task, so it lives on the heap. Allocating and freeing that block per command went through
//! glibc's slow path (a large block) on every statement; the slot keeps it while the client is
//! busy and gives it back with the other buffers once the client is quiet. A client that runs
//! only a few commands (a driver's queries at connect time, then idle) does not keep one: its
//! block is freed at once, as a `Box` would be, so thousands of quiet clients hold none.

use std::alloc::{self, Layout};
use std::future::Future;
use std::pin::Pin;
use std::ptr::NonNull;
use std::task::{Context, Poll};

/// Commands a session runs (since it was last quiet) before it keeps its block between them.
const KEEP_AFTER: u32 = 16;

/// At most one block, free between commands.
#[derive(Default)]
pub(super) struct Slot {
    block: Option<(NonNull<u8>, Layout)>,
    /// Commands run since the slot was last released.
    runs: u32,
}

// SAFETY: the block is plain memory owned by the slot alone; no value lives in it while it is
// in the slot (a placed future is dropped before its block comes back).
unsafe impl Send for Slot {}

impl Slot {
    /// Builds the future `make` returns in the slot's block (allocated when missing or too
    /// small; built there, not moved in, when the compiler can) and returns the future that
    /// runs it; the command's state is dropped in place when that finishes or is dropped, and
    /// the block goes back to the slot.
    #[inline(always)]
    pub(super) fn place<F: Future>(&mut self, make: impl FnOnce() -> F) -> Placed<'_, F> {
        let need = Layout::new::<F>();
        // a zero-sized layout cannot be allocated: give every block at least one byte
        let need = Layout::from_size_align(need.size().max(1), need.align()).expect("layout");
        let block = match self.block.take() {
            Some((p, l)) if l.size() >= need.size() && l.align() >= need.align() => (p, l),
            old => {
                if let Some(b) = old {
                    free(b);
                }
                // SAFETY: `need` has a non-zero size
                let p = unsafe { alloc::alloc(need) };
                let p = NonNull::new(p).unwrap_or_else(|| alloc::handle_alloc_error(need));
                (p, need)
            }
        };
        self.runs = self.runs.saturating_add(1);
        let ptr = block.0.cast::<F>();
        // SAFETY: the block is large and aligned enough for F and holds no value
        unsafe { ptr.as_ptr().write(make()) };
        Placed {
            slot: self,
            ptr,
            layout: block.1,
        }
    }

    /// Frees the block (a quiet client holds none).
    pub(super) fn release(&mut self) {
        self.runs = 0;
        if let Some(b) = self.block.take() {
            free(b);
        }
    }
}

/// Frees a block `place` allocated (with that layout) that holds no value.
fn free((p, l): (NonNull<u8>, Layout)) {
    // SAFETY: allocated by `place` with exactly this layout; any value in it was dropped
    unsafe { alloc::dealloc(p.as_ptr(), l) };
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.release();
    }
}

/// A future running in a slot's block. Forgetting it leaks the block (the slot then
/// allocates a new one), never reuses memory that still holds a value.
pub(super) struct Placed<'s, F: Future> {
    slot: &'s mut Slot,
    ptr: NonNull<F>,
    layout: Layout,
}

// SAFETY: a Placed owns its F like a Box would
unsafe impl<F: Future + Send> Send for Placed<'_, F> {}

impl<F: Future> Future for Placed<'_, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        // SAFETY: F lives at `ptr` until `drop` below and is never moved out of it
        let fut = unsafe { Pin::new_unchecked(&mut *self.ptr.as_ptr()) };
        fut.poll(cx)
    }
}

impl<F: Future> Drop for Placed<'_, F> {
    fn drop(&mut self) {
        // SAFETY: F was written by `place` and is dropped exactly once, here
        unsafe { std::ptr::drop_in_place(self.ptr.as_ptr()) };
        let block = (self.ptr.cast::<u8>(), self.layout);
        if self.slot.runs >= KEEP_AFTER {
            self.slot.block = Some(block);
        } else {
            free(block);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn a_busy_session_runs_in_one_block_and_drops_each_command_once() {
        let drops = Arc::new(AtomicUsize::new(0));
        let mut slot = Slot::default();
        let mut first = None;
        let n = KEEP_AFTER as u64 + 3;
        for i in 0..n {
            let guard = Counted(drops.clone());
            let out = slot
                .place(|| async move {
                    tokio::task::yield_now().await;
                    let _g = guard;
                    i * 2
                })
                .await;
            assert_eq!(out, i * 2);
            if i + 1 < KEEP_AFTER as u64 {
                assert!(slot.block.is_none(), "a few commands keep no block");
                continue;
            }
            let block = slot.block.expect("the block is kept").0;
            assert_eq!(
                *first.get_or_insert(block),
                block,
                "reused, not reallocated"
            );
        }
        assert_eq!(drops.load(Ordering::SeqCst), n as usize);
        slot.release();
        assert!(slot.block.is_none());
        // quiet, then busy again: counted from zero
        let _ = slot.place(|| async { 1 }).await;
        assert!(slot.block.is_none());
    }

    #[tokio::test]
    async fn a_cancelled_command_is_dropped_in_place() {
        let drops = Arc::new(AtomicUsize::new(0));
        let mut slot = Slot::default();
        let guard = Counted(drops.clone());
        let pending = slot.place(|| async move {
            let _g = guard;
            std::future::pending::<()>().await
        });
        let r = crate::timer::timeout(std::time::Duration::from_millis(5), pending).await;
        assert!(r.is_err());
        assert_eq!(drops.load(Ordering::SeqCst), 1);
        // a larger future gets a larger block (kept: as in a busy session)
        slot.runs = KEEP_AFTER;
        let big = [7u8; 4096];
        let n = slot.place(|| async move { big.iter().map(|&b| b as usize).sum::<usize>() });
        assert_eq!(n.await, 7 * 4096);
        assert!(slot.block.unwrap().1.size() >= 4096);
    }
}
