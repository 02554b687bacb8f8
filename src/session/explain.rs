//! `EXPLAIN ROUTE <statement>`: instead of running the statement, a result set (item,
//! value) that says how it was classified, where it would go and why, what the session holds,
//! the read-your-writes state, and each backend's eligibility.

use super::state::SessionState;
use super::{Fatal, Session};
use crate::protocol::{lenenc, reply};
use crate::router::{flag, Target};
use crate::shared::Shared;

const FLAG_NAMES: [(u32, &str); 20] = [
    (flag::LOCKING, "locking read"),
    (flag::INTO, "INTO"),
    (flag::SESSION_FN, "session function"),
    (flag::USER_VAR, "reads a user variable"),
    (flag::ASSIGNS_USER_VAR, "assigns a user variable"),
    (flag::TEMP_TABLE, "temporary table"),
    (flag::LOCK_TABLES, "LOCK TABLES"),
    (flag::GET_LOCK, "GET_LOCK"),
    (flag::CALC_FOUND_ROWS, "SQL_CALC_FOUND_ROWS"),
    (flag::SQL_PREPARE, "SQL PREPARE"),
    (flag::XA, "XA"),
    (flag::MULTI, "several statements"),
    (flag::HINT_PRIMARY, "hint: primary"),
    (flag::HINT_REPLICA, "hint: replica"),
    (flag::AUTOCOMMIT, "sets autocommit"),
    (flag::LAST_INSERT_ID, "LAST_INSERT_ID()"),
    (flag::PIN, "pins the session"),
    (flag::SERVER_STATE, "reads server state"),
    (flag::SHOW_WARNINGS, "about the previous statement"),
    (flag::GLOBAL_CHANGE, "changes global defaults or privileges"),
];

/// The statement after `EXPLAIN ROUTE`, if `sql` is one.
pub(super) fn explain_route_target(sql: &[u8]) -> Option<&[u8]> {
    let s = sql.trim_ascii_start();
    let rest = s.get(..7).filter(|w| w.eq_ignore_ascii_case(b"EXPLAIN"))?;
    let rest = s[rest.len()..].trim_ascii_start();
    let word = rest.get(..5).filter(|w| w.eq_ignore_ascii_case(b"ROUTE"))?;
    let after = &rest[word.len()..];
    after
        .first()
        .is_some_and(|c| c.is_ascii_whitespace())
        .then(|| after.trim_ascii())
}

fn names(flags: u32) -> String {
    let v: Vec<&str> = FLAG_NAMES
        .iter()
        .filter(|(f, _)| flags & f != 0)
        .map(|(_, n)| *n)
        .collect();
    if v.is_empty() {
        "none".into()
    } else {
        v.join(", ")
    }
}

/// Who asks (`EXPLAIN ROUTE` in a session; the admin API asks as nobody in particular).
#[derive(Default, Clone, Copy)]
pub struct Asker<'a> {
    pub user: &'a str,
    pub client: Option<std::net::IpAddr>,
    /// The session's last write GTID.
    pub gtid: &'a str,
    /// The session's framing (CLIENT_DEPRECATE_EOF): cached replies differ by it.
    pub deprecate_eof: bool,
}

