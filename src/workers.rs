//! Session workers: client sessions run on N threads, each with a single-threaded tokio
//! runtime of its own (`listen.worker_threads`), so a session's client socket, its backend
//! connections and its timers are all driven by one thread and one event loop: no task
//! migrates and no statement wakes another thread. The control plane (accept, admin, monitor,
//! failover, reloads) stays on the runtime that started the proxy.
//!
//! Accepted clients go to the worker with the fewest sessions. Pooled backend connections
//! remember the worker that opened them (`current()`), and the pool hands a session its own
//! worker's connections first (see `pool`).
//!
//! With one worker, sessions run on the starting runtime itself: no extra thread at all.

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
pub struct Seat(Option<Arc<AtomicUsize>>);

impl Drop for Seat {
    fn drop(&mut self) {
        if let Some(n) = &self.0 {
            n.fetch_sub(1, Ordering::Relaxed);
        }
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
    /// Starts `n` worker threads (none when `n <= 1`).
    pub fn start(n: usize) -> std::io::Result<Workers> {
        let mut lanes = Vec::new();
        if n > 1 {
            for i in 0..n {
                lanes.push(Lane::start(i)?);
            }
        }
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
        let Some(lane) = self
            .lanes
            .iter()
            .min_by_key(|l| l.sessions.load(Ordering::Relaxed))
        else {
            started(tokio::spawn(session(stream, Seat(None))).abort_handle());
            return;
        };
        // the socket moves to the worker's event loop: deregistered here, registered there
        let std_stream = match stream.into_std() {
            Ok(s) => s,
            Err(e) => return tracing::warn!(error = %e, "cannot hand a client to a worker"),
        };
        lane.sessions.fetch_add(1, Ordering::Relaxed);
        let seat = Seat(Some(lane.sessions.clone()));
        let job: Job = Box::new(move || match tokio::net::TcpStream::from_std(std_stream) {
            Ok(s) => started(tokio::spawn(session(s, seat)).abort_handle()),
            Err(e) => tracing::warn!(error = %e, "cannot register a client on its worker"),
        });
        if lane.tx.send(job).is_err() {
            tracing::warn!("worker stopped; client dropped");
        }
    }

    /// Stops the workers: each lets its remaining tasks finish (bounded), then exits.
    pub async fn stop(self) {
        let threads: Vec<_> = self
            .lanes
            .into_iter()
            .map(|l| {
                drop(l.tx);
                l.thread
            })
            .collect();
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    }
}

impl Lane {
    fn start(index: usize) -> std::io::Result<Lane> {
        let (tx, rx) = mpsc::unbounded_channel::<Job>();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name(format!("sluice-worker-{index}"))
            .spawn(move || {
                LANE.with(|l| l.set(index as u16 + 1));
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
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
