//! Bringing a backend connection in line with the session before a statement runs: current
//! database, session variables (replayed in order), multi-statement option, LAST_INSERT_ID.

use super::Session;
use crate::backend::BackendError;
use crate::pool::Lease;
use crate::protocol::status;
use crate::router::flag;
use std::sync::Arc;

impl Session {
    pub(super) async fn align(
        &mut self,
        lease: &mut Lease,
        flags: u32,
    ) -> Result<(), BackendError> {
        if self.state.database.is_none() && lease.state.database.is_some() {
            // MySQL cannot unselect a database: a session without one gets a fresh connection.
            let idx = self
                .shared
                .topology
                .backends()
                .iter()
                .position(|b| Arc::ptr_eq(&b.pool, lease.pool()));
            let opts = self.connect_opts(idx.unwrap_or(0));
            lease.reconnect(&opts).await?;
        }
        let st = &self.state;
        let vars_ok = lease.state.vars.len() <= st.vars.len()
            && lease.state.vars[..] == st.vars[..lease.state.vars.len()];
        if !vars_ok {
            lease.reset().await?;
        }
        if lease.state.database != st.database {
            if let Some(db) = &st.database {
                lease.init_db(db).await?;
            }
        }
        for v in &st.vars[lease.state.vars.len()..] {
            lease.exec(v).await?;
            lease.state.vars.push(v.clone());
        }
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
