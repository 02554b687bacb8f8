//! The result cache on the statement path: a rule's `cache_ttl` read answered from memory,
//! or run on the primary (one run per key at a time) and kept; writes invalidate the
//! tables they name before their reply reaches the client.

use super::{Fatal, Session};
use crate::cache::flight::{self, Flight, Lead};
use crate::cache::tables::{self, Written};
use crate::cache::{Cause, Key};
use crate::protocol::{cmd, status};
use crate::router::{flag, Intent, Kind, Reason, Target};
use std::sync::Arc;
use std::time::Duration;

/// A miss being run: what to store its reply under.
pub(super) struct Miss {
    hash: u64,
    key: Key,
    rule: Arc<str>,
    ttl: Duration,
    born: u64,
    primary: usize,
    /// The statement's text (the tables it reads are parsed from it when it is kept).
    sql: Box<[u8]>,
    _lead: Option<Lead>,
}

/// What the cache made of a statement.
pub(super) enum Lookup {
    /// Answered from the cache.
    Hit,
    /// Run it on the primary and keep the reply.
    Miss(Miss),
    /// Not cacheable now: run it as usual.
    Pass,
}

/// How long a miss waits for an identical one already running.
const FLIGHT_WAIT: Duration = Duration::from_secs(10);

/// Flags of statements whose reply is never cached (whatever their text says).
const NEVER: u32 = flag::LOCKING
    | flag::NEEDS_SESSION
    | flag::HARD_PIN
    | flag::SHOW_WARNINGS
    | flag::SERVER_STATE
    | flag::MULTI
    | flag::CALC_FOUND_ROWS
    | flag::CALL
    | flag::SQL_PREPARE;

/// Whether `reply` (whole packets) is one complete result set: columns, rows, a final
/// terminator with no more results and no error.
pub(super) fn complete_result_set(reply: &[u8]) -> bool {
    let mut at = 0;
    let (mut first, mut last) = (None, None);
    while at + 4 <= reply.len() {
        let len = crate::protocol::packet::payload_len(&reply[at..at + 4]);
        let payload = reply.get(at + 4..at + 4 + len);
        let Some(payload) = payload else { return false };
        first.get_or_insert(payload);
        last = Some(payload);
        at += 4 + len;
    }
    let (Some(first), Some(last)) = (first, last) else {
        return false;
    };
    // (status, warnings) of the terminator: a reply with warnings is not kept (SHOW WARNINGS
    // after a hit could not answer for it)
    let (st, warnings) = match last.len() {
        5 => (
            u16::from_le_bytes([last[3], last[4]]),
            u16::from_le_bytes([last[1], last[2]]),
        ),
        _ => crate::protocol::reply::parse_ok(last)
            .map_or((status::MORE_RESULTS, 0), |ok| (ok.status, ok.warnings)),
    };
    at == reply.len()
        && !matches!(first.first(), None | Some(0x00 | 0xFF | 0xFB))
        && last.first() == Some(&0xFE)
        && st & status::MORE_RESULTS == 0
        && warnings == 0
}

/// Why a statement's reply cannot be cached now, if it cannot.
fn not_cacheable(intent: &Intent, view: &crate::router::SessionView) -> Option<&'static str> {
    if intent.kind != Kind::Read {
        Some("not a read")
    } else if intent.has(NEVER) {
        Some("a locking, session-dependent, server-state or multi-statement read")
    } else if view.in_transaction {
        Some("inside a transaction")
    } else if view.pinned || view.has_user_vars {
        Some("the session keeps its own connection (pinned, user variables)")
    } else {
        None
    }
}

fn key(
    user: &str,
    state: &super::state::SessionState,
    deprecate_eof: bool,
    statement: Box<[u8]>,
) -> Key {
    Key {
        user: Arc::from(user),
        database: state.database.as_deref().map(Arc::from),
        vars: state.vars.clone(),
        deprecate_eof,
        statement,
    }
}

