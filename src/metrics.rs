//! Prometheus metrics. Hot-path counters are pre-resolved handles (no label lookups per
//! query); gauges describing topology and pools are filled in at scrape time.

use crate::router::Reason;
use prometheus::{
    Encoder, Gauge, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Every route reason, in `Reason::index` order (metric label values).
pub const REASONS: [Reason; 11] = [
    Reason::Read,
    Reason::Write,
    Reason::Transaction,
    Reason::LockingRead,
    Reason::Session,
    Reason::Hint,
    Reason::Pinned,
    Reason::Local,
    Reason::Fallback,
    Reason::ServerState,
    Reason::Rule,
];

/// Handles for one backend, resolved once.
pub struct BackendMetrics {
    pub name: Arc<str>,
    pub queries: Vec<IntCounter>,
    pub errors: IntCounter,
    pub pool_timeouts: IntCounter,
}

pub struct Metrics {
    pub registry: Registry,
    pub client_connections: IntGauge,
    pub client_connections_total: IntCounter,
    pub auth_failures_total: IntCounter,
    pub auth_blocked_hosts_total: IntCounter,
    pub query_duration_primary: Histogram,
    pub query_duration_replica: Histogram,
    backend_up: IntGaugeVec,
    backend_role: IntGaugeVec,
    replication_lag: GaugeVec,
    backend_eligible: IntGaugeVec,
    pool_connections: IntGaugeVec,
    pub pool_wait_seconds: Histogram,
    pub failovers_total: IntCounter,
    pub switchovers_total: IntCounter,
    /// Failovers and switchovers that ended in an error, by kind (promoted or not).
    pub promotion_failures_total: IntCounterVec,
    /// Transactions rerun on a new primary, by result.
    pub transaction_replays_total: IntCounterVec,
    /// Why sessions started keeping a primary connection to themselves.
    pub session_pins_total: IntCounterVec,
    pub pinned_sessions: IntGauge,
    pub config_reloads_total: IntCounterVec,
    pub config_last_reload_success: Gauge,
    pub split_brain: IntGauge,
    /// Reads of the primary's GTID position for read-your-writes (with `gtid`, one per read
    /// that may go to a replica after a committed write; with `global`, one per committed
    /// write; fewer when concurrent sessions share one).
    pub gtid_position_reads_total: IntCounter,
    queries_total: IntCounterVec,
    query_errors_total: IntCounterVec,
    pool_timeouts_total: IntCounterVec,
    /// Statements that matched a routing rule, by rule.
    pub rule_hits_total: IntCounterVec,
    /// What matching rules did, by rule and action (`rules::ACTIONS`).
    pub rule_actions_total: IntCounterVec,
    /// Mirror copies dropped (mirror slow, down or failing), by group.
    pub mirror_dropped_total: IntCounterVec,
    /// The result cache's counters and gauges.
    pub cache: crate::cache::CacheMetrics,
    /// Indexed like the topology (append-only). In an `Arc` so that sessions keep an
    /// `arc_swap::Cache` of it (one atomic load per statement).
    pub backends: Arc<arc_swap::ArcSwap<Vec<Arc<BackendMetrics>>>>,
}

/// Registers metrics in one registry.
struct Reg(Registry);

impl Reg {
    fn add<T: prometheus::core::Collector + Clone + 'static>(&self, c: prometheus::Result<T>) -> T {
        let c = c.expect("valid metric definition");
        self.0
            .register(Box::new(c.clone()))
            .expect("metric names are unique");
        c
    }

    fn counter(&self, name: &str, help: &str) -> IntCounter {
        self.add(IntCounter::new(name, help))
    }

    fn gauge(&self, name: &str, help: &str) -> IntGauge {
        self.add(IntGauge::new(name, help))
    }

    fn counters(&self, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        self.add(IntCounterVec::new(Opts::new(name, help), labels))
    }

    fn gauges(&self, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
        self.add(IntGaugeVec::new(Opts::new(name, help), labels))
    }
}

/// `[[rules]]` counters: hits by rule, actions by rule and action, mirror drops by group.
fn rule_metrics(r: &Reg) -> (IntCounterVec, IntCounterVec, IntCounterVec) {
    (
        r.counters(
            "sluice_rule_hits_total",
            "Statements that matched a routing rule, by rule",
            &["rule"],
        ),
        r.counters(
            "sluice_rule_actions_total",
            "Actions taken by routing rules, by rule and action",
            &["rule", "action"],
        ),
        r.counters(
            "sluice_mirror_dropped_total",
            "Mirror copies dropped because the mirror was slow, down or failing, by group",
            &["group"],
        ),
    )
}

