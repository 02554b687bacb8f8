//! Backend connection pools: one per (backend, user, client flavour), sharing a per-backend
//! connection limit. A checkout takes a permit of a fair (first come, first served) semaphore
//! for as long as it holds a connection, waiting up to `checkout_timeout`; connections open
//! in all (busy and idle) stay under the same limit: opening one more at the limit first
//! closes another user's longest-idle connection. Leases return themselves to the pool on
//! drop, only in a known clean state (see `recycle`), first to a cell of their session where
//! its next checkout finds them without lock or semaphore (see `hot`).

mod hot;
pub mod position;
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
    /// `coarse_ms()` when it was returned.
    since: u64,
}

use crate::timer::coarse_ms;

pub use crate::backend::pooled::{Counted, Parked};

pub struct BackendPool {
    pub name: String,
    pub address: String,
    /// TLS toward the backend (replaced by reloads; new connections use the current one).
    tls: arc_swap::ArcSwapOption<crate::backend::TlsClient>,
    limit: Arc<Semaphore>,
    max_conns: usize,
    /// Connections open to the backend, busy and idle (see `Counted`).
    open: Arc<AtomicUsize>,
    max_idle: usize,
    /// Idle connections per slot (see `slot`) and session worker (`BackendConn::lane`).
    idle: Mutex<ahash::AHashMap<(usize, u16), Vec<Idle>>>,
    /// Per session worker, the connection last returned there (see `hot`).
    hot: hot::Hot,
    /// Draining: connections are closed instead of returned.
    closed: std::sync::atomic::AtomicBool,
    pub opened: AtomicU64,
    pub busy: AtomicUsize,
    /// Milliseconds since `epoch` until which new connections are not attempted.
    down_until_ms: AtomicU64,
    epoch: Instant,
    /// Bumped by `retire`: connections opened before are closed instead of reused.
    generation: AtomicU64,
    /// `sluice_pool_wait_seconds`, observed when a checkout had to wait.
    pub wait_histogram: std::sync::OnceLock<prometheus::Histogram>,
    /// Its GTID position after a write (read-your-writes), on a connection of its own.
    pub position: position::Position,
}

/// A checked-out backend connection.
pub struct Lease {
    /// Boxed: a lease moves through several futures per statement, a pointer is cheap to move.
    conn: Option<Box<BackendConn>>,
    pool: Arc<BackendPool>,
    slot: usize,
    /// The session's id: where the connection is parked when it comes back clean.
    affinity: u32,
    /// Taken by the recycler when the connection needs a reset before it goes back.
    permit: Option<OwnedSemaphorePermit>,
    /// When its last command finished (`coarse_ms` scale), if the holder said (`finished`):
    /// the parked connection's age counts from it, without another clock read.
    done_ms: Option<u64>,
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
    /// Replaces the connection with a freshly opened one (the old one closed first, so the
    /// pair never counts twice against the limit).
    pub async fn reconnect(&mut self, opts: &ConnectOpts) -> Result<(), BackendError> {
        self.conn = None;
        let room = self
            .pool
            .reserve(self.slot, opts.timeout)
            .await
            .map_err(BackendError::Server)?;
        let conn = BackendConn::connect(opts).await?;
        self.conn = Some(self.pool.counted(conn, room));
        Ok(())
    }

    /// Its last command finished at `now_ms` (the holder's clock reading, monotonic
    /// milliseconds): when the connection is parked, its idle age counts from then.
    pub fn finished(&mut self, now_ms: u64) {
        self.done_ms = Some(now_ms);
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
            let key = (self.slot, self.affinity);
            recycle::give_back(&self.pool, (key, self.done_ms), conn, self.permit.take());
        }
    }
}

