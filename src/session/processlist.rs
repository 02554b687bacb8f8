//! `SHOW [FULL] PROCESSLIST` answered with Sluice's own sessions: their ids (the ids
//! `CONNECTION_ID()` returns and `KILL` takes), users, client addresses, databases, commands
//! and times. A statement running on a backend shows that backend's state and text for it
//! (read from the backends' own lists). A client sees the sessions of the users whose
//! backend threads it may see (its own, or all with the PROCESS privilege), as a server
//! shows them.

use super::{Fatal, Session};
use crate::protocol::cmd;
use crate::shared::SessionHandle;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// `SHOW [FULL] PROCESSLIST[;]`: `Some(full)`, else `None`.
pub(super) fn show_processlist(sql: &[u8]) -> Option<bool> {
    let words: Vec<&[u8]> = sql
        .trim_ascii()
        .strip_suffix(b";")
        .unwrap_or(sql.trim_ascii())
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty())
        .collect();
    let is = |w: &[u8], k: &[u8]| w.eq_ignore_ascii_case(k);
    match words.as_slice() {
        [s, p] if is(s, b"show") && is(p, b"processlist") => Some(false),
        [s, f, p] if is(s, b"show") && is(f, b"full") && is(p, b"processlist") => Some(true),
        _ => None,
    }
}

/// The name a process list gives a command.
fn command_name(c: u8) -> &'static str {
    match c {
        0 => "Sleep",
        cmd::QUERY => "Query",
        cmd::INIT_DB => "Init DB",
        cmd::FIELD_LIST => "Field List",
        cmd::STATISTICS => "Statistics",
        cmd::PING => "Ping",
        cmd::CHANGE_USER => "Change user",
        cmd::STMT_PREPARE => "Prepare",
        cmd::STMT_EXECUTE => "Execute",
        cmd::STMT_FETCH => "Fetch",
        cmd::STMT_CLOSE => "Close stmt",
        cmd::STMT_RESET => "Reset stmt",
        cmd::STMT_SEND_LONG_DATA => "Long Data",
        cmd::SET_OPTION => "Set option",
        cmd::RESET_CONNECTION => "Reset connection",
        _ => "Query",
    }
}

/// What a backend says of one of its threads: (state, statement text).
type ThreadInfo = (Option<String>, Option<String>);

const COLUMNS: [&[u8]; 9] = [
    b"Id",
    b"User",
    b"Host",
    b"db",
    b"Command",
    b"Time",
    b"State",
    b"Info",
    b"Progress",
];

/// One session as the process list shows it.
pub(super) struct Process {
    pub id: u32,
    pub user: Arc<str>,
    pub host: Arc<str>,
    pub db: Option<Arc<str>>,
    pub command: &'static str,
    /// Since the command started (or, quiet, since the last one did).
    pub time_ms: u64,
    pub state: String,
    pub info: Option<String>,
}

impl Session {
    /// Answers `SHOW [FULL] PROCESSLIST` (statement `sql`) with Sluice's sessions.
    pub(super) async fn processlist(&mut self, sql: &[u8], full: bool) -> Result<(), Fatal> {
        let limit = if full { usize::MAX } else { 100 };
        let rows = self
            .processes(sql)
            .await
            .into_iter()
            .map(|p| {
                vec![
                    Some(p.id.to_string()),
                    Some(p.user.to_string()),
                    Some(p.host.to_string()),
                    p.db.as_deref().map(str::to_string),
                    Some(p.command.to_string()),
                    Some((p.time_ms / 1000).to_string()),
                    Some(p.state),
                    p.info.map(|i| i.chars().take(limit).collect()),
                    Some("0.000".to_string()),
                ]
            })
            .collect();
        self.send_table(&COLUMNS, rows).await
    }

