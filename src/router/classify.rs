//! Statement classification: a pure function from SQL text to an `Intent`.
//!
//! One lexer pass yields the statement kind (from the first keywords), the flags that pin a
//! statement to the primary, hints, and a digest hash with literals stripped. Shapes the
//! keyword path cannot decide (`WITH ...`, `(SELECT ...)`, unknown keywords) are left as
//! `Kind::Undecided` for the parser path in `router::Classifier`.

use super::keyword::{keyword, Kw};
use super::lexer::{Lexer, Tok};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Kind {
    /// SELECT / SHOW / DESCRIBE / EXPLAIN / HELP, subject to flags.
    Read,
    /// DML, DDL, administrative statements, anything that must run on the primary.
    Write,
    /// BEGIN / START TRANSACTION.
    Begin,
    /// COMMIT / ROLLBACK / SAVEPOINT / RELEASE SAVEPOINT.
    EndTx,
    /// SET of session system variables only: executed, then replayed on other connections.
    SetSession,
    /// Any other SET (user variables, GLOBAL, TRANSACTION, autocommit, SET STATEMENT ... FOR).
    SetOther,
    /// USE db.
    Use,
    /// KILL [CONNECTION | QUERY] id.
    Kill,
    /// Empty statement (only comments / whitespace).
    #[default]
    Empty,
    /// The keyword path cannot tell; see `Classifier`.
    Undecided,
}

pub mod flag {
    pub const LOCKING: u32 = 1 << 0;
    pub const INTO: u32 = 1 << 1;
    pub const SESSION_FN: u32 = 1 << 2;
    pub const USER_VAR: u32 = 1 << 3;
    pub const ASSIGNS_USER_VAR: u32 = 1 << 4;
    pub const TEMP_TABLE: u32 = 1 << 5;
    pub const LOCK_TABLES: u32 = 1 << 6;
    pub const GET_LOCK: u32 = 1 << 7;
    pub const CALC_FOUND_ROWS: u32 = 1 << 8;
    pub const SQL_PREPARE: u32 = 1 << 9;
    pub const XA: u32 = 1 << 10;
    pub const MULTI: u32 = 1 << 11;
    pub const HINT_PRIMARY: u32 = 1 << 12;
    pub const HINT_REPLICA: u32 = 1 << 13;
    pub const AUTOCOMMIT: u32 = 1 << 14;
    pub const LAST_INSERT_ID: u32 = 1 << 15;
    /// A diagnostic about the session's previous statement (`SHOW WARNINGS` / `ERRORS`,
    /// session status counters, profiles, the optimizer trace): answered by the connection
    /// that ran it.
    pub const SHOW_WARNINGS: u32 = 1 << 16;
    /// SET TRANSACTION (next transaction's characteristics) or a multi-statement with
    /// session effects: pin the session to one primary connection.
    pub const PIN: u32 = 1 << 17;
    /// Flags that bind a session to one primary connection for its lifetime.
    pub const HARD_PIN: u32 =
        TEMP_TABLE | LOCK_TABLES | GET_LOCK | SQL_PREPARE | XA | CALC_FOUND_ROWS | PIN;
    /// Flags that need session context of the primary connection (user vars).
    pub const NEEDS_SESSION: u32 = SESSION_FN | USER_VAR | ASSIGNS_USER_VAR | INTO;
    /// CALL: a stored procedure may leave any session state behind.
    pub const CALL: u32 = 1 << 18;
    /// A read of server state a replica would answer differently: global variables,
    /// `mysql.*`, `performance_schema`, `sys`, `information_schema` views of server state,
    /// `SHOW` of anything but schema objects, `EXPLAIN` of a write.
    pub const SERVER_STATE: u32 = 1 << 19;
    /// SAVEPOINT, RELEASE SAVEPOINT, ROLLBACK TO: an `EndTx` that ends no transaction.
    pub const SAVEPOINT: u32 = 1 << 20;
    /// Flags of statements that may leave connection-bound state only a reset clears: the
    /// backend connection is reset before another client gets it.
    /// Changes global defaults or privileges (`SET GLOBAL`, `GRANT`, `CREATE USER`, `FLUSH
    /// PRIVILEGES`, ...): pooled connections opened before are retired once it succeeds.
    pub const GLOBAL_CHANGE: u32 = 1 << 21;
    /// A read of status variables (`SHOW [SESSION] STATUS`, `information_schema.
    /// SESSION_STATUS`; with `SHOW_WARNINGS`): they mix the server's (`Threads_connected`,
    /// `Uptime`) with the connection's counters, so it runs on the primary, on the
    /// connection of the previous statement when that ran there.
    pub const STATUS: u32 = 1 << 22;
    pub const LEAVES_STATE: u32 = HARD_PIN | USER_VAR | ASSIGNS_USER_VAR | AUTOCOMMIT | CALL;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intent {
    pub kind: Kind,
    pub flags: u32,
    /// `/* sluice:max_lag=500ms */`: a stricter freshness bound for this statement (0: none).
    pub max_lag_ms: u32,
    /// Hash of the statement with literals stripped and keywords case-folded.
    pub digest: u64,
}

impl Intent {
    pub fn has(&self, f: u32) -> bool {
        self.flags & f != 0
    }
}

fn eq(a: &[u8], b: &[u8]) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// FNV-1a, folding ASCII case.
struct Digest(u64);
impl Digest {
    fn add(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= b.to_ascii_lowercase() as u64;
            self.0 = self.0.wrapping_mul(0x100_0000_01b3);
        }
        self.0 ^= 0xff;
        self.0 = self.0.wrapping_mul(0x100_0000_01b3);
    }
}