/// `EXPLAIN ROUTE`'s cache row for text statement `stmt` (looked up, nothing counted).
pub(super) fn explain(
    shared: &crate::shared::Shared,
    (stmt, intent, view): (&[u8], &Intent, &crate::router::SessionView),
    state: &super::state::SessionState,
    (user, deprecate_eof): (&str, bool),
) -> String {
    if let Some(why) = not_cacheable(intent, view) {
        return format!("not cacheable: {why}");
    }
    if tables::read_tables(stmt, state.database.as_deref()).is_none() {
        return "not cacheable: a volatile function, a variable, INTO, a server-state table \
                or a table without a current database"
            .into();
    }
    let mut packet = vec![cmd::QUERY];
    packet.extend_from_slice(stmt);
    let k = key(user, state, deprecate_eof, packet.into_boxed_slice());
    let cache = &shared.cache;
    match cache.get(cache.hash(&k), &k, shared.topology.primary()) {
        Some(e) => format!("cache hit, age {:.1} s", e.stored.elapsed().as_secs_f64()),
        None => "cache miss: it would run on the primary and be kept".into(),
    }
}

impl Session {
    /// Looks a statement up for a rule that caches for `ttl`: `statement` is what its reply
    /// depends on (the COM_QUERY packet; for COM_STMT_EXECUTE the SQL, parameter types and
    /// bound values), `sql` its text, `intent` its classification.
    pub(super) async fn cache_lookup(
        &mut self,
        (statement, sql): (Box<[u8]>, &[u8]),
        intent: &Intent,
        (rule, ttl, refresh_ahead): (&Arc<str>, Duration, bool),
    ) -> Result<Lookup, Fatal> {
        let cache = self.shared.cache.clone();
        if not_cacheable(intent, &self.view()).is_some() {
            cache.metrics.uncacheable.with_label_values(&[rule]).inc();
            return Ok(Lookup::Pass);
        }
        let key = key(&self.login.user, &self.state, self.deprecate_eof, statement);
        let hash = cache.hash(&key);
        let primary = self.shared.topology.primary();
        let mut lead = None;
        for _ in 0..2 {
            if let Some(e) = cache.get(hash, &key, primary) {
                cache.metrics.hits.with_label_values(&[rule]).inc();
                // no connection ran it: diagnostics have nothing of it to answer about
                self.held = None;
                self.last_ran = None;
                self.client_w.write_raw(&e.bytes).await?;
                self.flush_reply().await?;
                if refresh_ahead && super::refresh::due(e.stored.elapsed(), ttl) {
                    self.refresh_ahead((hash, key), (rule, ttl), primary);
                }
                return Ok(Lookup::Hit);
            }
            match cache.flight(hash) {
                Flight::Lead(l) => {
                    lead = Some(l);
                    break;
                }
                Flight::Wait(rx) => flight::wait(rx, FLIGHT_WAIT).await,
            }
        }
        cache.metrics.misses.with_label_values(&[rule]).inc();
        Ok(Lookup::Miss(Miss {
            hash,
            key,
            rule: rule.clone(),
            ttl,
            born: cache.now(),
            primary,
            sql: sql.into(),
            _lead: lead,
        }))
    }

    /// `cache_lookup` for COM_STMT_EXECUTE `packet` of prepared statement `sql` (parameter
    /// types `types` from an earlier execution, if bound there).
    pub(super) async fn execute_lookup(
        &mut self,
        (packet, sql, types): (&[u8], &str, Option<&[u8]>),
        intent: &Intent,
        (rule, ttl): (Arc<str>, Duration),
    ) -> Result<Lookup, Fatal> {
        // the reply depends on the text, the parameter types and the bound values (the
        // statement id differs from session to session)
        let mut key = vec![cmd::STMT_EXECUTE];
        key.extend_from_slice(sql.as_bytes());
        key.push(0);
        key.extend_from_slice(types.unwrap_or_default());
        key.push(0);
        key.extend_from_slice(packet.get(5..).unwrap_or_default());
        let statement = (key.into_boxed_slice(), sql.as_bytes());
        // no refresh ahead: the statement is prepared on the session's connections only
        self.cache_lookup(statement, intent, (&rule, ttl, false))
            .await
    }

    /// Starts one refresh of the entry of `key` (text statements), unless one runs.
    fn refresh_ahead(&self, (hash, key): (u64, Key), rule: (&Arc<str>, Duration), primary: usize) {
        if key.statement.first() != Some(&cmd::QUERY) {
            return;
        }
        let Some(lead) = self.shared.cache.try_lead(hash) else {
            return;
        };
        super::refresh::spawn(super::refresh::Refresh {
            shared: self.shared.clone(),
            opts: self.connect_opts(primary),
            slot: self.pool_slot(),
            hash,
            key,
            rule: (rule.0.clone(), rule.1),
            primary,
            _lead: lead,
        });
    }

