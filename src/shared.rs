//! State shared by every task of one proxy instance (no process globals: two proxies can run
//! in one process).

use crate::config::Config;
use crate::router::Classifier;
use crate::topology::Topology;
use arc_swap::ArcSwap;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::task::AbortHandle;

/// What other tasks may need from a client session (KILL).
pub struct SessionHandle {
    pub id: u32,
    pub user_index: AtomicUsize,
    /// (backend index + 1) << 32 | backend thread id of the statement in flight, or 0.
    pub running: AtomicU64,
    /// The same for the primary connection the session holds inside an open transaction
    /// (a switchover lets it commit, then ends it), or 0.
    pub primary_tx: AtomicU64,
    pub abort: Mutex<Option<AbortHandle>>,
    /// What `SHOW PROCESSLIST` shows of the session (written rarely, read by that).
    pub shown: Mutex<Shown>,
    /// The command in progress (a `COM_*` byte), 0 while the client is quiet.
    pub command: AtomicU8,
    /// When the current or last command started (the session's start before any), as
    /// `crate::timer::coarse_ms`.
    pub since_ms: AtomicU64,
}

/// A session's process-list row, as far as it changes rarely.
#[derive(Debug, Default, Clone)]
pub struct Shown {
    pub user: Arc<str>,
    /// The client's address (`host:port`).
    pub host: Arc<str>,
    pub db: Option<Arc<str>>,
}

impl SessionHandle {
    pub fn new(id: u32) -> Self {
        Self {
            id,
            user_index: AtomicUsize::new(usize::MAX),
            running: AtomicU64::new(0),
            primary_tx: AtomicU64::new(0),
            abort: Mutex::new(None),
            shown: Mutex::default(),
            command: AtomicU8::new(0),
            since_ms: AtomicU64::new(crate::timer::coarse_ms()),
        }
    }

    /// The session's current database changed (`USE`, a login, `COM_CHANGE_USER`).
    pub fn show_db(&self, db: Option<&str>) {
        let mut s = self.shown.lock();
        if s.db.as_deref() != db {
            s.db = db.map(Arc::from);
        }
    }

    /// A command (its `COM_*` byte) started at `now_ms` (monotonic milliseconds).
    pub fn set_command(&self, command: u8, now_ms: u64) {
        self.command.store(command, Ordering::Relaxed);
        self.since_ms.store(now_ms, Ordering::Relaxed);
    }
    pub fn set_running(&self, backend: usize, thread_id: u32) {
        self.running
            .store(pack(backend, thread_id), Ordering::Relaxed);
    }
    pub fn clear_running(&self) {
        self.running.store(0, Ordering::Relaxed);
    }
    pub fn running(&self) -> Option<(usize, u32)> {
        unpack(self.running.load(Ordering::Relaxed))
    }
    /// Records the session's open transaction on `(backend, thread id)`, or none.
    pub fn set_primary_tx(&self, tx: Option<(usize, u32)>) {
        let v = tx.map_or(0, |(b, t)| pack(b, t));
        // most statements change nothing: no store, no cache line dirtied
        if self.primary_tx.load(Ordering::Relaxed) != v {
            self.primary_tx.store(v, Ordering::Relaxed);
        }
    }
    pub fn primary_tx(&self) -> Option<(usize, u32)> {
        unpack(self.primary_tx.load(Ordering::Relaxed))
    }
}

fn pack(backend: usize, thread_id: u32) -> u64 {
    ((backend as u64 + 1) << 32) | thread_id as u64
}

fn unpack(v: u64) -> Option<(usize, u32)> {
    (v != 0).then(|| ((v >> 32) as usize - 1, v as u32))
}

/// What one reload did (`reload::from_file`).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ReloadOutcome {
    pub at_unix: f64,
    /// "sighup", "file", "admin".
    pub trigger: String,
    pub ok: bool,
    pub errors: Vec<String>,
    pub changes: Vec<String>,
}

/// The configuration's version and file, and the last reload (`/status`).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ReloadState {
    /// Incremented by every applied configuration (1 = the one loaded at start).
    pub version: u64,
    pub path: Option<String>,
    pub last: Option<ReloadOutcome>,
}

/// Changes the process's log filter (a tracing reload handle behind a closure).
pub type LevelSetter = Box<dyn Fn(&str) -> Result<(), String> + Send + Sync>;