/// The result cache's metrics (`sluice_cache_*`).
fn cache_metrics(r: &Reg) -> crate::cache::CacheMetrics {
    let by_rule = |name: &str, help: &str| r.counters(name, help, &["rule"]);
    crate::cache::CacheMetrics {
        hits: by_rule("sluice_cache_hits_total", "Statements answered from the result cache, by rule"),
        misses: by_rule("sluice_cache_misses_total", "Cacheable statements not in the cache, by rule"),
        stores: by_rule("sluice_cache_stores_total", "Replies kept in the result cache, by rule"),
        uncacheable: by_rule(
            "sluice_cache_uncacheable_total",
            "Statements of caching rules that cannot be cached (volatile, in a transaction, too large...), by rule",
        ),
        invalidations: r.counters(
            "sluice_cache_invalidations_total",
            "Result cache invalidations by cause (write, binlog, ttl, reload, topology, purge)",
            &["cause"],
        ),
        entries: r.gauge("sluice_cache_entries", "Entries in the result cache"),
        bytes: r.gauge("sluice_cache_bytes", "Bytes the result cache holds (weighted size)"),
        binlog_following: r.gauge(
            "sluice_cache_binlog_following",
            "1 while the result cache follows the primary's binary log (0: entries end by TTL and writes through Sluice only)",
        ),
        evictions: r.counter(
            "sluice_cache_evictions_total",
            "Result cache entries dropped to stay under [cache] max_memory",
        ),
        binlog_events: r.counter(
            "sluice_cache_binlog_events_total",
            "Binary log events read by the result cache's follower",
        ),
        binlog_delay: r.add(Gauge::new(
            "sluice_cache_binlog_delay_seconds",
            "Age of the last binary log event the follower read when it read it",
        )),
    }
}

/// Latency buckets (seconds) of the duration histograms.
const BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

fn handles(
    q: &IntCounterVec,
    e: &IntCounterVec,
    t: &IntCounterVec,
    backend: &str,
) -> BackendMetrics {
    BackendMetrics {
        name: Arc::from(backend),
        queries: REASONS
            .iter()
            .map(|r| q.with_label_values(&[backend, r.as_str()]))
            .collect(),
        errors: e.with_label_values(&[backend]),
        pool_timeouts: t.with_label_values(&[backend]),
    }
}

impl Metrics {
    /// Handles for a backend added by a reload (same index as in the topology).
    pub fn add_backend(&self, name: &str) {
        let h = Arc::new(handles(
            &self.queries_total,
            &self.query_errors_total,
            &self.pool_timeouts_total,
            name,
        ));
        self.backends.rcu(|old| {
            let mut v = Vec::clone(old);
            v.push(h.clone());
            v
        });
    }

