//! The result cache: replies to reads that matched a rule with `cache_ttl`, kept as the
//! bytes the client got and served from memory.
//!
//! Freshness: a global clock counts invalidations. Every entry remembers the clock when its
//! miss started (`born`); a write invalidates its tables by stamping them with a new tick,
//! so an entry is served only while none of its tables (nor their database, nor
//! everything) was stamped after it was born. A write through Sluice stamps before its reply reaches
//! the client; the binary log follower (`binlog`) stamps for every other writer. Misses run
//! on the primary, so a stored reply is never older than its `born`.

pub mod binlog;
pub mod flight;
pub mod tables;

use parking_lot::RwLock;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tables::{Table, Written};

/// Everything that changes a reply's bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub user: Arc<str>,
    pub database: Option<Arc<str>>,
    /// The session's variable statements (character set, collation, sql_mode, time_zone...).
    pub vars: Vec<Arc<str>>,
    /// The client's framing (CLIENT_DEPRECATE_EOF).
    pub deprecate_eof: bool,
    pub statement: Box<[u8]>,
}

#[derive(Debug)]
pub struct Entry {
    pub key: Key,
    /// The reply as the client got it: whole packets, sequence ids from 1.
    pub bytes: Box<[u8]>,
    pub tables: Vec<Table>,
    pub rule: Arc<str>,
    pub stored: Instant,
    ttl: Duration,
    born: u64,
    /// The primary the miss ran on: after a failover or switchover the entry is not served.
    primary: usize,
}

/// Why entries were invalidated (`sluice_cache_invalidations_total{cause}`).
#[derive(Debug, Clone, Copy)]
pub enum Cause {
    Write,
    Binlog,
    Reload,
    Topology,
    Purge,
}

impl Cause {
    fn label(self) -> &'static str {
        match self {
            Cause::Write => "write",
            Cause::Binlog => "binlog",
            Cause::Reload => "reload",
            Cause::Topology => "topology",
            Cause::Purge => "purge",
        }
    }
}

/// The last invalidation tick of each table, database and of everything.
#[derive(Default)]
struct Stamps {
    tables: HashMap<Table, u64>,
    databases: HashMap<Box<str>, u64>,
    everything: u64,
}

impl Stamps {
    fn fresh(&self, e: &Entry) -> bool {
        let stamp = |s: Option<&u64>| s.is_none_or(|&s| s <= e.born);
        self.everything <= e.born
            && e.tables
                .iter()
                .all(|t| stamp(self.tables.get(t)) && stamp(self.databases.get(&t.database)))
    }
}

struct Expiry;

impl moka::Expiry<u64, Arc<Entry>> for Expiry {
    fn expire_after_create(&self, _: &u64, e: &Arc<Entry>, _: Instant) -> Option<Duration> {
        Some(e.ttl)
    }

    /// A replaced entry (a refresh, a miss after an invalidation) lives its own TTL, not
    /// what was left of the one it replaced.
    fn expire_after_update(
        &self,
        _: &u64,
        e: &Arc<Entry>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(e.ttl)
    }
}

/// `sluice_cache_*` (registered by `metrics::Metrics`).
#[derive(Clone)]
pub struct CacheMetrics {
    pub hits: prometheus::IntCounterVec,
    pub misses: prometheus::IntCounterVec,
    pub stores: prometheus::IntCounterVec,
    pub uncacheable: prometheus::IntCounterVec,
    pub invalidations: prometheus::IntCounterVec,
    pub entries: prometheus::IntGauge,
    pub bytes: prometheus::IntGauge,
    pub binlog_following: prometheus::IntGauge,
    /// Entries dropped to stay under `max_memory`.
    pub evictions: prometheus::IntCounter,
    pub binlog_events: prometheus::IntCounter,
    pub binlog_delay: prometheus::Gauge,
}

pub struct ResultCache {
    entries: moka::sync::Cache<u64, Arc<Entry>>,
    stamps: RwLock<Stamps>,
    clock: AtomicU64,
    hasher: ahash::RandomState,
    pub flights: flight::Flights,
    pub max_entry_size: usize,
    /// A rule caches: writes invalidate (set by `set_active` when rules are loaded).
    active: AtomicBool,
    /// Views on the primary (a read of one is never kept: writes name its base tables).
    views: RwLock<std::collections::HashSet<Table>>,
    /// `views` is current: loaded since the last statement that could have created one
    /// (set by the binary log client, cleared by `saw_ddl`).
    views_known: AtomicBool,
    /// Set by the binary log client while it has a stream (`require_views`).
    views_required: AtomicBool,
    /// The binary log client's server id unless `[cache] binlog_server_id` sets one.
    pub own_server_id: u32,
    /// The binary log follower's state, for `/cache` and the log.
    pub follower: RwLock<binlog::State>,
    pub metrics: CacheMetrics,
}

