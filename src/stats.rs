//! Query digest statistics with bounded memory: per (statement shape, user, database,
//! backend, route) a count, errors, rows, total and maximum latency and a latency histogram,
//! with the first text seen (literals as `?`). At most `stats.max_digests` rows: when full,
//! a new shape replaces the least-used of a sample of its shard's rows, and the replaced
//! row's figures go to an "others" row, so memory stays bounded whatever the workload. Sixteen shards, each a
//! short critical section: recording costs a hash, an uncontended lock and a map lookup; a
//! session that keeps the row's `Spot` adds its next statements of that row with the lock
//! alone (`add_at`).

use parking_lot::Mutex;
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

const SHARDS: usize = 16;
/// Upper bounds of the latency histogram, microseconds (the last bucket is open).
const BOUNDS_US: [u64; 17] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];
/// Rows compared to find the one to replace in a full shard.
const EVICTION_SAMPLE: usize = 32;
/// Longest statement text kept per row.
pub const MAX_TEXT: usize = 1024;

/// One executed statement, as the session reports it.
pub struct Sample<'a> {
    pub digest: u64,
    /// `context_of` the fields below that name the row (user, database, backend, route,
    /// rule): computed by the caller, which may keep it while they stay the same.
    pub context: u64,
    pub user: &'a str,
    pub database: Option<&'a str>,
    pub backend: &'a str,
    pub route: &'static str,
    /// The routing rule that matched (the last one, when several did).
    pub rule: Option<&'a str>,
    pub micros: u64,
    pub rows: u64,
    pub error: bool,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Figures {
    pub count: u64,
    pub errors: u64,
    pub rows: u64,
    pub total_us: u64,
    pub max_us: u64,
    #[serde(skip)]
    hist: [u32; BOUNDS_US.len() + 1],
}

impl Figures {
    fn add(&mut self, micros: u64, rows: u64, error: bool) {
        self.count += 1;
        self.errors += error as u64;
        self.rows += rows;
        self.total_us += micros;
        self.max_us = self.max_us.max(micros);
        let b = BOUNDS_US.partition_point(|&ub| ub < micros);
        self.hist[b] = self.hist[b].saturating_add(1);
    }

    fn merge(&mut self, o: &Figures) {
        self.count += o.count;
        self.errors += o.errors;
        self.rows += o.rows;
        self.total_us += o.total_us;
        self.max_us = self.max_us.max(o.max_us);
        for (a, b) in self.hist.iter_mut().zip(o.hist) {
            *a = a.saturating_add(b);
        }
    }

