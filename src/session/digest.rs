//! Per-statement digest statistics and the slow-query log (`[stats]`).

use super::Session;
use crate::protocol::cmd;
use crate::router::Reason;
use crate::stats::{Sample, Spot, MAX_TEXT};
use std::sync::Arc;

/// One finished statement.
pub(super) struct Statement<'a> {
    pub payload: &'a [u8],
    pub digest: u64,
    pub backend: &'a Arc<str>,
    pub reason: Reason,
    /// Nanoseconds from the command's arrival to its reply.
    pub took_ns: u64,
    pub rows: u64,
    pub failed: bool,
}

/// The digest context (`stats::Sample::context`) of the session's last statement, kept while
/// its parts stay the same: hashing the names anew for every statement cost more than the
/// rest of recording it.
pub(super) struct Context {
    user: usize,
    database: Option<String>,
    backend: Arc<str>,
    route: &'static str,
    rule: Option<Arc<str>>,
    hash: u64,
}

/// Recent rows of the session's statements, by (digest, context) hashed to a place: a
/// statement of one of them is added with its row's lock alone (`Digests::add_at`).
const SPOTS: usize = 4;

/// The session's digest context and recent rows.
#[derive(Default)]
pub(super) struct Recorder {
    context: Option<Context>,
    spots: [Option<(u64, u64, Spot)>; SPOTS],
}

impl Context {
    /// Whether it names the same row: names by pointer (kept alive here), the database by
    /// value.
    fn same(
        &self,
        (user, database): (usize, Option<&str>),
        backend: &Arc<str>,
        route: &str,
        rule: Option<&Arc<str>>,
    ) -> bool {
        let same_rule = match (&self.rule, rule) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        };
        same_rule
            && self.user == user
            && Arc::ptr_eq(&self.backend, backend)
            && std::ptr::eq(self.route, route)
            && self.database.as_deref() == database
    }
}

impl Session {
    /// The digest context of a statement run on `backend` by `route` (see `Context`).
    fn digest_context(&mut self, backend: &Arc<str>, route: &'static str) -> u64 {
        let (user, database) = (self.login.user_index, self.state.database.as_deref());
        let rule = self.rule_note.as_ref().map(|n| &n.name);
        if let Some(c) = &self.digest_ctx.context {
            if c.same((user, database), backend, route, rule) {
                return c.hash;
            }
        }
        let rule_name = rule.map(|r| &**r);
        let hash = crate::stats::context_of(&self.login.user, database, backend, route, rule_name);
        self.digest_ctx.context = Some(Context {
            user,
            database: database.map(str::to_string),
            backend: backend.clone(),
            route,
            rule: rule.cloned(),
            hash,
        });
        hash
    }

    /// The statement's text with literals as `?` (the prepared SQL for an execution).
    fn statement_text(&self, payload: &[u8]) -> String {
        match payload.first() {
            Some(&cmd::QUERY) => crate::router::normalized(&payload[1..], MAX_TEXT),
            Some(&cmd::STMT_EXECUTE) => {
                let id = crate::protocol::lenenc::u32_at(payload, 1).unwrap_or(0);
                self.prepared_sql(id)
                    .map(|sql| crate::router::normalized(sql.as_bytes(), MAX_TEXT))
                    .unwrap_or_else(|| format!("(prepared statement {id})"))
            }
            Some(&c) => command_name(c),
            None => String::new(),
        }
    }

    pub(super) fn record_statement(&mut self, s: &Statement<'_>) {
        let route = s.reason.as_str();
        let context = self.digest_context(s.backend, route);
        let micros = s.took_ns / 1_000;
        let shared = &self.shared;
        let place = (s.digest ^ context) as usize % SPOTS;
        let added = matches!(self.digest_ctx.spots[place], Some((d, c, spot))
            if (d, c) == (s.digest, context) && shared.digests.add_at(spot, micros, s.rows, s.failed));
        if !added {
            let sample = Sample {
                digest: s.digest,
                context,
                user: &self.login.user,
                database: self.state.database.as_deref(),
                backend: s.backend,
                route,
                rule: self.rule_note.as_ref().map(|n| &*n.name),
                micros,
                rows: s.rows,
                error: s.failed,
            };
            let spot = shared
                .digests
                .record(&sample, || self.statement_text(s.payload));
            self.digest_ctx.spots[place] = spot.map(|spot| (s.digest, context, spot));
        }
        if micros >= self.shared.digests.slow_us() {
            self.log_slow(s);
        }
    }

    fn log_slow(&self, s: &Statement<'_>) {
        let text = if self.shared.digests.log_values() && s.payload.first() == Some(&cmd::QUERY) {
            String::from_utf8_lossy(&s.payload[1..])
                .chars()
                .take(MAX_TEXT)
                .collect()
        } else {
            self.statement_text(s.payload)
        };
        tracing::warn!(
            target: "sluice::slow",
            parent: &self.span,
            digest = %format!("{:016x}", s.digest),
            user = %self.login.user,
            backend = %s.backend,
            route = s.reason.as_str(),
            duration_ms = s.took_ns as f64 / 1e6,
            rows = s.rows,
            failed = s.failed,
            statement = %text,
            "slow query"
        );
    }
}

/// How the digest rows name a command other than a query or an execution.
fn command_name(c: u8) -> String {
    let name = match c {
        cmd::INIT_DB => "COM_INIT_DB (USE)",
        cmd::FIELD_LIST => "COM_FIELD_LIST",
        cmd::STATISTICS => "COM_STATISTICS",
        cmd::STMT_PREPARE => "COM_STMT_PREPARE",
        cmd::STMT_SEND_LONG_DATA => "COM_STMT_SEND_LONG_DATA",
        cmd::STMT_RESET => "COM_STMT_RESET",
        cmd::STMT_FETCH => "COM_STMT_FETCH",
        cmd::SET_OPTION => "COM_SET_OPTION",
        cmd::RESET_CONNECTION => "COM_RESET_CONNECTION",
        cmd::CHANGE_USER => "COM_CHANGE_USER",
        _ => return format!("(command 0x{c:02x})"),
    };
    format!("({name})")
}
