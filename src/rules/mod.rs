//! Routing rules, compiled: `[[rules]]` turned into regexes (one `RegexSet` per kind of
//! pattern, so many rules cost one pass), resolved server groups and per-rule counters.
//!
//! A rule's matches split in two. What depends only on the statement's shape (its kind,
//! digest and normalised text) is decided once per shape per worker thread (`cache`); the
//! rest (`pattern` on the text as sent, `user`, `schema`, `client`) is checked per statement,
//! and only for the rules the shape left in. `evaluate` walks the rules in file order: the
//! first match ends the search unless it has `continue = true`; a `reject` always ends it.

mod cache;
pub mod eval;
mod prefilter;
mod skip;

use crate::config::rules::{parse_client, RouteTo, RuleKind};
use crate::config::{Config, ReadYourWrites};
use crate::router::Kind;
use crate::topology::set::BackendSet;
use prometheus::IntCounter;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub use eval::{Outcome, Subject};

/// Compiled rule sets get distinct versions (the shape caches key on it).
static VERSIONS: AtomicU64 = AtomicU64::new(1);

/// A server group: the backends (by topology index) that list it.
#[derive(Debug)]
pub struct Group {
    pub name: Arc<str>,
    pub members: BackendSet,
    /// Copies dropped by this group's mirrors (`sluice_mirror_dropped_total{group}`).
    pub mirror_dropped: IntCounter,
}

/// Where a rule routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Primary,
    Replica,
    /// Index into `RuleSet::groups`.
    Group(usize),
}

/// What a rule does when it matches.
#[derive(Debug, Default)]
pub struct Actions {
    pub route: Option<Route>,
    pub fallback_error: bool,
    pub max_lag: Option<Duration>,
    pub read_your_writes: Option<ReadYourWrites>,
    pub reject: Option<(u16, String)>,
    pub rewrite: Option<String>,
    pub mirror: Option<usize>,
    pub mirror_writes: bool,
    pub timeout: Option<Duration>,
    pub cache_ttl: Option<Duration>,
    pub cache_refresh_ahead: bool,
    pub log: bool,
    pub keep_going: bool,
    pub override_hints: bool,
}

/// A rule's counters (pre-resolved Prometheus handles; `/rules` reads them back).
#[derive(Debug)]
pub struct Counters {
    pub hits: IntCounter,
    pub rejects: IntCounter,
    pub rewrites: IntCounter,
    pub routes: IntCounter,
    pub routes_ignored: IntCounter,
    pub mirrored: IntCounter,
    pub mirror_dropped: IntCounter,
    pub timeouts: IntCounter,
}

/// The action labels of `sluice_rule_actions_total`.
pub const ACTIONS: [&str; 7] = [
    "reject",
    "rewrite",
    "route",
    "route_ignored",
    "mirror",
    "mirror_dropped",
    "timeout",
];

impl Counters {
    fn new(m: &crate::metrics::Metrics, rule: &str) -> Self {
        let a = |action: &str| m.rule_actions_total.with_label_values(&[rule, action]);
        Counters {
            hits: m.rule_hits_total.with_label_values(&[rule]),
            rejects: a("reject"),
            rewrites: a("rewrite"),
            routes: a("route"),
            routes_ignored: a("route_ignored"),
            mirrored: a("mirror"),
            mirror_dropped: a("mirror_dropped"),
            timeouts: a("timeout"),
        }
    }
}

#[derive(Debug)]
pub struct Rule {
    pub name: Arc<str>,
    digest: Option<u64>,
    kind: Option<RuleKind>,
    user: Option<String>,
    schema: Option<String>,
    client: Option<ipnet::IpNet>,
    /// Index into `RuleSet::digest_set` / `pattern_set`.
    digest_pattern: Option<usize>,
    pattern: Option<usize>,
    /// The `pattern` regex itself, for `rewrite`.
    pattern_regex: Option<regex::bytes::Regex>,
    pub actions: Actions,
    pub counters: Counters,
    /// A route was ignored for safety: warned once.
    pub warned: std::sync::atomic::AtomicBool,
}