    /// The upper bound of the bucket holding quantile `q` (the maximum for the open one).
    pub fn percentile_us(&self, q: f64) -> u64 {
        let want = ((self.count as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0u64;
        for (i, n) in self.hist.iter().enumerate() {
            seen += *n as u64;
            if seen >= want {
                return BOUNDS_US
                    .get(i)
                    .map_or(self.max_us, |&b| b.min(self.max_us));
            }
        }
        self.max_us
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub digest: String,
    pub text: Arc<str>,
    pub user: Arc<str>,
    pub database: Arc<str>,
    pub backend: Arc<str>,
    pub route: &'static str,
    /// The routing rule that matched these statements (`[[rules]]`), if any.
    pub rule: Option<Arc<str>>,
    #[serde(flatten)]
    pub figures: Figures,
}

#[derive(Default)]
struct Shard {
    /// Keyed by an ahash already: ahash again, not SipHash, on the per-statement path.
    index: ahash::AHashMap<u64, usize>,
    rows: Vec<(u64, Row)>,
    others: Figures,
}

/// Where a statement's row was: its key (which names the shard) and its position there. Rows
/// move only when a full shard replaces one, the bound is lowered or the table is reset;
/// `Digests::add_at` checks the key under the shard's lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spot {
    key: u64,
    at: usize,
}

pub struct Digests {
    shards: Vec<Mutex<Shard>>,
    /// Rows per shard; 0: statistics off.
    per_shard: AtomicUsize,
    /// Slow-query threshold in microseconds; `u64::MAX`: off.
    slow_us: AtomicU64,
    log_values: AtomicBool,
}

/// What names a row besides its statement's shape, hashed (`Sample::context`).
pub fn context_of(
    user: &str,
    database: Option<&str>,
    backend: &str,
    route: &str,
    rule: Option<&str>,
) -> u64 {
    use std::hash::{BuildHasher, Hash, Hasher};
    let mut h = ahash::RandomState::with_seeds(1, 2, 3, 4).build_hasher();
    user.hash(&mut h);
    database.hash(&mut h);
    backend.hash(&mut h);
    route.hash(&mut h);
    rule.hash(&mut h);
    h.finish()
}

fn key_of(s: &Sample<'_>) -> u64 {
    ahash::RandomState::with_seeds(5, 6, 7, 8).hash_one((s.digest, s.context))
}

impl Digests {
    pub fn new(max_rows: usize) -> Self {
        let d = Digests {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard: Default::default(),
            slow_us: AtomicU64::new(u64::MAX),
            log_values: AtomicBool::new(false),
        };
        d.set_max(max_rows);
        d
    }

    /// Applies `[stats]` (at start and on reload).
    pub fn configure(&self, s: &crate::config::Stats) {
        self.set_max(s.max_digests);
        let slow = s.slow_query.map_or(u64::MAX, |d| d.0.as_micros() as u64);
        self.slow_us.store(slow, Ordering::Relaxed);
        self.log_values.store(s.log_values, Ordering::Relaxed);
    }

    /// A new bound; rows above it go when their shard next takes a new shape. 0: off.
    pub fn set_max(&self, max_rows: usize) {
        self.per_shard
            .store(max_rows.div_ceil(SHARDS), Ordering::Relaxed);
    }

    /// The slow-query threshold in microseconds, `u64::MAX` when off.
    pub fn slow_us(&self) -> u64 {
        self.slow_us.load(Ordering::Relaxed)
    }

    pub fn log_values(&self) -> bool {
        self.log_values.load(Ordering::Relaxed)
    }

    /// Adds one statement to the row at `spot` if it is still there (true), as `record`
    /// would; false: it moved or went, `record` finds its row.
    pub fn add_at(&self, spot: Spot, micros: u64, rows: u64, error: bool) -> bool {
        if self.per_shard.load(Ordering::Relaxed) == 0 {
            return true; // statistics off: `record` keeps nothing either
        }
        let mut shard = self.shards[(spot.key as usize) % SHARDS].lock();
        match shard.rows.get_mut(spot.at) {
            Some((key, row)) if *key == spot.key => {
                row.figures.add(micros, rows, error);
                true
            }
            _ => false,
        }
    }

    /// Records one statement; `text` is called only for a shape not seen before. Returns
    /// where its row is (`add_at`), `None` with statistics off.
    pub fn record(&self, s: &Sample<'_>, text: impl FnOnce() -> String) -> Option<Spot> {
        let per = self.per_shard.load(Ordering::Relaxed);
        if per == 0 {
            return None;
        }
        let key = key_of(s);
        let mut shard = self.shards[(key as usize) % SHARDS].lock();
        if let Some(&at) = shard.index.get(&key) {
            shard.rows[at].1.figures.add(s.micros, s.rows, s.error);
            return Some(Spot { key, at });
        }
        let mut figures = Figures::default();
        figures.add(s.micros, s.rows, s.error);
        let row = Row {
            digest: format!("{:016x}", s.digest),
            text: Arc::from(text()),
            user: Arc::from(s.user),
            database: Arc::from(s.database.unwrap_or("")),
            backend: Arc::from(s.backend),
            route: s.route,
            rule: s.rule.map(Arc::from),
            figures,
        };
        let shard = &mut *shard;
        while shard.rows.len() > per {
            // the bound was lowered by a reload
            let (old, r) = shard.rows.swap_remove(shard.rows.len() - 1);
            shard.index.remove(&old);
            shard.others.merge(&r.figures);
        }
        if shard.rows.len() < per {
            let at = shard.rows.len();
            shard.index.insert(key, at);
            shard.rows.push((key, row));
            return Some(Spot { key, at });
        }
        // full: the least-used of a sample of rows makes room (as Redis samples for its LFU:
        // a constant cost per new shape), its figures go to "others"
        let n = shard.rows.len();
        let from = (key as usize / SHARDS) % n;
        let i = (0..EVICTION_SAMPLE.min(n))
            .map(|k| (from + k) % n)
            .min_by_key(|&i| shard.rows[i].1.figures.count)
            .expect("a full shard has rows");
        let (old, gone) = std::mem::replace(&mut shard.rows[i], (key, row));
        shard.index.remove(&old);
        shard.index.insert(key, i);
        shard.others.merge(&gone.figures);
        Some(Spot { key, at: i })
    }

    /// All rows (copies) and the "others" figures.
    pub fn snapshot(&self) -> (Vec<Row>, Figures) {
        let mut rows = Vec::new();
        let mut others = Figures::default();
        for s in &self.shards {
            let s = s.lock();
            rows.extend(s.rows.iter().map(|(_, r)| r.clone()));
            others.merge(&s.others);
        }
        (rows, others)
    }

    pub fn reset(&self) {
        for s in &self.shards {
            *s.lock() = Shard::default();
        }
    }

    /// Rows held now.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().rows.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `GET /digests` as JSON: rows sorted by `sort` (`total_time`, `count`, `max_time`,
/// `errors`, `rows`, `p99`), at most `limit`, then the "others" row.
pub fn report(d: &Digests, sort: &str, limit: usize) -> Result<serde_json::Value, String> {
    let (mut rows, others) = d.snapshot();
    let key: fn(&Row) -> u64 = match sort {
        "total_time" => |r| r.figures.total_us,
        "count" => |r| r.figures.count,
        "max_time" => |r| r.figures.max_us,
        "errors" => |r| r.figures.errors,
        "rows" => |r| r.figures.rows,
        "p99" => |r| r.figures.percentile_us(0.99),
        other => {
            return Err(format!(
                "sort must be total_time, count, max_time, errors, rows or p99, not {other:?}"
            ))
        }
    };
    rows.sort_by_key(|r| std::cmp::Reverse(key(r)));
    let held = rows.len();
    let json_rows: Vec<serde_json::Value> = rows
        .iter()
        .take(limit)
        .map(|r| {
            let mut v = serde_json::to_value(r).unwrap_or_default();
            v["p50_us"] = r.figures.percentile_us(0.50).into();
            v["p95_us"] = r.figures.percentile_us(0.95).into();
            v["p99_us"] = r.figures.percentile_us(0.99).into();
            v["avg_us"] = (r.figures.total_us / r.figures.count.max(1)).into();
            v
        })
        .collect();
    Ok(serde_json::json!({
        "sort": sort,
        "rows_held": held,
        "digests": json_rows,
        "others": {
            "count": others.count,
            "errors": others.errors,
            "rows": others.rows,
            "total_us": others.total_us,
            "max_us": others.max_us,
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(digest: u64, micros: u64) -> Sample<'static> {
        Sample {
            digest,
            context: context_of("app", Some("shop"), "db1", "read", None),
            user: "app",
            database: Some("shop"),
            backend: "db1",
            route: "read",
            rule: None,
            micros,
            rows: 1,
            error: false,
        }
    }

    #[test]
    fn figures_and_percentiles() {
        let d = Digests::new(100);
        for us in 1..=100 {
            d.record(&sample(7, us * 100), || "SELECT ?".into());
        }
        let (rows, _) = d.snapshot();
        assert_eq!(rows.len(), 1);
        let f = &rows[0].figures;
        assert_eq!((f.count, f.max_us, f.rows), (100, 10_000, 100));
        assert_eq!(f.percentile_us(0.5), 5_000);
        assert_eq!(f.percentile_us(0.99), 10_000);
        assert_eq!(&*rows[0].text, "SELECT ?");
    }

    #[test]
    fn a_million_distinct_statements_stay_within_the_bound() {
        let d = Digests::new(5_000);
        for i in 0..100u64 {
            for _ in 0..50 {
                d.record(&sample(i, 10), || format!("hot {i}"));
            }
        }
        for i in 0..1_000_000u64 {
            d.record(&sample(1_000_000 + i, 10), || {
                "x".repeat(2000)[..MAX_TEXT].to_string()
            });
        }
        let (rows, others) = d.snapshot();
        assert!(rows.len() <= 5_000 + SHARDS, "{} rows", rows.len());
        let text: usize = rows.iter().map(|r| r.text.len()).sum();
        assert!(text <= rows.len() * MAX_TEXT);
        let total: u64 = rows.iter().map(|r| r.figures.count).sum::<u64>() + others.count;
        assert_eq!(
            total,
            100 * 50 + 1_000_000,
            "every statement is counted somewhere"
        );
        for i in 0..100u64 {
            assert!(
                rows.iter().any(|r| *r.text == format!("hot {i}")),
                "frequent shapes survive"
            );
        }
        d.reset();
        assert!(d.is_empty());
    }

    #[test]
    fn a_spot_adds_to_its_row_while_the_row_is_there() {
        let d = Digests::new(SHARDS); // one row per shard
        let spot = d.record(&sample(1, 10), || "a".into()).unwrap();
        assert_eq!(d.record(&sample(1, 10), || "a".into()), Some(spot));
        assert!(d.add_at(spot, 30, 2, true));
        let (rows, _) = d.snapshot();
        let f = &rows[0].figures;
        assert_eq!((f.count, f.rows, f.errors, f.max_us), (3, 4, 1, 30));
        // another shape of the same shard replaces the row: the spot is stale, nothing lost
        let other =
            (2..).find(|&g| key_of(&sample(g, 1)) % SHARDS as u64 == spot.key % SHARDS as u64);
        let other = d.record(&sample(other.unwrap(), 5), || "b".into()).unwrap();
        assert_eq!(other.at, spot.at);
        assert!(!d.add_at(spot, 10, 1, false));
        let (rows, others) = d.snapshot();
        assert_eq!(rows.len(), 1);
        assert_eq!((rows[0].figures.count, others.count), (1, 3));
        d.reset();
        assert!(!d.add_at(other, 10, 1, false), "a reset empties the shards");
        d.set_max(0);
        assert!(
            d.add_at(spot, 10, 1, false),
            "statistics off: nothing to find"
        );
        assert!(d.record(&sample(1, 10), || "a".into()).is_none());
        assert!(d.is_empty());
    }

    #[test]
    fn report_sorts_and_limits() {
        let d = Digests::new(100);
        d.record(&sample(1, 10), || "a".into());
        for _ in 0..3 {
            d.record(&sample(2, 5), || "b".into());
        }
        let v = report(&d, "count", 1).unwrap();
        assert_eq!(v["digests"].as_array().unwrap().len(), 1);
        assert_eq!(v["digests"][0]["text"], "b");
        assert_eq!(v["rows_held"], 2);
        assert!(report(&d, "nonsense", 1).is_err());
    }
}
