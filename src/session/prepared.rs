//! Prepared statements: Sluice owns the client-visible statement ids; each backend connection
//! prepares a statement lazily the first time it has to execute it there.

use super::cached::Lookup;
use super::exec::OnOk;
use super::{Fatal, Session};
use crate::error::SqlError;
use crate::pool::Lease;
use crate::protocol::relay::{Expect, Relay};
use crate::protocol::{cmd, stmt};
use crate::router::{flag, Intent, Kind, Reason, Target};
use std::sync::Arc;

pub(super) struct Prepared {
    sql: Arc<str>,
    intent: Intent,
    params: u16,
    /// Parameter types from the client's last bind.
    types: Option<Vec<u8>>,
    /// COM_STMT_SEND_LONG_DATA payloads since the last execution.
    long_data: Vec<Vec<u8>>,
    /// Where the backend statement cache of the connection last used had it
    /// (`StmtCache::get_hinted`: checked there by content).
    cache_at: usize,
}

/// How a COM_STMT_EXECUTE runs (`Session::execute_plan`).
pub(super) enum ExecPlan {
    /// No statement of this id is prepared.
    Unknown(u32),
    /// On a backend by this route (the statement whose long data it spends, intent, route,
    /// bookkeeping).
    Run(Option<u32>, Intent, (Target, Reason), OnOk),
    /// A caching rule applies: the result cache first.
    Cached(Box<CachedExec>),
}

/// An execution a caching rule applies to.
pub(super) struct CachedExec {
    intent: Intent,
    route: (Target, Reason),
    on_ok: OnOk,
    sql: Arc<str>,
    /// The parameter types of an earlier execution, when this one binds none.
    types: Option<Vec<u8>>,
    rule: super::ruled::CacheRule,
}

impl Session {
    /// The SQL of client statement `id`, if prepared.
    pub(super) fn prepared_sql(&self, id: u32) -> Option<&str> {
        self.stmts.get(&id).map(|p| &*p.sql)
    }
}

/// The execution `packet` for the backend's statement `backend_id` in `out` (parameter
/// types remembered from the client's last bind).
fn rewrite_execute(
    packet: &[u8],
    (params, types): (u16, &mut Option<Vec<u8>>),
    backend_id: u32,
    mut out: Vec<u8>,
) -> Result<Option<Vec<u8>>, SqlError> {
    if stmt::rewrite(packet, params, backend_id, types, &mut out).is_none() {
        return Err(SqlError::new(
            1210,
            "HY000",
            "Incorrect arguments to mysqld_stmt_execute (malformed packet)",
        ));
    }
    Ok(Some(out))
}

fn unknown(id: u32) -> SqlError {
    SqlError::new(
        1243,
        "HY000",
        format!("Unknown prepared statement handler ({id}) given to mysqld_stmt_execute"),
    )
}

impl Session {
    pub(super) async fn stmt_prepare(&mut self, packet: &[u8]) -> Result<(), Fatal> {
        let sql: Arc<str> = Arc::from(String::from_utf8_lossy(&packet[1..]).as_ref());
        let (intent, shape) = self.shared.classifier.classify_shaped(sql.as_bytes());
        if let Some(e) = self.rule_rejects(sql.as_bytes(), (&intent, shape)) {
            return self.send_err(&e).await;
        }
        let route = crate::router::route(&intent, &self.view());
        let id = self.next_stmt_id;
        self.next_stmt_id = self.next_stmt_id.wrapping_add(1).max(1);
        let placeholder = Prepared {
            sql: sql.clone(),
            intent,
            params: 0,
            types: None,
            long_data: Vec::new(),
            cache_at: usize::MAX,
        };
        self.stmts.insert(id, placeholder);
        self.execute(
            packet,
            Expect::Prepare,
            route,
            &intent,
            OnOk::Prepared(id, sql),
        )
        .await?;
        Ok(())
    }

