//! Backend connection pools: one per (backend, user, client flavour), sharing a per-backend
//! limit on open connections (busy and idle: each holds a permit of `limit` from opening to
//! closing, so taking an idle connection touches no semaphore). Checkout waits up to
//! `checkout_timeout`, closing another user's idle connection when the limit is reached;
//! leases return themselves to the pool on drop, only in a known clean state (see `recycle`).

mod recycle;

use crate::backend::{BackendConn, BackendError, ConnectOpts};
use crate::error::SqlError;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Connections idle longer than this are checked for a closed socket before reuse.
const STALE_CHECK_AFTER: Duration = Duration::from_millis(100);

struct Idle {
    conn: Box<BackendConn>,
    since: Instant,
    /// Its place under the backend's connection limit.
    permit: OwnedSemaphorePermit,
}

pub struct BackendPool {
    pub name: String,
    pub address: String,
    /// TLS toward the backend (replaced by reloads; new connections use the current one).
    tls: arc_swap::ArcSwapOption<crate::backend::TlsClient>,
    limit: Arc<Semaphore>,
    max_idle: usize,
    /// Idle connections per slot (see `slot`) and session worker (`BackendConn::lane`).
    idle: Mutex<ahash::AHashMap<(usize, u16), Vec<Idle>>>,
    /// Draining: connections are closed instead of returned.
    closed: std::sync::atomic::AtomicBool,
    pub opened: AtomicU64,
    pub busy: AtomicUsize,
    /// Checkouts waiting at the limit, and the signal that a connection was returned.
    waiting: AtomicUsize,
    returned: tokio::sync::Notify,
    /// Milliseconds since `epoch` until which new connections are not attempted.
    down_until_ms: AtomicU64,
    epoch: Instant,
    /// `sluice_pool_wait_seconds`, observed when a checkout had to wait.
    pub wait_histogram: std::sync::OnceLock<prometheus::Histogram>,
}

/// A checked-out backend connection.
pub struct Lease {
    /// Boxed: a lease moves through several futures per statement, a pointer is cheap to move.
    conn: Option<Box<BackendConn>>,
    pool: Arc<BackendPool>,
    slot: usize,
    /// Taken by the recycler when the connection needs a reset before it goes back.
    permit: Option<OwnedSemaphorePermit>,
}

impl std::ops::Deref for Lease {
    type Target = BackendConn;
    fn deref(&self) -> &BackendConn {
        self.conn
            .as_ref()
            .expect("lease holds a connection until drop")
    }
}
impl std::ops::DerefMut for Lease {
    fn deref_mut(&mut self) -> &mut BackendConn {
        self.conn
            .as_mut()
            .expect("lease holds a connection until drop")
    }
}

impl Lease {
    pub fn pool(&self) -> &Arc<BackendPool> {
        &self.pool
    }
    /// Replaces the connection with a freshly opened one.
    pub async fn reconnect(&mut self, opts: &ConnectOpts) -> Result<(), BackendError> {
        let conn = BackendConn::connect(opts).await?;
        self.pool.opened.fetch_add(1, Ordering::Relaxed);
        self.conn = Some(Box::new(conn));
        Ok(())
    }

    /// Closes the connection instead of returning it (its socket failed: nothing to reset).
    pub fn discard(mut self) {
        self.conn = None;
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.pool.busy.fetch_sub(1, Ordering::Relaxed);
        if let Some(conn) = self.conn.take() {
            recycle::give_back(&self.pool, self.slot, conn, self.permit.take());
        }
    }
}

/// Whether an idle connection's socket was closed (or has unexpected bytes) by the server.
fn looks_closed(conn: &mut BackendConn) -> bool {
    if conn.r.buffered() > 0 {
        return true;
    }
    !conn.r.get_ref().is_quiet()
}

impl BackendPool {
    pub fn new(name: &str, address: &str, max_conns: usize, max_idle: usize) -> Self {
        Self {
            name: name.into(),
            address: address.into(),
            tls: arc_swap::ArcSwapOption::empty(),
            limit: Arc::new(Semaphore::new(max_conns)),
            max_idle,
            idle: Mutex::new(ahash::AHashMap::new()),
            closed: std::sync::atomic::AtomicBool::new(false),
            opened: AtomicU64::new(0),
            busy: AtomicUsize::new(0),
            waiting: AtomicUsize::new(0),
            returned: tokio::sync::Notify::new(),
            down_until_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            wait_histogram: std::sync::OnceLock::new(),
        }
    }

    /// TLS for new connections to this backend.
    pub fn tls(&self) -> Option<Arc<crate::backend::TlsClient>> {
        self.tls.load_full()
    }

    pub fn set_tls(&self, tls: Option<Arc<crate::backend::TlsClient>>) {
        self.tls.store(tls);
    }

    /// Stops pooling: idle connections are closed now, busy ones when returned.
    pub fn close(&self) {
        self.closed.store(true, Ordering::Relaxed);
        self.idle.lock().clear();
    }