fn kind_of_first(w: Kw) -> Kind {
    match w {
        Kw::Select | Kw::Show | Kw::Describe | Kw::Desc | Kw::Explain | Kw::Help => Kind::Read,
        Kw::Begin => Kind::Begin,
        Kw::Commit | Kw::Rollback | Kw::Savepoint | Kw::Release => Kind::EndTx,
        Kw::Set => Kind::SetSession, // refined by later tokens
        Kw::Use => Kind::Use,
        Kw::Kill => Kind::Kill,
        Kw::With | Kw::Values | Kw::Table => Kind::Undecided,
        _ => Kind::Write,
    }
}

/// `flag::GLOBAL_CHANGE` for the `ntok`-th word `w` of a statement starting with `first`:
/// GRANT, REVOKE, CREATE/ALTER/DROP/RENAME USER or ROLE, FLUSH PRIVILEGES.
fn global_change(first: Kw, ntok: usize, w: &[u8], account_ddl: &mut bool) -> u32 {
    let is = |k: &str| w.eq_ignore_ascii_case(k.as_bytes());
    match ntok {
        0 => {
            *account_ddl = is("CREATE") || is("ALTER") || is("DROP") || is("RENAME");
            if is("GRANT") || is("REVOKE") {
                return flag::GLOBAL_CHANGE;
            }
        }
        1 if (*account_ddl && (is("USER") || is("ROLE")))
            || (first == Kw::Flush && is("PRIVILEGES")) =>
        {
            return flag::GLOBAL_CHANGE;
        }
        _ => {}
    }
    0
}

/// Per-statement scan state.
struct Stmt {
    kind: Kind,
    /// The first word, as a keyword.
    first: Kw,
    /// The previous word was `information_schema` followed by a dot.
    info_schema: bool,
    flags: u32,
    ntok: usize,
    /// The last three words, as keywords.
    prev: [Kw; 3],
    depth: i32,
    set_target: bool,
    /// The first word is CREATE, ALTER, DROP or RENAME (account statements follow with USER
    /// or ROLE).
    account_ddl: bool,
}

impl Stmt {
    fn new() -> Self {
        Stmt {
            kind: Kind::Empty,
            first: Kw::Other,
            info_schema: false,
            flags: 0,
            ntok: 0,
            prev: [Kw::Other; 3],
            depth: 0,
            set_target: false,
            account_ddl: false,
        }
    }

    fn word(&mut self, w: Kw, next_is_paren: bool) {
        if self.ntok == 0 {
            self.kind = kind_of_first(w);
            self.first = w;
            self.set_target = self.kind == Kind::SetSession;
            match w {
                Kw::Call => self.flags |= flag::CALL,
                Kw::Savepoint | Kw::Release => self.flags |= flag::SAVEPOINT,
                // backup locks and open handlers live on one connection
                Kw::Backup | Kw::Handler => self.flags |= flag::PIN,
                _ => {}
            }
        } else if w != Kw::Other || self.prev[2] != Kw::Other || self.set_target {
            // (two plain identifiers in a row outside a SET target match no rule)
            self.phrase(w, next_is_paren);
        }
        self.prev = [self.prev[1], self.prev[2], w];
    }