    /// Called by `after` when a prepare succeeded on `lease`.
    pub(super) fn prepared_ok(
        &mut self,
        lease: &mut Lease,
        id: u32,
        sql: Arc<str>,
        info: Option<(u32, u16, u16)>,
    ) {
        let Some((backend_id, _cols, params)) = info else {
            return;
        };
        self.remember(lease, self.state.database.clone(), sql, backend_id, params);
        if let Some(p) = self.stmts.get_mut(&id) {
            p.params = params;
        }
    }

    /// Decides how COM_STMT_EXECUTE `packet` runs (synchronously: the command loop places
    /// the plain path's `execute` in the command slot itself, no async layer around it).
    pub(super) fn execute_plan(&mut self, packet: &[u8]) -> ExecPlan {
        let id = stmt::statement_id(packet).unwrap_or(0);
        let Some(p) = self.stmts.get(&id) else {
            return ExecPlan::Unknown(id);
        };
        let mut intent = p.intent;
        let spends = (!p.long_data.is_empty()).then_some(id);
        // USE and DROP DATABASE change the current database as their text forms do
        let on_ok = match intent.kind {
            Kind::Use | Kind::Write => self.on_ok(&intent, p.sql.as_bytes()),
            _ => OnOk::Nothing,
        };
        let cursor = packet.get(5).copied().unwrap_or(0) != 0;
        // a session change with parameters (`SET character_set_results = ?`) cannot be
        // replayed on other connections from its text: the session keeps its primary
        // connection instead, like an open cursor does (a prepared `USE db` has none, and
        // changes the database as the text one does)
        let changes_session = matches!(intent.kind, Kind::SetSession | Kind::SetOther);
        if cursor || changes_session {
            intent.flags |= flag::PIN;
            return ExecPlan::Run(spends, intent, (Target::Primary, Reason::Pinned), on_ok);
        }
        let route = crate::router::route(&intent, &self.view());
        // parameter types from an earlier execution apply unless this one binds its own
        let bound_at = 10 + (p.params as usize).div_ceil(8);
        let own_types = p.params == 0 || packet.get(bound_at) == Some(&1);
        let (sql, plain) = (p.sql.clone(), p.long_data.is_empty());
        match self.rules_for_execute(&sql, &intent, route) {
            (route, Some(rule)) if plain => {
                // (copied only for a cache lookup: no allocation per execution otherwise)
                let types = match own_types {
                    true => None,
                    false => self.stmts.get(&id).and_then(|p| p.types.clone()),
                };
                ExecPlan::Cached(Box::new(CachedExec {
                    intent,
                    route,
                    on_ok,
                    sql,
                    types,
                    rule,
                }))
            }
            (route, _) => ExecPlan::Run(spends, intent, route, on_ok),
        }
    }

    /// COM_STMT_EXECUTE (from `dispatch`).
    pub(super) async fn stmt_execute(&mut self, packet: &[u8]) -> Result<(), Fatal> {
        let plan = self.execute_plan(packet);
        self.stmt_execute_planned(packet, plan).await
    }

    /// Runs COM_STMT_EXECUTE `packet` as `plan` says.
    pub(super) async fn stmt_execute_planned(
        &mut self,
        packet: &[u8],
        plan: ExecPlan,
    ) -> Result<(), Fatal> {
        match plan {
            ExecPlan::Unknown(id) => self.send_err(&unknown(id)).await,
            ExecPlan::Run(spends, intent, route, on_ok) => {
                let r = self
                    .execute(packet, Expect::ResultSets, route, &intent, on_ok)
                    .await;
                self.executed(spends, r)
            }
            ExecPlan::Cached(c) => self.stmt_execute_cached(packet, *c).await,
        }
    }