#[derive(Debug)]
pub struct RuleSet {
    pub version: u64,
    pub rules: Vec<Rule>,
    pub groups: Vec<Arc<Group>>,
    digest_set: regex::RegexSet,
    pattern_set: regex::bytes::RegexSet,
    /// Whether any `pattern` matches, in one cheap pass (a case-folding `RegexSet` costs
    /// several times more for the common answer, none).
    any_pattern: prefilter::AnyPattern,
    /// Whether any rule has a `digest_pattern` (the normalised text is computed only then).
    has_digest_patterns: bool,
    /// Whether any rule has `cache_ttl`.
    caching: bool,
}

impl Default for RuleSet {
    fn default() -> Self {
        RuleSet {
            version: VERSIONS.fetch_add(1, Ordering::Relaxed),
            rules: Vec::new(),
            groups: Vec::new(),
            digest_set: regex::RegexSet::empty(),
            pattern_set: regex::bytes::RegexSet::empty(),
            any_pattern: Default::default(),
            has_digest_patterns: false,
            caching: false,
        }
    }
}

/// The kind a rule's `kind` names, from the classifier's.
pub fn kind_of(k: Kind, ddl: bool) -> RuleKind {
    match k {
        Kind::Read => RuleKind::Read,
        Kind::Write if ddl => RuleKind::Ddl,
        Kind::Write => RuleKind::Write,
        _ => RuleKind::Other,
    }
}

impl Rule {
    /// What the rule does, for `EXPLAIN ROUTE` and `/rules`.
    pub fn describe(&self, groups: &[Arc<Group>]) -> String {
        let a = &self.actions;
        let group = |g: usize| groups.get(g).map_or("?".into(), |g| g.name.to_string());
        let mut v: Vec<String> = Vec::new();
        if let Some((code, msg)) = &a.reject {
            v.push(format!("reject {code} {msg:?}"));
        }
        if let Some(w) = &a.rewrite {
            v.push(format!("rewrite to {w:?}"));
        }
        match a.route {
            Some(Route::Primary) => v.push("route primary".into()),
            Some(Route::Replica) => v.push("route replica".into()),
            Some(Route::Group(g)) => v.push(format!("route group:{}", group(g))),
            None => {}
        }
        if a.fallback_error {
            v.push("fallback error".into());
        }
        if let Some(l) = a.max_lag {
            v.push(format!("max_lag {l:?}"));
        }
        if let Some(m) = a.read_your_writes {
            v.push(format!("read_your_writes {m:?}"));
        }
        if let Some(g) = a.mirror {
            let w = if a.mirror_writes { " (writes too)" } else { "" };
            v.push(format!("mirror group:{}{w}", group(g)));
        }
        if let Some(t) = a.timeout {
            v.push(format!("timeout {t:?}"));
        }
        if let Some(t) = a.cache_ttl {
            v.push(format!("cache {t:?}"));
        }
        if a.log {
            v.push("log".into());
        }
        if a.keep_going {
            v.push("continue".into());
        }
        if v.is_empty() {
            "no action".into()
        } else {
            v.join("; ")
        }
    }
}

impl RuleSet {
    /// Compiles a validated configuration's rules; groups resolve to the topology's
    /// backend indices (`index_of`: live backends by name).
    pub fn compile(
        cfg: &Config,
        index_of: impl Fn(&str) -> Option<usize>,
        metrics: &crate::metrics::Metrics,
    ) -> Result<RuleSet, String> {
        let mut set = RuleSet::default();
        let mut names: Vec<&str> = crate::config::rules::group_names(cfg).into_iter().collect();
        names.sort_unstable();
        for name in names {
            let mut members = BackendSet::default();
            for b in cfg
                .backends
                .iter()
                .filter(|b| b.groups.iter().any(|g| g == name))
            {
                if let Some(i) = index_of(&b.name) {
                    members.insert(i);
                }
            }
            set.groups.push(Arc::new(Group {
                name: Arc::from(name),
                members,
                mirror_dropped: metrics.mirror_dropped_total.with_label_values(&[name]),
            }));
        }
        let (mut digest_pats, mut pats) = (Vec::new(), Vec::new());
        for r in &cfg.rules {
            let rule = set.compile_rule(r, (&mut digest_pats, &mut pats), metrics)?;
            set.rules.push(rule);
        }
        set.has_digest_patterns = !digest_pats.is_empty();
        set.caching = set.rules.iter().any(|r| r.actions.cache_ttl.is_some());
        set.digest_set = regex::RegexSet::new(digest_pats).map_err(|e| e.to_string())?;
        let raw: Vec<(&str, bool)> = cfg
            .rules
            .iter()
            .filter_map(|r| r.pattern.as_deref().map(|p| (p, r.case_sensitive)))
            .collect();
        set.any_pattern = prefilter::AnyPattern::new(&raw);
        set.pattern_set = regex::bytes::RegexSet::new(pats).map_err(|e| e.to_string())?;
        Ok(set)
    }

