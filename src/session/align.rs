//! Bringing a backend connection in line with the session before a statement runs: current
//! database, session variables (replayed in order), multi-statement option, LAST_INSERT_ID.

use super::Session;
use crate::backend::BackendError;
use crate::pool::Lease;
use crate::protocol::status;
use crate::router::flag;
use std::sync::Arc;

/// Brings `lease` to `database` and the session variables `vars` (replayed in order): it is
/// reopened with `reopen` when it must lose a database (MySQL cannot unselect one: a fresh
/// connection has none), and reset first when its variables are not a prefix of `vars` or
/// `reset` says so.
pub(super) async fn database_and_vars(
    lease: &mut Lease,
    (database, vars): (Option<&str>, &[Arc<str>]),
    reset: bool,
    reopen: Option<crate::backend::ConnectOpts>,
) -> Result<(), BackendError> {
    if let Some(opts) = reopen.filter(|_| database.is_none() && lease.state.database.is_some()) {
        lease.reconnect(&opts).await?;
    }
    let vars_ok = lease.state.vars.len() <= vars.len()
        && lease.state.vars[..] == vars[..lease.state.vars.len()];
    if !vars_ok || reset {
        lease.reset().await?;
    }
    // a connection without the session's variables takes its character set first, so that
    // the database name is read in the client's character set (a name invalid there is
    // refused naming it, as the server does at a direct login)
    if lease.state.vars.is_empty() {
        if let Some(v) = vars.first().filter(|v| is_set_names(v)) {
            lease.exec(v).await?;
            lease.state.vars.push(v.clone());
        }
    }
    if let Some(db) = database.filter(|&d| lease.state.database.as_deref() != Some(d)) {
        lease.init_db(db).await?;
    }
    for v in &vars[lease.state.vars.len()..] {
        lease.exec(v).await?;
        lease.state.vars.push(v.clone());
    }
    Ok(())
}

/// Whether session statement `v` is a `SET NAMES` (the handshake's character set, first of
/// a session's variables when it is not the one connections open in).
pub(super) fn is_set_names(v: &str) -> bool {
    v.get(..9)
        .is_some_and(|p| p.eq_ignore_ascii_case("SET NAMES"))
}

impl Session {
    /// Whether `lease` already is as `align` would leave it (the usual case: the session's
    /// own connection back from the pool); decided without building `align`'s future.
    pub(super) fn aligned(&self, lease: &Lease, flags: u32) -> bool {
        let st = &self.state;
        lease.state.database.as_deref() == st.database.as_deref()
            && lease.state.vars[..] == st.vars[..]
            && (lease.status & status::AUTOCOMMIT == 0) == st.autocommit_off()
            && lease.state.multi_statements == Some(st.multi_statements)
            && (flags & flag::LAST_INSERT_ID == 0
                || lease.state.last_insert_id == st.last_insert_id)
    }

    pub(super) async fn align(
        &mut self,
        lease: &mut Lease,
        flags: u32,
    ) -> Result<(), BackendError> {
        if self.aligned(lease, flags) {
            return Ok(());
        }
        let reopen = || {
            let idx = self
                .shared
                .topology
                .backends()
                .iter()
                .position(|b| Arc::ptr_eq(&b.pool, lease.pool()));
            self.connect_opts(idx.unwrap_or(0))
        };
        let opts = (self.state.database.is_none() && lease.state.database.is_some()).then(reopen);
        let st = &self.state;
        database_and_vars(lease, (st.database.as_deref(), &st.vars), false, opts).await?;
        // autocommit follows the client (pooled connections come back with it on, a
        // connection left with it off is reset before reuse: `needs_reset`)
        let lease_off = lease.status & status::AUTOCOMMIT == 0;
        if lease_off != st.autocommit_off() {
            let on = if st.autocommit_off() { 0 } else { 1 };
            lease.exec(&format!("SET autocommit = {on}")).await?;
            lease.status ^= status::AUTOCOMMIT;
        }
        if lease.state.multi_statements != Some(st.multi_statements) {
            lease.set_multi_statements(st.multi_statements).await?;
        }
        if flags & flag::LAST_INSERT_ID != 0 && lease.state.last_insert_id != st.last_insert_id {
            lease
                .exec(&format!("DO LAST_INSERT_ID({})", st.last_insert_id))
                .await?;
            lease.state.last_insert_id = st.last_insert_id;
        }
        Ok(())
    }
}