    /// The idle list of a stable user id and client flavour.
    pub fn slot(user: usize, flavour: crate::backend::Flavour) -> usize {
        user * crate::backend::Flavour::COUNT + flavour.index()
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Whether connection attempts are currently suspended after a failure.
    pub fn is_down(&self) -> bool {
        // per read and backend: read the clock only if a deadline was ever set
        let until = self.down_until_ms.load(Ordering::Relaxed);
        until != 0 && until > self.now_ms()
    }

    pub fn mark_down(&self, for_how_long: Duration) {
        let until = self.now_ms() + for_how_long.as_millis() as u64;
        self.down_until_ms.store(until, Ordering::Relaxed);
    }

    /// Drops idle connections whose socket was closed by the server (called after one of
    /// them turned out dead, e.g. killed or timed out).
    pub fn purge_dead_idle(&self) {
        for list in self.idle.lock().values_mut() {
            list.retain_mut(|i| !looks_closed(&mut i.conn));
        }
    }

    /// Puts a clean connection on the idle list of `slot` (closed if the pool is full or
    /// draining).
    fn put_idle(&self, slot: usize, conn: Box<BackendConn>, permit: OwnedSemaphorePermit) {
        if self.closed.load(Ordering::Relaxed) {
            return;
        }
        {
            let mut idle = self.idle.lock();
            let list = idle.entry((slot, conn.lane)).or_default();
            if list.len() >= self.max_idle {
                return;
            }
            list.push(Idle {
                conn,
                since: Instant::now(),
                permit,
            });
        }
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.returned.notify_one();
        }
    }

    /// The most recently returned idle connection of `slot`: one opened on this session
    /// worker if there is one (its socket is on this worker's event loop), else another
    /// worker's (it works from here, each reply waking that worker's thread: better than
    /// opening one more server connection).
    fn pop_idle(&self, slot: usize, lane: u16) -> Option<Idle> {
        let mut idle = self.idle.lock();
        if let Some(i) = idle.get_mut(&(slot, lane)).and_then(Vec::pop) {
            return Some(i);
        }
        idle.iter_mut()
            .filter(|(k, _)| k.0 == slot)
            .find_map(|(_, list)| list.pop())
    }

    pub fn idle_count(&self) -> usize {
        self.idle.lock().values().map(Vec::len).sum()
    }

    /// Closes the longest-idle connection of another slot (a user at the limit takes the
    /// place of connections other users left idle): its permit.
    fn evict_other(&self, slot: usize) -> Option<OwnedSemaphorePermit> {
        let mut idle = self.idle.lock();
        let list = idle
            .iter_mut()
            .filter(|(k, l)| k.0 != slot && !l.is_empty())
            .min_by_key(|(_, l)| l[0].since)?
            .1;
        Some(list.remove(0).permit)
    }

    /// An idle connection of `slot` that still looks alive, or a permit to open one.
    fn try_take(&self, slot: usize, lane: u16) -> Option<Result<Idle, OwnedSemaphorePermit>> {
        while let Some(mut i) = self.pop_idle(slot, lane) {
            if i.since.elapsed() > STALE_CHECK_AFTER && looks_closed(&mut i.conn) {
                continue; // closed, and its permit released
            }
            return Some(Ok(i));
        }
        match self.limit.clone().try_acquire_owned() {
            Ok(p) => Some(Err(p)),
            Err(_) => self.evict_other(slot).map(Err),
        }
    }

    /// Checks out a connection for `opts.user` (slot from `slot`), opening one if none idle.
    /// `opts` is only called when a new connection must be opened (not per statement).
    pub async fn checkout(
        self: &Arc<Self>,
        slot: usize,
        opts: impl FnOnce() -> ConnectOpts,
        wait: Duration,
    ) -> Result<Lease, SqlError> {
        let lane = crate::workers::current();
        let mut waited = None;
        let got = loop {
            if let Some(got) = self.try_take(slot, lane) {
                break got;
            }
            // at the limit with nothing to take: wait for a permit or a returned connection
            let (started, _waiting) =
                waited.get_or_insert_with(|| (Instant::now(), Waiting::new(self)));
            let left = wait.saturating_sub(started.elapsed());
            let next = tokio::time::timeout(left, async {
                tokio::select! {
                    p = self.limit.clone().acquire_owned() => p.ok(),
                    _ = self.returned.notified() => None,
                }
            });
            match next.await {
                Ok(Some(p)) => break Err(p),
                Ok(None) => continue,
                Err(_) => {
                    self.observe_wait(started);
                    return Err(SqlError::pool_timeout(&self.name, wait));
                }
            }
        };
        if let Some((started, _)) = &waited {
            self.observe_wait(started);
        }
        self.busy.fetch_add(1, Ordering::Relaxed);
        let mut lease = Lease {
            conn: None,
            pool: self.clone(),
            slot,
            permit: None,
        };
        match got {
            Ok(idle) => {
                lease.conn = Some(idle.conn);
                lease.permit = Some(idle.permit);
                return Ok(lease);
            }
            Err(permit) => lease.permit = Some(permit),
        }
        match BackendConn::connect(&opts()).await {
            Ok(conn) => {
                self.opened.fetch_add(1, Ordering::Relaxed);
                lease.conn = Some(Box::new(conn));
                Ok(lease)
            }
            Err(e) => {
                if e.is_fatal() {
                    tracing::warn!(backend = %self.name, error = %e, "cannot connect to backend");
                }
                Err(connect_error(&self.name, e))
            }
        }
    }

    fn observe_wait(&self, started: &Instant) {
        if let Some(h) = self.wait_histogram.get() {
            h.observe(started.elapsed().as_secs_f64());
        }
    }
}

/// Counts a checkout among the waiting ones while it exists (also when it is cancelled).
struct Waiting<'a>(&'a BackendPool);

impl<'a> Waiting<'a> {
    fn new(pool: &'a BackendPool) -> Self {
        pool.waiting.fetch_add(1, Ordering::SeqCst);
        Waiting(pool)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiting.fetch_sub(1, Ordering::SeqCst);
    }
}

fn connect_error(name: &str, e: BackendError) -> SqlError {
    match e {
        BackendError::Server(s) => s,
        other => SqlError::backend_unavailable(name, &other.to_string()),
    }
}