/// The rows of `EXPLAIN ROUTE` for `stmt` in a session with `state` (a new session's when
/// asked through the admin API).
pub fn explain(
    shared: &Shared,
    stmt: &[u8],
    state: &SessionState,
    asker: Asker<'_>,
) -> Vec<(String, String)> {
    let gtid = asker.gtid;
    let view = crate::router::SessionView {
        in_transaction: state.in_transaction(),
        pinned: state.pins != 0,
        has_user_vars: state.user_vars,
    };
    let (mut intent, shape) = shared.classifier.classify_shaped(stmt);
    let mut rule_rows = Vec::new();
    let mut route = crate::router::route(&intent, &view);
    let rules = shared.rules.load();
    let subject = crate::rules::Subject {
        sql: stmt,
        intent: &intent,
        shape,
        user: asker.user,
        schema: state.database.as_deref(),
        client: asker.client,
    };
    if let Some(outcome) = rules.evaluate(&subject) {
        (intent, route) = explain_rules(shared, (stmt, &view), &rules, &outcome, &mut rule_rows)
            .unwrap_or((intent, route));
        let rejected = rules
            .last(&outcome, |r| r.actions.reject.as_ref())
            .is_some();
        if rules.last(&outcome, |r| r.actions.cache_ttl).is_some() && !rejected {
            let who = (asker.user, asker.deprecate_eof);
            let row = super::cached::explain(shared, (stmt, &intent, &view), state, who);
            rule_rows.push(("cache".into(), row));
        }
    }
    let (target, reason) = route;
    let rejected = rule_rows.iter().any(|(k, _)| k == "rule outcome");
    let cfg = shared.config.load();
    let mut rows = vec![
        ("statement".into(), crate::router::normalized(stmt, 1024)),
        ("digest".into(), format!("{:016x}", intent.digest)),
        ("classification".into(), format!("{:?}", intent.kind)),
        ("flags".into(), names(intent.flags)),
        (
            "route".into(),
            if rejected {
                "none: rejected by a rule".into()
            } else {
                format!(
                    "{} (reason: {})",
                    match target {
                        Target::Primary => "primary",
                        Target::Replica => "replica",
                        Target::Local => "Sluice itself",
                    },
                    reason.as_str()
                )
            },
        ),
        (
            "session".into(),
            format!(
                "in transaction: {}; pins: {}; user variables: {}",
                state.in_transaction(),
                names(state.pins),
                state.user_vars
            ),
        ),
        (
            "read_your_writes".into(),
            format!(
                "{:?}; last write GTID: {}",
                cfg.routing.read_your_writes,
                if gtid.is_empty() { "none" } else { gtid }
            ),
        ),
    ];
    rows.splice(4..4, rule_rows);
    let topo = &shared.topology;
    let primary = topo.primary();
    for (i, b) in topo.backends().iter().enumerate() {
        if b.is_removed() {
            continue;
        }
        let st = b.state.load();
        let lag = st
            .lag_us()
            .map_or("unknown".into(), |l| format!("{:.3}s", l as f64 / 1e6));
        let what = if i == primary {
            format!("primary, healthy: {}", st.up && !b.pool.is_down())
        } else if st.up && st.eligible && b.weight() > 0 && !b.pool.is_down() {
            format!("replica, lag {lag}, takes reads (weight {})", b.weight())
        } else {
            let why = if b.weight() == 0 {
                "weight 0 or drained".to_string()
            } else if b.pool.is_down() {
                "connections refused recently".to_string()
            } else {
                st.reason.clone()
            };
            format!("replica, lag {lag}, no reads: {why}")
        };
        rows.push((format!("backend {}", b.pool.name), what));
    }
    rows
}

/// One row per matched rule (what it does, and whether its route applies); the intent and
/// route after the rules, when they change them.
fn explain_rules(
    shared: &Shared,
    (stmt, view): (&[u8], &crate::router::SessionView),
    rules: &crate::rules::RuleSet,
    outcome: &crate::rules::Outcome,
    rows: &mut Vec<(String, String)>,
) -> Option<(crate::router::Intent, (Target, crate::router::Reason))> {
    for &i in &outcome.matched {
        let r = &rules.rules[i as usize];
        rows.push((format!("rule {}", r.name), r.describe(&rules.groups)));
    }
    if rules.last(outcome, |r| r.actions.reject.as_ref()).is_some() {
        rows.push((
            "rule outcome".into(),
            "rejected: nothing reaches a backend".into(),
        ));
        return None;
    }
    let text = rules.rewrite_quiet(outcome, stmt);
    let intent = match &text {
        Some(t) => {
            rows.push(("rewritten".into(), crate::router::normalized(t, 1024)));
            shared.classifier.classify(t)
        }
        None => shared.classifier.classify(stmt),
    };
    let policy = crate::router::route(&intent, view);
    let Some((to, rule)) = rules.route(outcome) else {
        return Some((intent, policy));
    };
    use super::ruled::{decide_route, Decision};
    match decide_route(policy, (to, rule), &intent, view) {
        Decision::Take(t) => Some((intent, (t, crate::router::Reason::Rule))),
        Decision::Policy(why) | Decision::Ignored(why) => {
            rows.push((
                format!("rule {} route", rule.name),
                format!("not applied: {why}"),
            ));
            Some((intent, policy))
        }
    }
}