    /// What the words themselves say about server state (`server_state`).
    fn raw_word(&mut self, w: &[u8], dot_follows: bool) {
        if std::mem::take(&mut self.info_schema) {
            self.flags |= super::server_state::info_schema_table(w);
        }
        if dot_follows {
            match super::server_state::schema(w) {
                Some(true) => self.info_schema = true,
                Some(false) => self.flags |= flag::SERVER_STATE,
                None => {}
            }
        }
        self.flags |= global_change(self.first, self.ntok, w, &mut self.account_ddl);
        if self.ntok > 0 && self.ntok <= 5 {
            self.flags |= super::server_state::after_first(self.first, self.ntok, w);
            if self.first == Kw::Rollback && w.eq_ignore_ascii_case(b"TO") {
                self.flags |= flag::SAVEPOINT;
            }
        }
    }

    fn phrase(&mut self, w: Kw, next_is_paren: bool) {
        let [_, p2, p1] = self.prev;
        let first = self.kind;
        if next_is_paren {
            match w {
                Kw::LastInsertId => self.flags |= flag::SESSION_FN | flag::LAST_INSERT_ID,
                Kw::SessionFn => self.flags |= flag::SESSION_FN,
                Kw::GetLock => self.flags |= flag::GET_LOCK | flag::SESSION_FN,
                _ => {}
            }
        }
        let for_lock = p1 == Kw::For && matches!(w, Kw::Update | Kw::Share);
        if self.first == Kw::Flush
            && ((p2, p1, w) == (Kw::With, Kw::Read, Kw::Lock) || (p1, w) == (Kw::For, Kw::Export))
        {
            // a global read lock, or tables locked for export, stays with the connection
            self.flags |= flag::PIN;
        } else if for_lock || (p2 == Kw::In && p1 == Kw::Share && w == Kw::Mode) {
            self.flags |= flag::LOCKING;
        } else if p1 == Kw::Value && w == Kw::For {
            self.flags |= flag::SESSION_FN; // NEXT / PREVIOUS VALUE FOR seq
        } else if w == Kw::Into && matches!(first, Kind::Read | Kind::Undecided) {
            self.flags |= flag::INTO;
        } else if w == Kw::SqlCalcFoundRows {
            self.flags |= flag::CALC_FOUND_ROWS;
        }
        if self.ntok == 1 {
            self.second_word(w);
        } else if first == Kind::SetSession || first == Kind::SetOther {
            self.set_word(w);
        }
    }

    fn second_word(&mut self, w: Kw) {
        match (self.prev[2], w) {
            (Kw::Start, Kw::Transaction) => self.kind = Kind::Begin,
            (Kw::Create, Kw::Temporary) => self.flags |= flag::TEMP_TABLE,
            (Kw::Lock, Kw::Tables | Kw::Table) => self.flags |= flag::LOCK_TABLES,
            (Kw::Show, Kw::Warnings | Kw::Errors | Kw::Count) => self.flags |= flag::SHOW_WARNINGS,
            _ if self.kind == Kind::SetSession => self.set_word(w),
            (Kw::Xa, _) => self.flags |= flag::XA,
            _ => {}
        }
        if matches!(self.prev[2], Kw::Prepare | Kw::Execute | Kw::Deallocate) {
            self.flags |= flag::SQL_PREPARE;
        }
    }

    /// A word in a SET statement, at the start of an assignment target.
    fn set_word(&mut self, w: Kw) {
        if !self.set_target || self.depth != 0 {
            return;
        }
        if matches!(w, Kw::Session | Kw::Local) {
            return; // the variable name follows
        }
        self.set_target = false;
        match w {
            Kw::Global | Kw::Persist | Kw::PersistOnly | Kw::Password => {
                self.kind = Kind::SetOther;
                self.flags |= flag::GLOBAL_CHANGE;
            }
            Kw::Statement => self.kind = Kind::SetOther,
            Kw::Transaction if !matches!(self.prev[2], Kw::Session | Kw::Local) => {
                self.kind = Kind::SetOther;
                self.flags |= flag::PIN;
            }
            Kw::Autocommit => {
                self.kind = Kind::SetOther;
                self.flags |= flag::AUTOCOMMIT;
            }
            _ => {}
        }
    }

