//! Session workers: client sessions run on N threads, each with a single-threaded tokio
//! runtime of its own (`listen.worker_threads`), so a session's client socket and its backend
//! connections are driven by one thread and one event loop: no task migrates and no statement
//! wakes another thread. The control plane (accept, admin, monitor, failover, reloads) stays
//! on the runtime that started the proxy, and its timer driver also serves the workers'
//! timers: a worker's event loop has none (see `crate::timer`).
//!
//! Accepted clients go to the worker with the fewest sessions. Pooled backend connections
//! remember the worker that opened them (`current()`), and the pool hands a session its own
//! worker's connections first (see `pool`).
//!
//! There is always at least one worker thread, so no session runs on a loop with a timer
//! driver.

use std::cell::Cell;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// A session to start on a worker: called there, inside its runtime.
type Job = Box<dyn FnOnce() + Send>;

/// How long a stopping worker lets its remaining tasks (kills of abandoned statements,
/// connection resets) finish before its runtime is dropped.
const STOP_GRACE: Duration = Duration::from_secs(2);

thread_local! {
    /// 1 + the index of the worker running on this thread; 0 elsewhere.
    static LANE: Cell<u16> = const { Cell::new(0) };
}

/// The worker of the calling thread (1-based), or 0 outside a worker thread.
pub fn current() -> u16 {
    LANE.with(Cell::get)
}

struct Lane {
    tx: mpsc::UnboundedSender<Job>,
    sessions: Arc<AtomicUsize>,
    thread: std::thread::JoinHandle<()>,
}

pub struct Workers {
    /// Empty: sessions run on the caller's runtime.
    lanes: Vec<Lane>,
}

/// Counts a session against its worker until dropped.
pub struct Seat(Arc<AtomicUsize>);

impl Drop for Seat {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// `0` means one per CPU.
pub fn count(configured: usize) -> usize {
    if configured > 0 {
        return configured;
    }
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

impl Workers {
    /// Starts `n` worker threads (at least one), whose timers the calling runtime serves.
    pub fn start(n: usize) -> std::io::Result<Workers> {
        let host = tokio::runtime::Handle::current();
        let lanes = (0..n.max(1))
            .map(|i| Lane::start(i, host.clone()))
            .collect::<std::io::Result<_>>()?;
        Ok(Workers { lanes })
    }

    pub fn threads(&self) -> usize {
        self.lanes.len()
    }

    /// Runs `session(stream)` on the least busy worker; `started` gets the task's abort handle.
    pub fn spawn<F, Fut>(
        &self,
        stream: tokio::net::TcpStream,
        session: F,
        started: impl FnOnce(tokio::task::AbortHandle) + Send + 'static,
    ) where
        F: FnOnce(tokio::net::TcpStream, Seat) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        // there is a worker until `stop` or drop consumes them
        let lane = self
            .lanes
            .iter()
            .min_by_key(|l| l.sessions.load(Ordering::Relaxed))
            .expect("at least one worker");
        // the socket moves to the worker's event loop: deregistered here, registered there
        let std_stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => return tracing::warn!(error = %e, "cannot hand a client to a worker"),
        };
        lane.sessions.fetch_add(1, Ordering::Relaxed);
        let seat = Seat(lane.sessions.clone());
        let job: Job = Box::new(move || match tokio::net::TcpStream::from_std(std_stream) {
            Ok(s) => started(tokio::spawn(session(s, seat)).abort_handle()),
            Err(e) => tracing::warn!(error = %e, "cannot register a client on its worker"),
        });
        if lane.tx.send(job).is_err() {
            tracing::warn!("worker stopped; client dropped");
        }
    }

    /// Stops the workers: each lets its remaining tasks finish (bounded), then exits.
    pub async fn stop(mut self) {
        let threads = self.let_go();
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    }

    /// Closes every worker's queue: each then finishes (bounded) and ends its thread.
    fn let_go(&mut self) -> Vec<std::thread::JoinHandle<()>> {
        self.lanes
            .drain(..)
            .map(|l| {
                drop(l.tx);
                l.thread
            })
            .collect()
    }
}

/// Workers dropped without `stop` (a proxy dropped by a test, a runtime shutting down) are
/// waited for here, bounded by `STOP_GRACE`: they must be gone before the runtime whose driver
/// serves their timers, or a session's timer polled after that driver shut down would panic.
impl Drop for Workers {
    fn drop(&mut self) {
        for t in self.let_go() {
            let _ = t.join();
        }
    }
}

impl Lane {
    fn start(index: usize, host: tokio::runtime::Handle) -> std::io::Result<Lane> {
        let (tx, rx) = mpsc::unbounded_channel::<Job>();
        // I/O only: timers are the host's (crate::timer)
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?;
        let thread = std::thread::Builder::new()
            .name(format!("sluice-worker-{index}"))
            .spawn(move || {
                LANE.with(|l| l.set(index as u16 + 1));
                crate::timer::serve_from(host);
                rt.block_on(run(rx));
            })?;
        Ok(Lane {
            tx,
            sessions: Arc::new(AtomicUsize::new(0)),
            thread,
        })
    }
}

/// A worker's loop: start each session it is given; when the proxy lets go of it, wait for
/// its remaining tasks (bounded) and return.
async fn run(mut rx: mpsc::UnboundedReceiver<Job>) {
    while let Some(job) = rx.recv().await {
        job();
    }
    let deadline = Instant::now() + STOP_GRACE;
    let metrics = tokio::runtime::Handle::current().metrics();
    while metrics.num_alive_tasks() > 0 && Instant::now() < deadline {
        // no timer: the host runtime may be gone already (a proxy dropped without shutdown);
        // let the tasks and the I/O driver run, then pause the thread briefly
        tokio::task::yield_now().await;
        std::thread::sleep(Duration::from_millis(2));
    }
}