impl Session {
    /// Answers `EXPLAIN ROUTE <stmt>` with a two-column result set; nothing is executed.
    pub(super) async fn explain_route(&mut self, stmt: &[u8]) -> Result<(), Fatal> {
        // the last write's GTID, as the next read would know it
        self.resolve_write().await;
        let asker = Asker {
            user: &self.login.user,
            client: self.peer_ip,
            gtid: &self.last_gtid_text,
            deprecate_eof: self.deprecate_eof,
        };
        let rows = explain(&self.shared, stmt, &self.state, asker);
        self.send_text_table([b"item", b"value"], rows).await
    }

    /// Sends a result set of two text columns named `names`.
    pub(super) async fn send_text_table(
        &mut self,
        names: [&[u8]; 2],
        rows: Vec<(String, String)>,
    ) -> Result<(), Fatal> {
        let rows = rows
            .into_iter()
            .map(|(a, b)| vec![Some(a), Some(b)])
            .collect();
        self.send_table(&names, rows).await
    }

    /// Sends a result set of text columns `names` (a `None` cell is NULL).
    pub(super) async fn send_table(
        &mut self,
        names: &[&[u8]],
        rows: Vec<Vec<Option<String>>>,
    ) -> Result<(), Fatal> {
        let status = self.state.status;
        let ext = self.flavour.extended_metadata;
        let w = &mut self.client_w;
        let mut count = Vec::new();
        lenenc::write_int(&mut count, names.len() as u64);
        w.write_packet(&mut self.seq, &count).await?;
        for name in names {
            w.write_packet(&mut self.seq, &text_column(name, ext))
                .await?;
        }
        if !self.deprecate_eof {
            w.write_packet(&mut self.seq, &reply::eof(status, 0))
                .await?;
        }
        for cells in rows {
            let mut row = Vec::new();
            for cell in cells {
                match cell {
                    Some(v) => lenenc::write_str(&mut row, v.as_bytes()),
                    None => row.push(0xFB),
                }
            }
            w.write_packet(&mut self.seq, &row).await?;
        }
        let end = reply::terminator(self.deprecate_eof, status, 0);
        w.write_packet(&mut self.seq, &end).await?;
        w.flush().await?;
        Ok(())
    }
}

/// A VARCHAR utf8mb4 NOT NULL column definition.
fn text_column(name: &[u8], extended_metadata: bool) -> Vec<u8> {
    // utf8mb4_general_ci, MYSQL_TYPE_VAR_STRING, NOT NULL
    super::local::column_def(name, extended_metadata, (45, 4096, 0xfd, 0x01))
}

#[cfg(test)]
mod tests {
    use super::explain_route_target as t;

    #[test]
    fn recognises_explain_route() {
        assert_eq!(t(b"EXPLAIN ROUTE SELECT 1"), Some(&b"SELECT 1"[..]));
        assert_eq!(
            t(b"  explain   route\tUPDATE t SET a=1 "),
            Some(&b"UPDATE t SET a=1"[..])
        );
        assert_eq!(t(b"EXPLAIN SELECT 1"), None);
        assert_eq!(t(b"EXPLAIN ROUTES"), None);
    }
}