    /// An execution a caching rule applies to: from the cache, or run and kept.
    async fn stmt_execute_cached(&mut self, packet: &[u8], c: CachedExec) -> Result<(), Fatal> {
        let CachedExec {
            intent,
            mut route,
            on_ok,
            sql,
            types,
            rule,
        } = c;
        let statement = (packet, &*sql, types.as_deref());
        let r = match self.execute_lookup(statement, &intent, rule).await {
            Ok(Lookup::Hit) => Ok(()),
            Ok(Lookup::Miss(m)) => {
                self.cache_miss_setup(&mut route);
                let r = self
                    .execute(packet, Expect::ResultSets, route, &intent, OnOk::Nothing)
                    .await;
                self.cache_store_if(m, r.is_ok());
                r
            }
            Ok(Lookup::Pass) => {
                self.execute(packet, Expect::ResultSets, route, &intent, on_ok)
                    .await
            }
            Err(e) => Err(e),
        };
        self.executed(None, r) // (cached only without long data)
    }

    /// After an execution however it ended: the rules' notes go (set only when rules
    /// matched it); when it succeeded, the long data it sent is spent (`spends`).
    pub(super) fn executed(
        &mut self,
        spends: Option<u32>,
        r: Result<(), Fatal>,
    ) -> Result<(), Fatal> {
        if self.rule_note.is_some() {
            self.rule_note = None;
        }
        if !self.plan.is_empty() {
            self.plan = Default::default();
        }
        r?;
        if let Some(p) = spends.and_then(|id| self.stmts.get_mut(&id)) {
            p.long_data.clear();
        }
        Ok(())
    }

    pub(super) async fn stmt_fetch(&mut self, packet: &[u8]) -> Result<(), Fatal> {
        let id = stmt::statement_id(packet).unwrap_or(0);
        if !self.stmts.contains_key(&id) || self.primary.is_none() {
            return self
                .send_err(&SqlError::new(
                    1421,
                    "HY000",
                    "The statement has no open cursor",
                ))
                .await;
        }
        let intent = crate::router::classify(b"SELECT 1 FOR UPDATE");
        self.execute(
            packet,
            Expect::Rows,
            (Target::Primary, Reason::Pinned),
            &intent,
            OnOk::Nothing,
        )
        .await
    }

    pub(super) fn stmt_long_data(&mut self, packet: &[u8]) {
        let id = stmt::statement_id(packet).unwrap_or(0);
        if let Some(p) = self.stmts.get_mut(&id) {
            p.long_data.push(packet.to_vec());
        }
    }

    pub(super) fn stmt_close(&mut self, packet: &[u8]) {
        let id = stmt::statement_id(packet).unwrap_or(0);
        self.stmts.remove(&id);
    }

    pub(super) async fn stmt_reset(&mut self, packet: &[u8]) -> Result<(), Fatal> {
        let id = stmt::statement_id(packet).unwrap_or(0);
        let Some(p) = self.stmts.get_mut(&id) else {
            return self.send_err(&unknown(id)).await;
        };
        p.long_data.clear();
        let sql = p.sql.clone();
        if let Some((_, lease)) = self.primary.as_mut() {
            // closes an open cursor, if any, on the pinned connection
            let db = self.state.database.as_deref();
            if let Some((backend_id, _)) = lease.state.prepared.get(db, &sql) {
                let mut p = vec![cmd::STMT_RESET];
                p.extend_from_slice(&backend_id.to_le_bytes());
                if lease.simple(&p).await.is_err() {
                    self.primary = None;
                    self.handle.set_primary_tx(None);
                }
            }
        }
        self.send_ok().await
    }