    fn sysvar(&mut self, name: &[u8]) {
        if name.len() > 7 && name[..7].eq_ignore_ascii_case(b"global.") {
            // the primary's value (an unqualified @@x answers for the server that runs it)
            self.flags |= flag::SERVER_STATE;
        }
        if matches!(self.kind, Kind::SetSession | Kind::SetOther)
            && self.set_target
            && self.depth == 0
        {
            self.set_target = false;
            let lower = name.to_ascii_lowercase();
            if lower.starts_with(b"global.") || lower.starts_with(b"persist") {
                self.kind = Kind::SetOther;
                self.flags |= flag::GLOBAL_CHANGE;
            } else if lower.ends_with(b"autocommit") {
                self.kind = Kind::SetOther;
                self.flags |= flag::AUTOCOMMIT;
            } else if lower.ends_with(b"transaction_isolation") || lower.ends_with(b"tx_isolation")
            {
                // session-wide: replayable
            }
        }
    }

    fn user_var(&mut self) {
        self.flags |= flag::USER_VAR;
        if matches!(self.kind, Kind::SetSession | Kind::SetOther)
            && self.set_target
            && self.depth == 0
        {
            self.kind = Kind::SetOther;
            self.flags |= flag::ASSIGNS_USER_VAR;
            self.set_target = false;
        }
        if self.prev[2] == Kw::Into {
            self.flags |= flag::ASSIGNS_USER_VAR;
        }
    }

    fn finish(mut self) -> (Kind, u32) {
        if matches!(self.kind, Kind::SetSession) && self.flags & flag::USER_VAR != 0 {
            // a session variable computed from user variables cannot be replayed elsewhere
            self.kind = Kind::SetOther;
            self.flags |= flag::PIN;
        }
        (self.kind, self.flags)
    }
}

fn read_hints(comment: &[u8], flags: &mut u32, max_lag_ms: &mut u32) {
    let c = comment.trim_ascii();
    if let Some(h) = c.strip_prefix(b"sluice:") {
        for part in h.split(|&b| b == b' ' || b == b',') {
            if let Some(v) = part.strip_prefix(b"max_lag=") {
                let parsed = std::str::from_utf8(v)
                    .ok()
                    .and_then(|v| humantime::parse_duration(v).ok());
                if let Some(d) = parsed {
                    *max_lag_ms = d.as_millis().clamp(1, u32::MAX as u128) as u32;
                }
            } else if eq(part, b"primary") || eq(part, b"master") {
                *flags |= flag::HINT_PRIMARY;
            } else if eq(part, b"replica") || eq(part, b"slave") {
                *flags |= flag::HINT_REPLICA;
            }
        }
    }
}

/// Classifies `sql` (one COM_QUERY payload, possibly several statements).
pub fn classify(sql: &[u8]) -> Intent {
    let mut lx = Lexer::new(sql);
    let mut hints = 0u32;
    let mut max_lag_ms = 0u32;
    lx.skip_space(|c| read_hints(c, &mut hints, &mut max_lag_ms));
    let mut digest = Digest(0xcbf2_9ce4_8422_2325);
    let mut stmts = Stmts::default();
    let mut st = Stmt::new();
    let mut pending: Option<Tok<'_>> = lx.next_tok();
    // whether the previous token can end an operand (then a following -/+ is binary)
    let mut after_operand = false;
    while let Some(tok) = pending {
        pending = lx.next_tok();
        let sign_of_literal = matches!(tok, Tok::Punct(b'-' | b'+'))
            && !after_operand
            && matches!(pending, Some(Tok::Literal));
        after_operand = matches!(
            tok,
            Tok::Word(_) | Tok::Literal | Tok::UserVar | Tok::SysVar(_) | Tok::Punct(b')')
        );
        if sign_of_literal {
            continue; // `-1` digests like `1`: the sign is part of the literal
        }
        match tok {
            Tok::Word(w) => {
                digest.add(w);
                let dot = matches!(pending, Some(Tok::Punct(b'.')));
                st.raw_word(w, dot);
                st.word(keyword(w), matches!(pending, Some(Tok::Punct(b'('))));
            }
            Tok::Literal => digest.add(b"?"),
            Tok::UserVar => {
                digest.add(b"@");
                st.user_var();
            }
            Tok::SysVar(n) => {
                digest.add(b"@@");
                digest.add(n);
                st.sysvar(n);
            }
            Tok::Assign => {
                digest.add(b":=");
                if st.flags & flag::USER_VAR != 0 {
                    st.flags |= flag::ASSIGNS_USER_VAR;
                }
            }
            Tok::Punct(b';') => {
                digest.add(b";");
                if st.ntok > 0 {
                    stmts.push(std::mem::replace(&mut st, Stmt::new()).finish());
                }
                continue;
            }
            Tok::Punct(p) => {
                digest.add(&[p]);
                match p {
                    b'(' => st.depth += 1,
                    b')' => st.depth -= 1,
                    b',' if st.depth == 0 => st.set_target = true,
                    _ => {}
                }
            }
        }
        st.ntok += 1;
    }
    if st.ntok > 0 || stmts.n == 0 {
        stmts.push(st.finish());
    }
    let (kind, flags) = stmts.combined();
    Intent {
        kind,
        flags: flags | hints,
        max_lag_ms,
        digest: digest.0,
    }
}