    /// After a miss ran (`ran`: its reply was sent): keeps the reply, and stops capturing.
    pub(super) fn cache_store_if(&mut self, miss: Miss, ran: bool) {
        if ran {
            self.cache_store(miss);
        }
        self.client_w.take_capture();
    }

    /// Keeps the reply just sent for `miss`, when it is one whole result set of a
    /// cacheable statement.
    fn cache_store(&mut self, miss: Miss) {
        let cache = &self.shared.cache;
        let Some(reply) = self.client_w.take_capture() else {
            cache
                .metrics
                .uncacheable
                .with_label_values(&[&miss.rule])
                .inc();
            return;
        };
        let read = tables::read_tables(&miss.sql, self.state.database.as_deref());
        match read {
            Some(tables) if complete_result_set(&reply) && cache.views_allow(&tables) => {
                let rule = (miss.rule, miss.ttl);
                let born = (miss.born, miss.primary);
                cache.store((miss.hash, miss.key), reply, tables, rule, born);
            }
            _ => cache
                .metrics
                .uncacheable
                .with_label_values(&[&miss.rule])
                .inc(),
        }
    }

    /// Runs a miss (`route` becomes the primary's) with the reply captured.
    pub(super) fn cache_miss_setup(&mut self, route: &mut (Target, Reason)) {
        // a kept reply must hold every write acknowledged before it started
        *route = (Target::Primary, Reason::Rule);
        self.client_w
            .start_capture(self.shared.cache.max_entry_size);
    }

    /// After a statement that may have written (`payload`, classified `intent`, ending with
    /// status `st`): invalidates its tables now, and again when its transaction ends (a
    /// read between the two saw the data before the commit).
    pub(super) fn cache_written(&mut self, payload: &[u8], intent: &Intent, st: u16) {
        if !self.shared.cache.active() {
            return;
        }
        if intent.kind == Kind::Write {
            let sql = match payload.first() {
                Some(&cmd::QUERY) => Some(&payload[1..]),
                Some(&cmd::STMT_EXECUTE) => payload
                    .get(1..5)
                    .and_then(|id| self.prepared_sql(u32::from_le_bytes(id.try_into().ok()?)))
                    .map(str::as_bytes),
                _ => None,
            };
            let w = match sql {
                Some(sql) => {
                    self.shared.cache.saw_ddl(sql);
                    tables::written(sql, self.state.database.as_deref())
                }
                None => Written::Everything,
            };
            self.shared.cache.invalidate(&w, Cause::Write);
            if st & status::IN_TRANS != 0 {
                self.cache_pending.push(w);
            }
        }
        if st & status::IN_TRANS == 0 && !self.cache_pending.is_empty() {
            for w in std::mem::take(&mut self.cache_pending) {
                self.shared.cache.invalidate(&w, Cause::Write);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::complete_result_set;

    fn packets(payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, p) in payloads.iter().enumerate() {
            out.extend_from_slice(&(p.len() as u32).to_le_bytes()[..3]);
            out.push(i as u8 + 1);
            out.extend_from_slice(p);
        }
        out
    }

    #[test]
    fn only_a_whole_result_set_is_kept() {
        let eof = [0xFE, 0, 0, 2, 0];
        let more = [0xFE, 0, 0, 0x0A, 0];
        let warned = [0xFE, 1, 0, 2, 0];
        assert!(!complete_result_set(&packets(&[
            &[1],
            b"col",
            &eof,
            b"\x01a",
            &warned
        ])));
        assert!(complete_result_set(&packets(&[
            &[1],
            b"col",
            &eof,
            b"\x01a",
            &eof
        ])));
        assert!(!complete_result_set(&packets(&[&[1], b"col", &eof, &more])));
        assert!(!complete_result_set(&packets(&[&[0xFF, 1, 2]])));
        assert!(!complete_result_set(&packets(&[&[0, 0, 0, 2, 0, 0, 0]])));
        let cut = packets(&[&[1], b"col", &eof, b"\x01a", &eof]);
        assert!(!complete_result_set(&cut[..cut.len() - 2]));
        assert!(!complete_result_set(&[]));
    }
}
