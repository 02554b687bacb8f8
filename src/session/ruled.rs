//! Applying the routing rules (`rules`) a statement matched: reject, rewrite, route (never
//! against the guarantees: writes, locking reads, transactions and pinned sessions stay on
//! the primary), lag and read-your-writes for its read, timeout, mirror, log.

use super::cached::Lookup;
use super::freshness::ReadPlan;
use super::{Fatal, Session};
use crate::error::SqlError;
use crate::protocol::cmd;
use crate::protocol::relay::Expect;
use crate::router::{flag, Intent, Kind, Reason, Target};
use crate::rules::{Outcome, Route, Rule, RuleSet};
use prometheus::IntCounter;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// A caching rule's name and TTL.
pub(super) type CacheRule = (Arc<str>, std::time::Duration);

/// The rule behind the current statement (digest rows, timeout counting).
pub(super) struct RuleNote {
    pub name: Arc<str>,
    /// The timeout rule's counter, when the statement runs under a rule's timeout.
    pub timeouts: Option<IntCounter>,
}

/// Whether a statement may leave the primary at all (what a rule cannot override).
fn replica_safe(intent: &Intent, view: &crate::router::SessionView) -> bool {
    intent.kind == Kind::Read
        && !intent.has(flag::LOCKING | flag::NEEDS_SESSION | flag::HARD_PIN | flag::SHOW_WARNINGS)
        && !view.in_transaction
        && !view.pinned
}

/// The ERR a `reject` rule sends.
fn reject_error(code: u16, msg: &str) -> SqlError {
    let state = if code == 1148 { "42000" } else { "HY000" };
    SqlError::new(code, state, msg.to_string())
}