    pub fn new(backend_names: &[String]) -> Metrics {
        let r = Reg(Registry::new());
        let queries_total = r.counters(
            "sluice_queries_total",
            "Statements forwarded, by backend and routing reason",
            &["backend", "route"],
        );
        let query_errors_total = r.counters(
            "sluice_query_errors_total",
            "Statements that ended in an error, by backend",
            &["backend"],
        );
        let pool_timeouts_total = r.counters(
            "sluice_pool_timeouts_total",
            "Checkouts that timed out, by backend",
            &["backend"],
        );
        let duration = r.add(HistogramVec::new(
            HistogramOpts::new(
                "sluice_query_duration_seconds",
                "Statement time through Sluice, by backend role",
            )
            .buckets(BUCKETS.to_vec()),
            &["role"],
        ));
        let backends = backend_names
            .iter()
            .map(|b| {
                let (q, e, t) = (&queries_total, &query_errors_total, &pool_timeouts_total);
                Arc::new(handles(q, e, t, b))
            })
            .collect();
        let reloads = r.counters(
            "sluice_config_reloads_total",
            "Configuration reloads by result",
            &["result"],
        );
        for result in ["success", "failure"] {
            reloads.with_label_values(&[result]);
        }
        let (rule_hits_total, rule_actions_total, mirror_dropped_total) = rule_metrics(&r);
        Metrics {
            cache: cache_metrics(&r),
            rule_hits_total,
            rule_actions_total,
            mirror_dropped_total,
            client_connections: r.gauge("sluice_client_connections", "Client connections open"),
            client_connections_total: r.counter(
                "sluice_client_connections_total",
                "Client connections accepted",
            ),
            auth_failures_total: r
                .counter("sluice_auth_failures_total", "Client logins rejected"),
            auth_blocked_hosts_total: r.counter(
                "sluice_auth_blocked_hosts_total",
                "Client hosts blocked after listen.auth_failure_limit failed logins",
            ),
            query_duration_primary: duration.with_label_values(&["primary"]),
            query_duration_replica: duration.with_label_values(&["replica"]),
            backend_up: r.gauges(
                "sluice_backend_up",
                "1 when the backend passes health checks",
                &["backend"],
            ),
            backend_role: r.gauges(
                "sluice_backend_role",
                "1 for the backend's current role",
                &["backend", "role"],
            ),
            replication_lag: r.add(GaugeVec::new(
                Opts::new(
                    "sluice_replication_lag_seconds",
                    "Replication lag used for routing (heartbeat, else Seconds_Behind)",
                ),
                &["backend"],
            )),
            backend_eligible: r.gauges(
                "sluice_backend_eligible",
                "1 when the replica may take reads",
                &["backend"],
            ),
            pool_connections: r.gauges(
                "sluice_pool_connections",
                "Backend connections by state",
                &["backend", "state"],
            ),
            pool_wait_seconds: r.add(Histogram::with_opts(
                HistogramOpts::new(
                    "sluice_pool_wait_seconds",
                    "Time spent waiting for a backend connection when none was free",
                )
                .buckets(BUCKETS.to_vec()),
            )),
            failovers_total: r.counter(
                "sluice_failovers_total",
                "Automatic failovers that promoted a replica",
            ),
            switchovers_total: r.counter(
                "sluice_switchovers_total",
                "Planned switchovers that promoted a replica",
            ),
            promotion_failures_total: r.counters(
                "sluice_promotion_failures_total",
                "Failovers and switchovers that ended in an error (promoted or not)",
                &["kind"],
            ),
            session_pins_total: r.counters(
                "sluice_session_pins_total",
                "Sessions that started keeping one primary connection, by reason",
                &["reason"],
            ),
            pinned_sessions: r.gauge(
                "sluice_pinned_sessions",
                "Sessions keeping one primary connection to themselves now",
            ),
            transaction_replays_total: r.counters(
                "sluice_transaction_replays_total",
                "Open transactions rerun on a new primary (success, mismatch, failed, not_replayable)",
                &["result"],
            ),
            config_reloads_total: reloads,
            config_last_reload_success: r.add(Gauge::new(
                "sluice_config_last_reload_success_timestamp_seconds",
                "Unix time of the last successful configuration load",
            )),
            split_brain: r.gauge(
                "sluice_split_brain",
                "1 while more than one backend is writable",
            ),
            gtid_position_reads_total: r.counter(
                "sluice_gtid_position_reads_total",
                "Reads of the primary's GTID position for read-your-writes after a committed write",
            ),
            registry: r.0,
            queries_total,
            query_errors_total,
            pool_timeouts_total,
            backends: Arc::new(arc_swap::ArcSwap::from_pointee(backends)),
        }
    }

    /// Prometheus text exposition of everything, refreshing the scrape-time gauges first.
    pub fn render(
        &self,
        topo: &crate::topology::Topology,
        clients: usize,
        cache: &crate::cache::ResultCache,
    ) -> String {
        let primary = topo.primary();
        self.client_connections.set(clients as i64);
        self.split_brain
            .set(topo.split_brain.load(Ordering::Relaxed) as i64);
        for (i, b) in topo.backends().iter().enumerate() {
            let name = b.pool.name.as_str();
            let st = b.state.load();
            let up = st.up && !b.pool.is_down();
            self.backend_up.with_label_values(&[name]).set(up as i64);
            self.backend_role
                .with_label_values(&[name, "primary"])
                .set((i == primary) as i64);
            self.backend_role
                .with_label_values(&[name, "replica"])
                .set((i != primary) as i64);
            let lag = if i == primary { Some(0) } else { st.lag_us() };
            self.replication_lag
                .with_label_values(&[name])
                .set(lag.map(|l| l as f64 / 1e6).unwrap_or(f64::NAN));
            let eligible = i != primary && up && b.weight() > 0 && st.eligible;
            self.backend_eligible
                .with_label_values(&[name])
                .set(eligible as i64);
            self.pool_connections
                .with_label_values(&[name, "busy"])
                .set(b.pool.busy.load(Ordering::Relaxed) as i64);
            self.pool_connections
                .with_label_values(&[name, "idle"])
                .set(b.pool.idle_count() as i64);
        }
        let (entries, bytes) = cache.usage();
        self.cache.entries.set(entries as i64);
        self.cache.bytes.set(bytes as i64);
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}