/// The statements of one COM_QUERY, folded as they are found (no allocation).
#[derive(Default)]
struct Stmts {
    n: usize,
    first: (Kind, u32),
    flags: u32,
    all_read: bool,
    session_effects: bool,
}

impl Stmts {
    fn push(&mut self, (kind, flags): (Kind, u32)) {
        if self.n == 0 {
            self.first = (kind, flags);
            self.all_read = true;
        }
        self.n += 1;
        self.flags |= flags;
        self.all_read &= kind == Kind::Read;
        self.session_effects |= matches!(
            kind,
            Kind::SetSession | Kind::SetOther | Kind::Use | Kind::Begin
        );
    }

    /// One statement is itself; several are a read only if all are plain reads, and anything
    /// with session effects pins the session.
    fn combined(&self) -> (Kind, u32) {
        if self.n == 1 {
            return self.first;
        }
        let flags = self.flags | flag::MULTI;
        if self.all_read {
            (Kind::Read, flags)
        } else if self.session_effects {
            (Kind::Write, flags | flag::PIN)
        } else {
            (Kind::Write, flags)
        }
    }
}

/// The database of `USE db`.
pub fn use_target(sql: &[u8]) -> Option<String> {
    let mut lx = Lexer::new(sql);
    match (lx.next_tok(), lx.next_tok()) {
        (Some(Tok::Word(u)), Some(Tok::Word(db))) if eq(u, b"USE") => {
            Some(String::from_utf8_lossy(db).replace("``", "`"))
        }
        _ => None,
    }
}

/// The database of `DROP {DATABASE | SCHEMA} [IF EXISTS] db`: when it is the current one,
/// the server unsets the connection's current database.
pub fn drop_database_target(sql: &[u8]) -> Option<String> {
    let mut lx = Lexer::new(sql);
    let word = |t: Option<Tok>, w: &[u8]| matches!(t, Some(Tok::Word(x)) if eq(x, w));
    if !word(lx.next_tok(), b"DROP") {
        return None;
    }
    match lx.next_tok() {
        Some(Tok::Word(w)) if eq(w, b"DATABASE") || eq(w, b"SCHEMA") => {}
        _ => return None,
    }
    let mut name = lx.next_tok();
    if matches!(name, Some(Tok::Word(w)) if eq(w, b"IF")) {
        if !word(lx.next_tok(), b"EXISTS") {
            return None;
        }
        name = lx.next_tok();
    }
    match name {
        Some(Tok::Word(db)) => Some(String::from_utf8_lossy(db).replace("``", "`")),
        _ => None,
    }
}

/// `KILL [CONNECTION | QUERY] id` -> (query only, id).
pub fn kill_target(sql: &[u8]) -> Option<(bool, u64)> {
    let mut lx = Lexer::new(sql);
    let mut query_only = false;
    let mut saw_kill = false;
    let mut start = 0;
    while let Some(t) = lx.next_tok() {
        match t {
            Tok::Word(w) if !saw_kill && eq(w, b"KILL") => saw_kill = true,
            Tok::Word(w) if eq(w, b"QUERY") => query_only = true,
            Tok::Word(w) if eq(w, b"CONNECTION") || eq(w, b"HARD") || eq(w, b"SOFT") => {}
            Tok::Literal => {
                let text = std::str::from_utf8(&sql[start..]).ok()?;
                let digits: String = text
                    .trim_start()
                    .chars()
                    .take_while(|c| c.is_ascii_digit())
                    .collect();
                return digits.parse().ok().map(|id| (query_only, id));
            }
            _ => return None,
        }
        start = lx.offset();
    }
    None
}

#[cfg(test)]
mod tests;