    fn compile_rule(
        &self,
        r: &crate::config::rules::Rule,
        (digest_pats, pats): (&mut Vec<String>, &mut Vec<String>),
        metrics: &crate::metrics::Metrics,
    ) -> Result<Rule, String> {
        let flags = if r.case_sensitive { "" } else { "i" };
        let add = |list: &mut Vec<String>, p: &Option<String>| {
            p.as_ref().map(|p| {
                list.push(format!("(?{flags}:{p})"));
                list.len() - 1
            })
        };
        let digest_pattern = add(digest_pats, &r.digest_pattern);
        let pattern = r.pattern.as_deref().map(|p| {
            pats.push(prefilter::set_form(p, r.case_sensitive));
            pats.len() - 1
        });
        let group = |g: &str| self.groups.iter().position(|x| &*x.name == g);
        let route = match r.route.as_deref().map(RouteTo::parse) {
            None => None,
            Some(Some(RouteTo::Primary)) => Some(Route::Primary),
            Some(Some(RouteTo::Replica)) => Some(Route::Replica),
            Some(Some(RouteTo::Group(g))) => Some(Route::Group(
                group(&g).ok_or_else(|| format!("unknown group {g}"))?,
            )),
            Some(None) => return Err(format!("rule {}: bad route", r.name)),
        };
        let mirror = match r.mirror.as_deref().and_then(|m| m.strip_prefix("group:")) {
            Some(g) => Some(group(g).ok_or_else(|| format!("unknown group {g}"))?),
            None => None,
        };
        // on the bytes as sent: no UTF-8 validation per statement
        let pattern_regex = match &r.pattern {
            Some(p) => Some(
                regex::bytes::RegexBuilder::new(&prefilter::set_form(p, r.case_sensitive))
                    .size_limit(1 << 20)
                    .build()
                    .map_err(|e| e.to_string())?,
            ),
            None => None,
        };
        Ok(Rule {
            name: Arc::from(r.name.as_str()),
            digest: r
                .digest
                .as_deref()
                .and_then(|d| u64::from_str_radix(d, 16).ok()),
            kind: r.kind,
            user: r.user.clone(),
            schema: r.schema.clone(),
            client: r.client.as_deref().and_then(parse_client),
            digest_pattern,
            pattern,
            pattern_regex,
            actions: Actions {
                route,
                fallback_error: r.fallback == Some(crate::config::Fallback::Error),
                max_lag: r.max_lag.map(|d| d.0),
                read_your_writes: r.read_your_writes,
                reject: r.reject.clone().map(|m| (r.reject_code.unwrap_or(1148), m)),
                rewrite: r.rewrite.clone(),
                mirror,
                mirror_writes: r.mirror_writes,
                timeout: r.timeout.map(|d| d.0),
                cache_ttl: r.cache_ttl.map(|d| d.0),
                cache_refresh_ahead: r.cache_refresh_ahead,
                log: r.log,
                keep_going: r.keep_going,
                override_hints: r.override_hints,
            },
            counters: Counters::new(metrics, &r.name),
            warned: Default::default(),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether any rule caches (writes then invalidate the result cache).
    pub fn caches(&self) -> bool {
        self.caching
    }
}
