//! Timers that work on session workers. A worker's event loop has no timer driver: tokio's
//! costs ~1,150 instructions per statement (two wheel scans, four clock reads and two locks per
//! turn of the loop, for timers that almost never fire while a statement runs). A timer made
//! on a worker thread lives on the control plane's runtime instead, whose driver wakes the
//! worker's task when it fires; timers are made when a session starts, waits for a connection
//! or connects, not per statement. Elsewhere these are tokio's own functions.
//!
//! The crate's code uses these rather than `tokio::time`'s (clippy's `disallowed-methods`
//! enforces it): a `tokio::time::sleep` on a worker would panic.

use std::cell::RefCell;
use std::future::IntoFuture;
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::time::{Instant, Sleep, Timeout};

/// Monotonic milliseconds from the coarse clock: a few nanoseconds to read where a precise
/// read costs ~17 ns, good to a few milliseconds: enough for idle ages (the pool's parked and
/// idle connections) and the process list's command times, read per statement.
pub fn coarse_ms() -> u64 {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    return monotonic_ns(libc::CLOCK_MONOTONIC_COARSE) / 1_000_000;
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    return since_start().as_millis() as u64;
}

/// Monotonic nanoseconds from the precise clock (one `clock_gettime`, without `Instant`'s
/// checks and `Duration` arithmetic): statement durations, read twice per statement.
pub fn precise_ns() -> u64 {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    return monotonic_ns(libc::CLOCK_MONOTONIC);
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    return since_start().as_nanos() as u64;
}

/// Nanoseconds of monotonic clock `clock`, by one `clock_gettime`.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn monotonic_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a clock read into a local
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Elsewhere: the time since the first reading.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn since_start() -> Duration {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START.get_or_init(std::time::Instant::now).elapsed()
}

thread_local! {
    /// The runtime whose timer driver serves this thread (set on worker threads).
    static HOST: RefCell<Option<Handle>> = const { RefCell::new(None) };
}

/// Makes `host`'s timer driver serve the timers made on this thread from now on.
pub fn serve_from(host: Handle) {
    HOST.with(|h| *h.borrow_mut() = Some(host));
}

fn hosted<R>(make: impl FnOnce() -> R) -> R {
    HOST.with(|h| match &*h.borrow() {
        Some(host) => {
            let _inside = host.enter();
            make()
        }
        None => make(),
    })
}

/// `tokio::time::sleep`, also on a worker.
#[allow(clippy::disallowed_methods)]
pub fn sleep(duration: Duration) -> Sleep {
    hosted(|| tokio::time::sleep(duration))
}

/// `tokio::time::sleep_until`, also on a worker.
#[allow(clippy::disallowed_methods)]
pub fn sleep_until(deadline: Instant) -> Sleep {
    hosted(|| tokio::time::sleep_until(deadline))
}

/// `tokio::time::timeout`, also on a worker.
#[allow(clippy::disallowed_methods)]
pub fn timeout<F: IntoFuture>(duration: Duration, future: F) -> Timeout<F::IntoFuture> {
    hosted(|| tokio::time::timeout(duration, future))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A runtime without a timer driver runs timers made here, served by another runtime.
    #[test]
    fn a_runtime_without_timers_uses_its_hosts() {
        let host = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let handle = host.handle().clone();
        let worker = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build()
                .unwrap();
            serve_from(handle);
            rt.block_on(async {
                let started = std::time::Instant::now();
                sleep(Duration::from_millis(30)).await;
                let slept = started.elapsed();
                let never = std::future::pending::<()>();
                let timed_out = timeout(Duration::from_millis(20), never).await.is_err();
                let deadline = Instant::now() + Duration::from_millis(10);
                sleep_until(deadline).await;
                (slept, timed_out, Instant::now() >= deadline)
            })
        });
        let (slept, timed_out, reached) = worker.join().unwrap();
        assert!(slept >= Duration::from_millis(30), "{slept:?}");
        assert!(timed_out && reached);
        drop(host);
    }
}