impl ResultCache {
    pub fn new(cfg: &crate::config::Cache, metrics: CacheMetrics) -> Self {
        let entries = moka::sync::Cache::builder()
            .max_capacity(cfg.max_memory)
            .weigher(|_, e: &Arc<Entry>| {
                let size = e.bytes.len() + e.key.statement.len() + 64 * e.tables.len() + 256;
                u32::try_from(size).unwrap_or(u32::MAX)
            })
            .expire_after(Expiry)
            .eviction_listener({
                let m = metrics.clone();
                move |_, _, cause| match cause {
                    moka::notification::RemovalCause::Expired => {
                        m.invalidations.with_label_values(&["ttl"]).inc()
                    }
                    moka::notification::RemovalCause::Size => m.evictions.inc(),
                    _ => {}
                }
            })
            .build();
        ResultCache {
            entries,
            stamps: RwLock::default(),
            clock: AtomicU64::new(1),
            hasher: ahash::RandomState::new(),
            flights: Default::default(),
            max_entry_size: cfg.max_entry_size,
            active: AtomicBool::new(false),
            views: Default::default(),
            views_known: AtomicBool::new(false),
            views_required: AtomicBool::new(false),
            own_server_id: 0x4000_0000 | (rand::random::<u32>() & 0x3FFF_FFFF),
            follower: RwLock::new(binlog::State::default()),
            metrics,
        }
    }

    /// Whether a rule caches (writes then invalidate; nothing to do otherwise).
    pub fn active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    /// Rules were (re)loaded: `caching` says whether one caches. Entries of rules that
    /// changed are dropped by the caller (`purge`).
    pub fn set_active(&self, caching: bool) {
        self.active.store(caching, Ordering::Relaxed);
    }

    pub fn hash(&self, key: &Key) -> u64 {
        self.hasher.hash_one(key)
    }

    /// The tick a miss starts at (its entry is fresh until one of its tables is stamped).
    pub fn now(&self) -> u64 {
        self.clock.load(Ordering::Acquire)
    }

    /// A fresh entry for `key`, if any, stored under primary `primary`.
    pub fn get(&self, hash: u64, key: &Key, primary: usize) -> Option<Arc<Entry>> {
        let e = self.entries.get(&hash)?;
        if e.key != *key || e.primary != primary {
            return None;
        }
        if !self.stamps.read().fresh(&e) {
            self.entries.invalidate(&hash);
            return None;
        }
        Some(e)
    }

    /// Keeps a reply (a miss that started at tick `born` on `primary`) unless a write
    /// stamped one of its tables since.
    pub fn store(
        &self,
        (hash, key): (u64, Key),
        bytes: Vec<u8>,
        tables: Vec<Table>,
        (rule, ttl): (Arc<str>, Duration),
        (born, primary): (u64, usize),
    ) -> bool {
        let e = Arc::new(Entry {
            key,
            bytes: bytes.into_boxed_slice(),
            tables,
            rule: rule.clone(),
            stored: Instant::now(),
            ttl,
            born,
            primary,
        });
        if !self.stamps.read().fresh(&e) {
            return false;
        }
        self.entries.insert(hash, e);
        self.metrics.stores.with_label_values(&[&rule]).inc();
        true
    }

    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Stamps what `w` changed: entries that read it are no longer served.
    pub fn invalidate(&self, w: &Written, cause: Cause) {
        let tick = self.tick();
        {
            let mut s = self.stamps.write();
            match w {
                Written::Tables(ts) => {
                    for t in ts {
                        s.tables.insert(t.clone(), tick);
                    }
                }
                Written::Database(d) => {
                    s.databases.insert(d.clone(), tick);
                }
                Written::Everything => {
                    s.everything = tick;
                }
            }
        }
        self.metrics
            .invalidations
            .with_label_values(&[cause.label()])
            .inc();
    }

    /// Whether a reply that read `tables` may be kept as far as views go: none of them is a
    /// view, and, while the binary log client has a stream, the views are known since the
    /// last statement that could change them.
    pub fn views_allow(&self, tables: &[Table]) -> bool {
        let required = self.views_required.load(Ordering::Acquire);
        if required && !self.views_known.load(Ordering::Acquire) {
            return false;
        }
        let views = self.views.read();
        !tables.iter().any(|t| views.contains(t))
    }

    /// Statement `sql` ran on the primary: if it may have created, changed or dropped a
    /// view, replies are not kept until the binary log client has reloaded the views.
    pub fn saw_ddl(&self, sql: &[u8]) {
        if tables::may_change_views(sql) {
            self.forget_views();
        }
    }

    /// Replies are not kept until the views are loaded again.
    pub fn forget_views(&self) {
        self.views_known.store(false, Ordering::Release);
    }

    /// Whether replies wait for the views to be known: while the binary log client has a
    /// stream (it loads them); not when it cannot follow (entries are TTL-bound then).
    pub fn require_views(&self, on: bool) {
        self.views_required.store(on, Ordering::Release);
    }

