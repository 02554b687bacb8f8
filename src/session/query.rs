//! COM_QUERY: which statements Sluice answers or routes itself (decided synchronously, so
//! that the command loop places the plain path's `execute` in the command slot directly: no
//! async layer of `dispatch` or of a query function on every statement), and the bookkeeping
//! and route of the plain path.

use super::{exec, explain, local, processlist, processlist_view, Fatal, Session};
use crate::router::{flag, Intent, Kind, Reason, Target};
use crate::rules::{Outcome, RuleSet};
use std::ops::Range;
use std::sync::Arc;

/// A statement that does not take the plain path, with what its handler needs.
pub(super) enum Special<'a> {
    /// The session's transaction was lost and not yet acknowledged.
    LostTransaction,
    /// `SELECT CONNECTION_ID()` as this column name: the session's own id.
    ConnectionId(&'a [u8]),
    /// `EXPLAIN ROUTE` of this statement.
    ExplainRoute(&'a [u8]),
    /// `SHOW STATUS LIKE` this pattern of `Ssl_%` variables: the client's TLS, not the pool's.
    SslStatus(&'a [u8]),
    /// A read of `session_status` at these places.
    SessionStatusView(Vec<(Range<usize>, bool)>),
    /// `SHOW [FULL] PROCESSLIST`.
    Processlist(bool),
    /// A read of the process list view at these places.
    ProcesslistView(Vec<(Range<usize>, bool)>),
    /// `KILL [QUERY] id`.
    Kill(bool, u64),
    /// Routing rules matched.
    Ruled(Arc<RuleSet>, Outcome),
}

/// How a COM_QUERY runs: the plain path (classified, its route and bookkeeping) or a special
/// one. Decided synchronously, so that the caller places `execute` (or `query_special`) in the
/// command slot itself, with no async layer of its own in between.
pub(super) enum QueryPlan<'a> {
    Plain(Intent, (Target, Reason), exec::OnOk),
    Special(Intent, Special<'a>),
}

impl Session {
    /// Classifies COM_QUERY `packet` and decides its path.
    pub(super) fn query_plan<'a>(&mut self, packet: &'a [u8]) -> QueryPlan<'a> {
        let sql = &packet[1..];
        let (intent, shape) = self.shared.classifier.classify_shaped(sql);
        match self.special(sql, &intent, shape) {
            None => {
                let on_ok = self.on_ok(&intent, sql);
                let route = self.plain_route(&intent);
                QueryPlan::Plain(intent, route, on_ok)
            }
            Some(special) => QueryPlan::Special(intent, special),
        }
    }

    /// The special path statement `sql` (classified as `intent`, shape `shape`) takes, `None`
    /// for the plain one. The checks run in this order; each is cheap when it does not apply.
    fn special<'a>(&mut self, sql: &'a [u8], intent: &Intent, shape: u64) -> Option<Special<'a>> {
        if self.tx_lost {
            return Some(Special::LostTransaction);
        }
        if intent.has(flag::SESSION_FN) {
            if let Some(name) = local::connection_id_column(sql) {
                return Some(Special::ConnectionId(name));
            }
        }
        if intent.kind == Kind::Read {
            if let Some(stmt) = explain::explain_route_target(sql) {
                return Some(Special::ExplainRoute(stmt));
            }
        }
        if intent.has(flag::SHOW_WARNINGS) {
            if let Some(pattern) = local::ssl_status_like(sql) {
                return Some(Special::SslStatus(pattern));
            }
            if intent.kind == Kind::Read {
                let at = processlist_view::mentions_of(sql, b"session_status");
                if !at.is_empty() {
                    return Some(Special::SessionStatusView(at));
                }
            }
        }
        if intent.has(flag::SERVER_STATE) {
            if let Some(full) = processlist::show_processlist(sql) {
                return Some(Special::Processlist(full));
            }
            if intent.kind == Kind::Read {
                let at = processlist_view::mentions(sql);
                if !at.is_empty() {
                    return Some(Special::ProcesslistView(at));
                }
            }
        }
        if intent.kind == Kind::Kill {
            if let Some((query_only, id)) = crate::router::classify::kill_target(sql) {
                return Some(Special::Kill(query_only, id));
            }
        }
        let (rules, outcome) = self.match_rules(sql, intent, shape)?;
        Some(Special::Ruled(rules, outcome))
    }

    /// Runs a statement of the special path `special` (`Session::special`).
    pub(super) async fn query_special(
        &mut self,
        packet: &[u8],
        intent: Intent,
        special: Special<'_>,
    ) -> Result<(), Fatal> {
        let sql = &packet[1..];
        match special {
            Special::LostTransaction => self.after_lost_transaction(&intent, sql).await,
            Special::ConnectionId(name) => {
                let id = self.handle.id as u64;
                self.send_single_int(name, id).await
            }
            Special::ExplainRoute(stmt) => self.explain_route(stmt).await,
            Special::SslStatus(pattern) => self.ssl_status(pattern).await,
            Special::SessionStatusView(at) => self.session_status_view(sql, &at, &intent).await,
            Special::Processlist(full) => self.processlist(sql, full).await,
            Special::ProcesslistView(at) => self.processlist_view(sql, &at, &intent).await,
            Special::Kill(query_only, id) => self.kill(query_only, id).await,
            Special::Ruled(rules, outcome) => self.ruled(packet, intent, &rules, outcome).await,
        }
    }

    /// The session bookkeeping a statement needs when it succeeds.
    pub(super) fn on_ok(&self, intent: &Intent, sql: &[u8]) -> exec::OnOk {
        match intent.kind {
            Kind::SetSession => {
                exec::OnOk::AddVar(Arc::from(String::from_utf8_lossy(sql).as_ref()))
            }
            Kind::Use => match crate::router::classify::use_target(sql) {
                Some(db) => exec::OnOk::SetDb(db),
                None => exec::OnOk::Nothing,
            },
            Kind::Write => match crate::router::classify::drop_database_target(sql) {
                Some(db) => exec::OnOk::DropDb(db),
                None => exec::OnOk::Nothing,
            },
            _ => exec::OnOk::Nothing,
        }
    }

    /// Where the routing policy sends a statement (no rules).
    pub(super) fn plain_route(&self, intent: &Intent) -> (Target, Reason) {
        let route = crate::router::route(intent, &self.view());
        if intent.has(flag::SHOW_WARNINGS)
            && !intent.has(flag::SERVER_STATE)
            && (self.warnings_on_primary || intent.has(flag::STATUS))
        {
            return (Target::Primary, Reason::Session);
        }
        route
    }

    /// While a lost transaction is unacknowledged: ROLLBACK clears it, anything else errors.
    async fn after_lost_transaction(&mut self, intent: &Intent, sql: &[u8]) -> Result<(), Fatal> {
        let is_rollback = intent.kind == Kind::EndTx
            && sql
                .trim_ascii_start()
                .get(..8)
                .is_some_and(|w| w.eq_ignore_ascii_case(b"ROLLBACK"));
        if is_rollback {
            self.tx_lost = false;
            return self.send_ok().await;
        }
        if intent.kind == Kind::EndTx {
            self.tx_lost = false;
        }
        self.send_err(&super::lost_transaction()).await
    }
}