/// What becomes of a rule's route for one statement.
pub enum Decision {
    /// Taken.
    Take(Target),
    /// Not the rule's to decide (Sluice answers the statement itself, or a hint wins).
    Policy(&'static str),
    /// Refused by a guarantee: why.
    Ignored(&'static str),
}

/// Whether a rule's route applies to a statement the policy routed to `policy`.
pub fn decide_route(
    policy: (Target, Reason),
    (to, rule): (Route, &Rule),
    intent: &Intent,
    view: &crate::router::SessionView,
) -> Decision {
    if policy.0 == Target::Local {
        return Decision::Policy("answered by Sluice");
    }
    if intent.has(flag::HINT_PRIMARY | flag::HINT_REPLICA) && !rule.actions.override_hints {
        return Decision::Policy("the statement's hint wins (override_hints = false)");
    }
    if to == Route::Primary {
        return Decision::Take(Target::Primary);
    }
    if view.in_transaction {
        return Decision::Ignored("inside a transaction statements stay on the primary");
    }
    if view.pinned {
        return Decision::Ignored("the session is pinned to its primary connection");
    }
    if !replica_safe(intent, view) {
        return Decision::Ignored(
            "a write, locking read or session-dependent statement stays on the primary",
        );
    }
    Decision::Take(Target::Replica)
}

impl Session {
    /// Runs a statement that matched rules (`outcome`, from `rules`).
    pub(super) async fn ruled(
        &mut self,
        packet: &[u8],
        mut intent: Intent,
        rules: &RuleSet,
        outcome: Outcome,
    ) -> Result<(), Fatal> {
        let sql = &packet[1..];
        self.note_matches(rules, &outcome, sql);
        if let Some(((code, msg), rule)) = rules.last(&outcome, |r| r.actions.reject.as_ref()) {
            rule.counters.rejects.inc();
            return self.send_err(&reject_error(*code, msg)).await;
        }
        let rewritten = rules.rewrite(&outcome, sql).map(|text| {
            let mut p = Vec::with_capacity(text.len() + 1);
            p.push(cmd::QUERY);
            p.extend_from_slice(&text);
            p
        });
        let packet = rewritten.as_deref().unwrap_or(packet);
        if rewritten.is_some() {
            intent = self.shared.classifier.classify(&packet[1..]);
        }
        let on_ok = self.on_ok(&intent, &packet[1..]);
        let mut route = self.plain_route(&intent);
        if let Some((to, rule)) = rules.route(&outcome) {
            route = self.rule_route(route, (to, rule), rules, &intent);
        }
        self.read_plan(rules, &outcome);
        let mut miss = None;
        if let Some((ttl, rule)) = rules.last(&outcome, |r| r.actions.cache_ttl) {
            let statement = (Box::from(packet), &packet[1..]);
            match self
                .cache_lookup(
                    statement,
                    &intent,
                    (&rule.name, ttl, rule.actions.cache_refresh_ahead),
                )
                .await?
            {
                Lookup::Hit => {
                    self.rule_note = None;
                    self.plan = ReadPlan::default();
                    return Ok(());
                }
                Lookup::Miss(m) => {
                    self.cache_miss_setup(&mut route);
                    miss = Some(m);
                }
                Lookup::Pass => {}
            }
        }
        let copy = self.mirror_copy(rules, &outcome, packet, &intent, route.0);
        let timed = self.with_timeout(rules, &outcome, packet, &intent);
        let packet = timed.as_deref().unwrap_or(packet);
        let r = self
            .execute(packet, Expect::ResultSets, route, &intent, on_ok)
            .await;
        if let Some(m) = miss {
            self.cache_store_if(m, r.is_ok());
        }
        if let Some((copy, counted)) = copy {
            // after the client has its reply: the mirror never delays it
            let (shared, slot) = (self.shared.clone(), self.pool_slot());
            let opts = self.connect_opts(self.shared.topology.primary());
            let worker = move || super::mirror::Worker { shared, opts, slot };
            if self.mirrors.send(copy, worker) {
                counted.inc();
            }
        }
        self.rule_note = None;
        self.plan = ReadPlan::default();
        r
    }

    /// The rules statement `sql` (classified as `intent`, shape id `shape`) matches, if any.
    pub(super) fn match_rules(
        &mut self,
        sql: &[u8],
        intent: &Intent,
        shape: u64,
    ) -> Option<(Arc<RuleSet>, Outcome)> {
        let rules = self.rules.load();
        if rules.is_empty() {
            return None;
        }
        let subject = crate::rules::Subject {
            sql,
            intent,
            shape,
            user: &self.login.user,
            schema: self.state.database.as_deref(),
            client: self.peer_ip,
        };
        let outcome = rules.evaluate(&subject)?;
        Some((Arc::clone(rules), outcome))
    }

    /// COM_STMT_PREPARE: the error of a matching `reject` rule (counted), if any.
    pub(super) fn rule_rejects(
        &mut self,
        sql: &[u8],
        (intent, shape): (&Intent, u64),
    ) -> Option<SqlError> {
        let (rules, outcome) = self.match_rules(sql, intent, shape)?;
        let ((code, msg), rule) = rules.last(&outcome, |r| r.actions.reject.as_ref())?;
        rule.counters.hits.inc();
        rule.counters.rejects.inc();
        Some(reject_error(*code, msg))
    }

    /// COM_STMT_EXECUTE: the route, lag bound, read-your-writes mode and cache TTL of the
    /// rules the prepared statement's text matches (rewrite, timeout and mirror apply to
    /// text statements only).
    pub(super) fn rules_for_execute(
        &mut self,
        sql: &str,
        intent: &Intent,
        policy: (Target, Reason),
    ) -> ((Target, Reason), Option<CacheRule>) {
        if self.rules.load().is_empty() {
            return (policy, None); // no classification of the text per execution
        }
        let (matched, shape) = self.shared.classifier.classify_shaped(sql.as_bytes());
        let Some((rules, outcome)) = self.match_rules(sql.as_bytes(), &matched, shape) else {
            return (policy, None);
        };
        self.note_matches(&rules, &outcome, sql.as_bytes());
        self.read_plan(&rules, &outcome);
        let cache = rules
            .last(&outcome, |r| r.actions.cache_ttl)
            .map(|(ttl, r)| (r.name.clone(), ttl));
        let route = match rules.route(&outcome) {
            Some((to, rule)) => self.rule_route(policy, (to, rule), &rules, intent),
            None => policy,
        };
        (route, cache)
    }

    /// The matched rules' `max_lag` and `read_your_writes` for the statement's read.
    fn read_plan(&mut self, rules: &RuleSet, outcome: &Outcome) {
        if let Some((lag, _)) = rules.last(outcome, |r| r.actions.max_lag) {
            self.plan.lag_bound_us = Some(lag.as_micros() as i64);
        }
        if let Some((ryw, _)) = rules.last(outcome, |r| r.actions.read_your_writes) {
            self.plan.read_your_writes = Some(ryw);
        }
    }

    /// Counts the hits, logs `log = true` rules, and notes the rule for the digest row.
    fn note_matches(&mut self, rules: &RuleSet, outcome: &Outcome, sql: &[u8]) {
        for &i in &outcome.matched {
            let r = &rules.rules[i as usize];
            r.counters.hits.inc();
            if r.actions.log {
                tracing::info!(
                    target: "sluice::rules",
                    parent: &self.span,
                    rule = %r.name,
                    user = %self.login.user,
                    database = self.state.database.as_deref().unwrap_or(""),
                    statement = %crate::router::normalized(sql, 1024),
                    "rule matched"
                );
            }
        }
        if let Some(&last) = outcome.matched.last() {
            self.rule_note = Some(RuleNote {
                name: rules.rules[last as usize].name.clone(),
                timeouts: None,
            });
        }
    }

    /// The route a rule asks for, if the statement may take it; otherwise the policy's.
    fn rule_route(
        &mut self,
        policy: (Target, Reason),
        (to, rule): (Route, &Rule),
        rules: &RuleSet,
        intent: &Intent,
    ) -> (Target, Reason) {
        match decide_route(policy, (to, rule), intent, &self.view()) {
            Decision::Policy(_) => policy,
            Decision::Ignored(why) => {
                rule.counters.routes_ignored.inc();
                if !rule.warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(parent: &self.span, rule = %rule.name, "rule route ignored for a statement: {why} (counted as route_ignored; warned once per rule)");
                }
                policy
            }
            Decision::Take(target) => {
                rule.counters.routes.inc();
                if to != Route::Primary {
                    self.plan = ReadPlan {
                        group: match to {
                            Route::Group(g) => rules.groups.get(g).cloned(),
                            _ => None,
                        },
                        fallback_error: rule.actions.fallback_error,
                        ..std::mem::take(&mut self.plan)
                    };
                }
                (target, Reason::Rule)
            }
        }
    }

    /// A copy for the last matched rule's mirror group (reads only, unless the rule has
    /// `mirror_writes`), with the rule's `mirror` counter.
    fn mirror_copy(
        &self,
        rules: &RuleSet,
        outcome: &Outcome,
        packet: &[u8],
        intent: &Intent,
        target: Target,
    ) -> Option<(super::mirror::Copy, IntCounter)> {
        let (g, rule) = rules.last(outcome, |r| r.actions.mirror)?;
        let read = intent.kind == Kind::Read && replica_safe(intent, &self.view());
        let write_copied = rule.actions.mirror_writes && target == Target::Primary;
        if !(read || write_copied) {
            return None;
        }
        let copy = super::mirror::Copy {
            packet: Arc::from(packet),
            database: self.state.database.clone(),
            group: rules.groups.get(g)?.clone(),
            dropped: rule.counters.mirror_dropped.clone(),
        };
        Some((copy, rule.counters.mirrored.clone()))
    }

    /// The statement under the last matched rule's `timeout`: MariaDB runs it with
    /// `SET STATEMENT max_statement_time` (ERR 1969 when it fires), MySQL's SELECTs with the
    /// `MAX_EXECUTION_TIME` optimizer hint (ERR 3024). `None`: unchanged.
    fn with_timeout(
        &mut self,
        rules: &RuleSet,
        outcome: &Outcome,
        packet: &[u8],
        intent: &Intent,
    ) -> Option<Vec<u8>> {
        let (limit, rule) = rules.last(outcome, |r| r.actions.timeout)?;
        if !matches!(intent.kind, Kind::Read | Kind::Write) || intent.has(flag::MULTI) {
            return None;
        }
        let sql = &packet[1..];
        let mut p = Vec::with_capacity(packet.len() + 64);
        p.push(cmd::QUERY);
        if self.shared.server_version.contains("MariaDB") {
            let secs = limit.as_secs_f64();
            p.extend_from_slice(format!("SET STATEMENT max_statement_time={secs} FOR ").as_bytes());
            p.extend_from_slice(sql);
        } else {
            let word = crate::router::first_word(sql)?;
            if !word.eq_ignore_ascii_case(b"SELECT") {
                return None;
            }
            let at = word.as_ptr() as usize - sql.as_ptr() as usize + word.len();
            p.extend_from_slice(&sql[..at]);
            p.extend_from_slice(
                format!(" /*+ MAX_EXECUTION_TIME({}) */", limit.as_millis()).as_bytes(),
            );
            p.extend_from_slice(&sql[at..]);
        }
        if let Some(note) = &mut self.rule_note {
            note.timeouts = Some(rule.counters.timeouts.clone());
        }
        Some(p)
    }

    /// A statement's reply ended in ERR `code`: counts a rule's timeout that fired.
    pub(super) fn rule_error(&self, code: u16) {
        if let Some(t) = self.rule_note.as_ref().and_then(|n| n.timeouts.as_ref()) {
            if code == 1969 || code == 3024 {
                t.inc();
            }
        }
    }
}