pub struct Shared {
    pub config: ArcSwap<Config>,
    pub topology: Topology,
    pub classifier: Classifier,
    pub server_version: String,
    pub sessions: Mutex<HashMap<u32, Arc<SessionHandle>>>,
    user_ids: Mutex<HashMap<String, usize>>,
    next_id: AtomicU32,
    pub clients: AtomicUsize,
    pub clients_total: AtomicU64,
    pub heartbeat: crate::topology::heartbeat::Heartbeat,
    pub metrics: crate::metrics::Metrics,
    pub failover: crate::topology::failover::Failover,
    /// Statements executing on the primary right now (switchover drains them).
    pub primary_inflight: AtomicUsize,
    pub reload: Mutex<ReloadState>,
    /// Held for the whole of a reload (`reload::from_file`).
    pub reload_serial: tokio::sync::Mutex<()>,
    /// Changes the log filter of the running process (installed by `main`).
    pub set_log_level: std::sync::OnceLock<LevelSetter>,
    /// Shutdown signal, for tasks started later (monitors of backends added by a reload).
    pub stop: tokio::sync::watch::Receiver<bool>,
    /// The newest write through this proxy (`read_your_writes = "global"`).
    pub last_write: crate::topology::gtid::GlobalWrite,
    /// Failed logins per client host.
    pub auth_throttle: crate::access::throttle::AuthThrottle,
    /// Accounts loaded from the backend (`[auth] users = "backend"`).
    pub accounts: crate::access::accounts::AccountStore,
    /// Open sessions per user (`[[users]] max_connections`).
    pub user_counts: Arc<crate::access::user_limit::UserCounts>,
    /// Query digest statistics (`[stats]`).
    pub digests: crate::stats::Digests,
    /// TLS toward clients (`[tls]`), rebuilt by reloads.
    pub tls: arc_swap::ArcSwapOption<tokio_rustls::TlsAcceptor>,
    /// The compiled `[[rules]]` (replaced whole by reloads; a statement keeps the set it
    /// started with). In an `Arc` so that sessions keep an `arc_swap::Cache` of it.
    pub rules: Arc<ArcSwap<crate::rules::RuleSet>>,
    /// The result cache (rules with `cache_ttl`).
    pub cache: Arc<crate::cache::ResultCache>,
}

impl Shared {
    pub fn new(
        config: Config,
        server_version: String,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        let names: Vec<String> = config.backends.iter().map(|b| b.name.clone()).collect();
        let metrics = crate::metrics::Metrics::new(&names);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        metrics.config_last_reload_success.set(now.as_secs_f64());
        let topology = Topology::from_config(&config);
        let digests = crate::stats::Digests::new(config.stats.max_digests);
        digests.configure(&config.stats);
        for b in topology.backends().iter() {
            let _ = b.pool.wait_histogram.set(metrics.pool_wait_seconds.clone());
        }
        let rules = crate::rules::RuleSet::compile(&config, |n| topology.index_of(n), &metrics)
            .unwrap_or_else(|e| {
                tracing::error!(error = %e, "routing rules unusable; running without rules");
                crate::rules::RuleSet::default()
            });
        let tls = config
            .tls
            .as_ref()
            .and_then(|t| crate::tls::server::acceptor(t).ok())
            .map(Arc::new);
        let cache = crate::cache::ResultCache::new(&config.cache, metrics.cache.clone());
        cache.set_active(rules.caches());
        Self {
            cache: Arc::new(cache),
            topology,
            config: ArcSwap::from_pointee(config),
            classifier: Classifier::new(),
            server_version,
            sessions: Mutex::new(HashMap::new()),
            user_ids: Mutex::new(HashMap::new()),
            next_id: AtomicU32::new(1),
            clients: AtomicUsize::new(0),
            clients_total: AtomicU64::new(0),
            heartbeat: crate::topology::heartbeat::Heartbeat::new(),
            metrics,
            failover: crate::topology::failover::Failover::default(),
            primary_inflight: AtomicUsize::new(0),
            reload: Mutex::new(ReloadState {
                version: 1,
                ..Default::default()
            }),
            reload_serial: tokio::sync::Mutex::new(()),
            set_log_level: std::sync::OnceLock::new(),
            stop,
            last_write: Default::default(),
            auth_throttle: Default::default(),
            accounts: Default::default(),
            user_counts: Default::default(),
            digests,
            tls: arc_swap::ArcSwapOption::from(tls),
            rules: Arc::new(ArcSwap::from_pointee(rules)),
        }
    }

    /// A stable small id per user name (pool slots), never reused within the process.
    pub fn user_id(&self, name: &str) -> usize {
        let mut ids = self.user_ids.lock();
        let next = ids.len();
        *ids.entry(name.to_string()).or_insert(next)
    }

    /// The backend account store when `[auth] users = "backend"`.
    pub fn backend_accounts(&self) -> Option<&crate::access::accounts::AccountStore> {
        (self.config.load().auth.users == crate::config::UserSource::Backend)
            .then_some(&self.accounts)
    }

    pub fn next_connection_id(&self) -> u32 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }
}