    /// For statement commands, the payload to send on `lease` (statement prepared there if
    /// needed, id remapped, long data sent ahead). `None`: send the client's payload as is.
    pub(super) async fn prepare_payload(
        &mut self,
        lease: &mut Lease,
        packet: &[u8],
    ) -> Result<Option<Vec<u8>>, SqlError> {
        let command = packet[0];
        if command != cmd::STMT_EXECUTE && command != cmd::STMT_FETCH {
            return Ok(None);
        }
        let id = stmt::statement_id(packet).unwrap_or(0);
        let (sql, params) = match self.stmts.get(&id) {
            Some(p) => (p.sql.clone(), p.params),
            None => return Err(unknown(id)),
        };
        let backend_id = self.ensure_prepared(lease, sql).await?;
        let mut out = std::mem::take(&mut self.exec_buf);
        out.clear();
        out.reserve(packet.len() + 16);
        if command == cmd::STMT_FETCH {
            out.extend_from_slice(packet);
            out[1..5].copy_from_slice(&backend_id.to_le_bytes());
            return Ok(Some(out));
        }
        let p = self.stmts.get_mut(&id).ok_or_else(|| unknown(id))?;
        for ld in &p.long_data {
            let mut pkt = ld.clone();
            pkt[1..5].copy_from_slice(&backend_id.to_le_bytes());
            let mut seq = 0;
            lease
                .w
                .write_packet(&mut seq, &pkt)
                .await
                .map_err(|e| SqlError::backend_unavailable(&lease.pool().name, &e.to_string()))?;
        }
        rewrite_execute(packet, (params, &mut p.types), backend_id, out)
    }

    /// `prepare_payload` without waiting: nothing for a command other than a statement's,
    /// and the execution of a statement already prepared on `lease` (without long data)
    /// rewritten here. `None`: ask `prepare_payload`.
    pub(super) fn payload_now(
        &mut self,
        lease: &mut Lease,
        packet: &[u8],
    ) -> Option<Result<Option<Vec<u8>>, SqlError>> {
        match packet[0] {
            cmd::STMT_EXECUTE => {}
            cmd::STMT_FETCH => return None,
            _ => return Some(Ok(None)),
        }
        let id = stmt::statement_id(packet).unwrap_or(0);
        let p = self.stmts.get_mut(&id).filter(|p| p.long_data.is_empty())?;
        let db = self.state.database.as_deref();
        let (backend_id, _) = lease
            .state
            .prepared
            .get_hinted(&mut p.cache_at, db, &p.sql)?;
        let mut out = std::mem::take(&mut self.exec_buf);
        out.clear();
        out.reserve(packet.len() + 16);
        Some(rewrite_execute(
            packet,
            (p.params, &mut p.types),
            backend_id,
            out,
        ))
    }

    /// The backend statement id of `sql` on `lease`, preparing it there silently if needed.
    async fn ensure_prepared(&mut self, lease: &mut Lease, sql: Arc<str>) -> Result<u32, SqlError> {
        if let Some((id, _)) = lease
            .state
            .prepared
            .get(self.state.database.as_deref(), &sql)
        {
            return Ok(id);
        }
        let name = lease.pool().name.clone();
        let lost = |e: &dyn std::fmt::Display| SqlError::backend_unavailable(&name, &e.to_string());
        let mut p = Vec::with_capacity(sql.len() + 1);
        p.push(cmd::STMT_PREPARE);
        p.extend_from_slice(sql.as_bytes());
        lease.send(&p).await.map_err(|e| lost(&e))?;
        let conn = &mut **lease;
        let mut relay: Relay<
            '_,
            _,
            _,
            crate::protocol::stream::ClientRead,
            crate::protocol::stream::ClientWrite,
        > = Relay::new(&mut conn.r, &mut conn.w, conn.deprecate_eof, &mut conn.buf);
        relay.run(Expect::Prepare).await.map_err(|e| lost(&e))?;
        let outcome = std::mem::take(&mut relay.outcome);
        drop(relay);
        conn.busy = false;
        if let Some(err) = outcome.err {
            return Err(SqlError::from_packet(&err));
        }
        let (id, _, params) = outcome.prepared.ok_or_else(|| lost(&"no statement id"))?;
        self.remember(lease, self.state.database.clone(), sql, id, params);
        Ok(id)
    }

    /// Records a statement prepared on `lease`; the one it replaces, or the least recently
    /// used past `pool.max_prepared_per_connection`, is closed with the next command.
    fn remember(
        &self,
        lease: &mut Lease,
        db: Option<String>,
        sql: Arc<str>,
        backend_id: u32,
        params: u16,
    ) {
        let cap = self.shared.config.load().pool.max_prepared_per_connection;
        lease
            .state
            .prepared
            .insert((db, sql), backend_id, params, cap);
    }
}