    /// The sessions this client may see, in id order (`sql`: its own statement).
    pub(super) async fn processes(&self, sql: &[u8]) -> Vec<Process> {
        let mut handles: Vec<Arc<SessionHandle>> =
            self.shared.sessions.lock().values().cloned().collect();
        handles.sort_by_key(|h| h.id);
        let (visible, threads) = self.backend_threads(&handles).await;
        let now_ms = crate::timer::coarse_ms();
        let mut out = Vec::new();
        for h in handles {
            let shown = h.shown.lock().clone();
            if shown.user.is_empty() {
                continue; // still logging in
            }
            let own = h.id == self.handle.id;
            if !own && !visible.contains(shown.user.as_ref()) {
                continue;
            }
            let command = h.command.load(Ordering::Relaxed);
            let since = h.since_ms.load(Ordering::Relaxed);
            let (state, info) = match (own, h.running()) {
                (true, _) => (None, Some(String::from_utf8_lossy(sql).into_owned())),
                (false, Some(t)) => threads.get(&t).cloned().unwrap_or_default(),
                (false, None) => (None, None),
            };
            out.push(Process {
                id: h.id,
                user: shown.user,
                host: shown.host,
                db: shown.db,
                command: command_name(command),
                time_ms: now_ms.saturating_sub(since),
                state: state.unwrap_or_default(),
                info,
            });
        }
        out
    }

    /// Runs a read of `information_schema.PROCESSLIST` (mentioned at `at` in `sql`) against
    /// Sluice's sessions, on the primary.
    pub(super) async fn processlist_view(
        &mut self,
        sql: &[u8],
        at: &[(std::ops::Range<usize>, bool)],
        intent: &crate::router::Intent,
    ) -> Result<(), Fatal> {
        let rows = self.processes(sql).await;
        let mariadb = self.shared.server_version.contains("MariaDB");
        let text = super::processlist_view::rewrite(sql, at, &rows, mariadb);
        let route = (
            crate::router::Target::Primary,
            crate::router::Reason::ServerState,
        );
        self.run_rewritten(text, route, intent).await
    }

    /// Runs the rewritten text of a read (a view replaced by a derived table) as the
    /// client's statement, routed as `route`.
    pub(super) async fn run_rewritten(
        &mut self,
        text: Vec<u8>,
        route: (crate::router::Target, crate::router::Reason),
        intent: &crate::router::Intent,
    ) -> Result<(), Fatal> {
        let mut packet = Vec::with_capacity(text.len() + 1);
        packet.push(cmd::QUERY);
        packet.extend(text);
        let (expect, on_ok) = (
            crate::protocol::relay::Expect::ResultSets,
            super::exec::OnOk::Nothing,
        );
        self.execute(&packet, expect, route, intent, on_ok).await
    }

    /// Which users' sessions this client may see (the users whose threads the primary
    /// shows it), and the state and text of every statement running on a backend.
    async fn backend_threads(
        &self,
        handles: &[Arc<SessionHandle>],
    ) -> (HashSet<String>, HashMap<(usize, u32), ThreadInfo>) {
        let mut visible = HashSet::from([self.login.user.clone()]);
        let mut threads = HashMap::new();
        let mut by_backend: HashMap<usize, Vec<u32>> = HashMap::new();
        for h in handles.iter().filter(|h| h.id != self.handle.id) {
            if let Some((b, t)) = h.running() {
                by_backend.entry(b).or_default().push(t);
            }
        }
        let primary = self.shared.topology.primary();
        by_backend.entry(primary).or_default();
        for (b, ids) in by_backend {
            let Ok(mut lease) = self.checkout(b).await else {
                continue;
            };
            let sql = "SELECT ID, USER, STATE, INFO FROM information_schema.PROCESSLIST";
            let Ok(r) = lease.query(sql).await else {
                continue;
            };
            for row in r.rows {
                let cell = |i: usize| row.get(i).cloned().flatten();
                let id = cell(0).and_then(|s| s.parse::<u32>().ok());
                if b == primary {
                    visible.extend(cell(1));
                }
                if let Some(id) = id.filter(|id| ids.contains(id)) {
                    threads.insert((b, id), (cell(2), cell(3)));
                }
            }
        }
        (visible, threads)
    }
}

#[cfg(test)]
mod tests {
    use super::show_processlist as show;

    #[test]
    fn only_the_show_statement_is_recognised() {
        assert_eq!(show(b"SHOW PROCESSLIST"), Some(false));
        assert_eq!(show(b" show  full\tprocesslist ;"), Some(true));
        assert_eq!(show(b"SHOW FULL PROCESSLIST LIMIT 1"), None);
        assert_eq!(show(b"SHOW PROCESSLISTS"), None);
        assert_eq!(show(b"SELECT * FROM information_schema.processlist"), None);
    }
}