    /// Whether the views must be (re)loaded.
    pub fn views_stale(&self) -> bool {
        !self.views_known.load(Ordering::Acquire)
    }

    /// The views as loaded from the primary.
    pub fn set_views(&self, views: std::collections::HashSet<Table>) {
        *self.views.write() = views;
        self.views_known.store(true, Ordering::Release);
    }

    /// Drops every entry (reload of caching rules, failover, switchover, `POST /cache/purge`).
    pub fn purge(&self, cause: Cause) {
        self.invalidate(&Written::Everything, cause);
        self.entries.invalidate_all();
    }

    /// Entries and their weight in bytes (approximate until moka's housekeeping runs).
    pub fn usage(&self) -> (u64, u64) {
        self.entries.run_pending_tasks();
        (self.entries.entry_count(), self.entries.weighted_size())
    }

    /// Per rule: entries and bytes.
    pub fn by_rule(&self) -> Vec<(Arc<str>, u64, u64)> {
        let mut m: HashMap<Arc<str>, (u64, u64)> = HashMap::new();
        for (_, e) in self.entries.iter() {
            let v = m.entry(e.rule.clone()).or_default();
            v.0 += 1;
            v.1 += e.bytes.len() as u64;
        }
        let mut v: Vec<_> = m.into_iter().map(|(r, (n, b))| (r, n, b)).collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache() -> ResultCache {
        let m = crate::metrics::Metrics::new(&[]).cache;
        ResultCache::new(&crate::config::Cache::default(), m)
    }

    fn key(sql: &str) -> Key {
        Key {
            user: "app".into(),
            database: Some("shop".into()),
            vars: vec![],
            deprecate_eof: true,
            statement: sql.as_bytes().into(),
        }
    }

    fn keep(c: &ResultCache, sql: &str, born: u64) -> bool {
        let k = key(sql);
        let ts = vec![Table::new("shop", "items")];
        let ttl = ("r".into(), Duration::from_secs(30));
        c.store((c.hash(&k), k), b"reply".to_vec(), ts, ttl, (born, 0))
    }

    #[test]
    fn a_write_to_a_table_hides_what_read_it() {
        let c = cache();
        let k = key("SELECT * FROM items");
        assert!(keep(&c, "SELECT * FROM items", c.now()));
        assert!(c.get(c.hash(&k), &k, 0).is_some());
        assert!(c.get(c.hash(&k), &k, 1).is_none(), "another primary");
        c.invalidate(
            &Written::Tables(vec![Table::new("shop", "other")]),
            Cause::Write,
        );
        assert!(c.get(c.hash(&k), &k, 0).is_some());
        c.invalidate(
            &Written::Tables(vec![Table::new("SHOP", "Items")]),
            Cause::Write,
        );
        assert!(c.get(c.hash(&k), &k, 0).is_none());
    }

    #[test]
    fn a_miss_that_started_before_a_write_is_not_kept() {
        let c = cache();
        let born = c.now();
        c.invalidate(&Written::Everything, Cause::Binlog);
        assert!(!keep(&c, "SELECT * FROM items", born));
        assert!(keep(&c, "SELECT * FROM items", c.now()));
        c.invalidate(&Written::Database("other".into()), Cause::Binlog);
        let k = key("SELECT * FROM items");
        assert!(c.get(c.hash(&k), &k, 0).is_some());
        c.invalidate(&Written::Database("shop".into()), Cause::Binlog);
        assert!(c.get(c.hash(&k), &k, 0).is_none());
    }

    #[test]
    fn a_million_distinct_statements_stay_under_max_memory() {
        let max = 8 << 20;
        let cfg = crate::config::Cache {
            max_memory: max,
            ..Default::default()
        };
        let c = ResultCache::new(&cfg, crate::metrics::Metrics::new(&[]).cache);
        let reply = vec![7u8; 200];
        for i in 0..1_000_000 {
            let k = key(&format!("SELECT * FROM items WHERE id = {i}"));
            let ts = vec![Table::new("shop", "items")];
            let rule = ("r".into(), Duration::from_secs(30));
            c.store((c.hash(&k), k), reply.clone(), ts, rule, (c.now(), 0));
        }
        let (entries, bytes) = c.usage();
        assert!(bytes <= max, "{bytes} bytes in {entries} entries");
        assert!(entries > 10_000, "{entries} entries");
        assert!(c.metrics.evictions.get() > 0);
    }

    #[test]
    fn another_key_is_another_entry() {
        let c = cache();
        assert!(keep(&c, "SELECT * FROM items", c.now()));
        let mut other = key("SELECT * FROM items");
        other.vars.push("SET NAMES latin1".into());
        assert!(c.get(c.hash(&other), &other, 0).is_none());
    }
}