/// Whether a connection idle since `since` (`coarse_ms`) long enough to be checked turned
/// out closed by the server (`now_ms`: a monotonic reading in milliseconds).
fn gone_stale(since: u64, now_ms: u64, conn: &mut BackendConn) -> bool {
    let idle_ms = now_ms.saturating_sub(since);
    idle_ms > STALE_CHECK_AFTER.as_millis() as u64 && looks_closed(conn)
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
            max_conns,
            open: Arc::new(AtomicUsize::new(0)),
            max_idle,
            idle: Mutex::new(ahash::AHashMap::new()),
            hot: hot::Hot::new(),
            closed: std::sync::atomic::AtomicBool::new(false),
            opened: AtomicU64::new(0),
            busy: AtomicUsize::new(0),
            down_until_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            generation: AtomicU64::new(0),
            wait_histogram: std::sync::OnceLock::new(),
            position: position::Position::default(),
        }
    }

    /// TLS for new connections to this backend.
    /// A control connection to this backend with the `[monitor]` credentials.
    pub fn monitor_opts(&self, m: &crate::config::Monitor) -> ConnectOpts {
        ConnectOpts {
            address: self.address.clone(),
            tls: self.tls(),
            user: m.user.clone(),
            password: m.password.clone(),
            native_hash1: None,
            database: None,
            flavour: crate::backend::Flavour::default(),
            timeout: m.timeout.0,
        }
    }

    pub fn tls(&self) -> Option<Arc<crate::backend::TlsClient>> {
        self.tls.load_full()
    }

    pub fn set_tls(&self, tls: Option<Arc<crate::backend::TlsClient>>) {
        self.tls.store(tls);
    }

    /// Stops pooling: idle connections are closed now, busy ones when returned.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.idle.lock().clear();
        self.hot.take_all().for_each(drop);
        self.position.close_idle(Duration::ZERO);
    }

    /// Connections opened before now are not given to another session again: after a
    /// change of global defaults or privileges (`SET GLOBAL`, `GRANT`, ...) they would keep
    /// the old session defaults and cached privileges, where a direct client's new
    /// connection would not. An idle one is replaced when a checkout finds it (closed, a new
    /// one opened: the server's session count stays the same), a busy one is closed when
    /// returned; a session keeps the connection parked for it, as a direct client keeps its
    /// own.
    pub fn retire(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Whether `conn` was opened before the last `retire`.
    fn retired(&self, conn: &BackendConn) -> bool {
        conn.generation != self.generation.load(Ordering::Relaxed)
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
        self.unpark_all();
        for list in self.idle.lock().values_mut() {
            list.retain_mut(|i| !looks_closed(&mut i.conn));
        }
    }

    /// Puts a clean connection on the idle list of `slot` (closed if the pool is full or
    /// draining).
    fn put_idle(&self, slot: usize, conn: Box<BackendConn>) {
        if self.closed.load(Ordering::Relaxed) || self.retired(&conn) {
            return;
        }
        let mut idle = self.idle.lock();
        let list = idle.entry((slot, conn.lane)).or_default();
        if list.len() < self.max_idle {
            list.push(Idle {
                conn,
                since: coarse_ms(),
            });
        }
    }

    /// Connections open to the backend (busy and idle).
    pub fn open_count(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// A newly opened connection, counted among the open ones under `room` (see `reserve`).
    fn counted(&self, mut conn: BackendConn, room: Counted) -> Box<BackendConn> {
        self.opened.fetch_add(1, Ordering::Relaxed);
        conn.counted = Some(room);
        conn.generation = self.generation.load(Ordering::SeqCst);
        Box::new(conn)
    }

    /// Room for one more open connection, taken before connecting so that concurrent
    /// checkouts cannot together open more than `max_conns` (released if the connect fails).
    /// At the limit another slot's longest-idle connection is closed first, else one of this
    /// slot's. The caller holds a permit, so busy connections are fewer than the limit and
    /// the rest are idle; a connection being closed elsewhere frees room within moments.
    async fn reserve(&self, slot: usize, wait: Duration) -> Result<Counted, SqlError> {
        let deadline = Instant::now() + wait;
        loop {
            let n = self.open.load(Ordering::Acquire);
            if n < self.max_conns {
                let next =
                    self.open
                        .compare_exchange(n, n + 1, Ordering::AcqRel, Ordering::Acquire);
                if next.is_ok() {
                    return Ok(Counted(self.open.clone()));
                }
                continue;
            }
            if self.evict_other(slot) || self.evict_any() {
                continue;
            }
            if Instant::now() >= deadline {
                return Err(SqlError::pool_timeout(&self.name, wait));
            }
            crate::timer::sleep(Duration::from_millis(1)).await;
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

    /// Closes idle connections unused for longer than `timeout`; how many.
    pub fn close_idle_older_than(&self, timeout: Duration) -> usize {
        let limit = timeout.as_millis() as u64;
        let now = coarse_ms();
        let mut closed = 0;
        for list in self.idle.lock().values_mut() {
            let before = list.len();
            list.retain(|i| now.saturating_sub(i.since) <= limit);
            closed += before - list.len();
        }
        closed + usize::from(self.position.close_idle(timeout))
    }

    pub fn idle_count(&self) -> usize {
        self.idle.lock().values().map(Vec::len).sum::<usize>() + self.hot.count()
    }

    /// Returns a clean connection: parked in the calling worker's hot slot with its permit
    /// when nobody waits for one, else to the idle list (the permit released after).
    fn put_back(
        &self,
        ((slot, affinity), done_ms): ((usize, u32), Option<u64>),
        mut conn: Box<BackendConn>,
        permit: Option<OwnedSemaphorePermit>,
    ) {
        let lane = crate::workers::current();
        let (at, permit) = match (hot::cell(lane, affinity), permit) {
            (Some(at), Some(p)) if conn.lane == lane && !self.hot.contended() => (at, p),
            _ => return self.put_idle(slot, conn),
        };
        let since = done_ms.unwrap_or_else(coarse_ms);
        conn.parked = Some(Parked {
            permit,
            slot,
            since,
        });
        if let Some(displaced) = self.hot.swap(at, Some(conn)) {
            self.unpark(displaced);
        }
        // a checkout that started waiting meanwhile, or a close, may have missed it
        if self.hot.contended() || self.closed.load(Ordering::SeqCst) {
            self.unpark_cell(at);
        }
    }

    /// Session `affinity`'s parked connection if it is of `slot` (and, parked a while, still
    /// open): a lease without the idle list or the semaphore. `now_ms`: the caller's reading
    /// of the monotonic clock, in milliseconds (a session's, at its command's arrival).
    pub fn take_parked(
        self: &Arc<Self>,
        (slot, affinity): (usize, u32),
        now_ms: u64,
    ) -> Option<Lease> {
        let at = hot::cell(crate::workers::current(), affinity)?;
        let mut conn = self.hot.swap(at, None)?;
        let parked = conn.parked.take()?;
        if parked.slot != slot {
            conn.parked = Some(parked);
            self.unpark(conn);
            return None;
        }
        if gone_stale(parked.since, now_ms, &mut conn) {
            return None; // closed, its permit released
        }
        self.busy.fetch_add(1, Ordering::Relaxed);
        Some(Lease {
            conn: Some(conn),
            pool: self.clone(),
            slot,
            affinity,
            permit: Some(parked.permit),
            done_ms: None,
        })
    }

    /// A parked connection to the idle list, then its permit released.
    fn unpark(&self, mut conn: Box<BackendConn>) {
        if let Some(p) = conn.parked.take() {
            self.put_idle(p.slot, conn);
            drop(p.permit);
        }
    }

    /// Session `affinity`'s cell on the calling worker emptied to the idle list (the session
    /// went quiet or ended: its connection may serve others).
    pub fn unpark_session(&self, affinity: u32) {
        if let Some(at) = hot::cell(crate::workers::current(), affinity) {
            self.unpark_cell(at);
        }
    }

    /// Cell `at` emptied to the idle list.
    fn unpark_cell(&self, at: usize) {
        if let Some(conn) = self.hot.swap(at, None) {
            self.unpark(conn);
        }
    }

    /// Every parked connection to the idle list.
    fn unpark_all(&self) {
        self.hot.take_all().for_each(|c| self.unpark(c));
    }

    /// Closes the longest-idle connection of another slot: a user that must open one more
    /// connection at the limit takes the place of connections other users left idle.
    fn evict_other(&self, slot: usize) -> bool {
        self.evict(|k| k.0 != slot)
    }

    /// Closes the longest-idle connection of any slot (parked ones go to the idle list).
    fn evict_any(&self) -> bool {
        self.unpark_all();
        self.evict(|_| true)
    }

    fn evict(&self, which: impl Fn(&(usize, u16)) -> bool) -> bool {
        let mut idle = self.idle.lock();
        let victim = idle
            .iter_mut()
            .filter(|(k, l)| which(k) && !l.is_empty())
            .min_by_key(|(_, l)| l[0].since);
        match victim {
            Some((_, list)) => {
                list.remove(0);
                true
            }
            None => false,
        }
    }

    /// A permit of the limit, waiting up to `wait()` (first come, first served; `wait` is
    /// only asked when the limit is reached).
    async fn permit(
        &self,
        wait: impl FnOnce() -> Duration,
    ) -> Result<OwnedSemaphorePermit, SqlError> {
        if let Ok(p) = self.limit.clone().try_acquire_owned() {
            return Ok(p);
        }
        // parked connections hold permits: they go to the idle list before anyone waits
        let _waiting = self.hot.wait();
        self.unpark_all();
        let wait = wait();
        let started = Instant::now();
        let r = crate::timer::timeout(wait, self.limit.clone().acquire_owned()).await;
        if let Some(h) = self.wait_histogram.get() {
            h.observe(started.elapsed().as_secs_f64());
        }
        match r {
            Ok(Ok(p)) => Ok(p),
            _ => Err(SqlError::pool_timeout(&self.name, wait)),
        }
    }

    /// Checks out a connection for `opts.user` (slot from `slot`), opening one if none idle;
    /// the caller has tried `take_parked` first (the session does, before it even resolves
    /// the backend). `opts` is only called when a new connection must be opened (not per
    /// statement).
    pub async fn checkout(
        self: &Arc<Self>,
        (slot, affinity): (usize, u32),
        opts: impl FnOnce() -> ConnectOpts,
        wait: impl FnOnce() -> Duration,
    ) -> Result<Lease, SqlError> {
        let permit = self.permit(wait).await?;
        self.busy.fetch_add(1, Ordering::Relaxed);
        let mut lease = Lease {
            conn: None,
            pool: self.clone(),
            slot,
            affinity,
            permit: Some(permit),
            done_ms: None,
        };
        let lane = crate::workers::current();
        while let Some(mut i) = self.pop_idle(slot, lane) {
            if self.retired(&i.conn) || gone_stale(i.since, coarse_ms(), &mut i.conn) {
                continue;
            }
            lease.conn = Some(i.conn);
            return Ok(lease);
        }
        let room = self.reserve(slot, Duration::from_secs(1)).await?;
        match BackendConn::connect(&opts()).await {
            Ok(conn) => {
                lease.conn = Some(self.counted(conn, room));
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
}

fn connect_error(name: &str, e: BackendError) -> SqlError {
    match e {
        BackendError::Server(s) => s,
        other => SqlError::backend_unavailable(name, &other.to_string()),
    }
}
