//! The keywords classification looks at, recognised once per word: a word is looked up by
//! its length and first letter, so the table names, columns and other identifiers that make
//! up most of a statement cost two table lookups, and the rules in `classify`
//! compare small integers instead of strings.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kw {
    /// Any word that is not one of the keywords below.
    Other,
    Select,
    Show,
    Describe,
    Desc,
    Explain,
    Help,
    Begin,
    Commit,
    Rollback,
    Savepoint,
    Release,
    Set,
    Use,
    Kill,
    With,
    Values,
    Table,
    Call,
    Backup,
    Handler,
    For,
    Update,
    Share,
    In,
    Mode,
    Value,
    Into,
    SqlCalcFoundRows,
    Start,
    Transaction,
    Create,
    Temporary,
    Lock,
    Tables,
    Warnings,
    Errors,
    Count,
    Xa,
    Prepare,
    Execute,
    Deallocate,
    Session,
    Local,
    Global,
    Persist,
    PersistOnly,
    Password,
    Statement,
    Autocommit,
    GetLock,
    LastInsertId,
    /// Other functions whose result depends on the session (`FOUND_ROWS()`, `NEXTVAL()`...).
    SessionFn,
    Flush,
    Read,
    Export,
}

const WORDS: &[(&[u8], Kw)] = &[
    (b"IN", Kw::In),
    (b"XA", Kw::Xa),
    (b"FOR", Kw::For),
    (b"SET", Kw::Set),
    (b"USE", Kw::Use),
    (b"CALL", Kw::Call),
    (b"DESC", Kw::Desc),
    (b"HELP", Kw::Help),
    (b"INTO", Kw::Into),
    (b"KILL", Kw::Kill),
    (b"LOCK", Kw::Lock),
    (b"MODE", Kw::Mode),
    (b"READ", Kw::Read),
    (b"SHOW", Kw::Show),
    (b"WITH", Kw::With),
    (b"BEGIN", Kw::Begin),
    (b"COUNT", Kw::Count),
    (b"FLUSH", Kw::Flush),
    (b"LOCAL", Kw::Local),
    (b"SHARE", Kw::Share),
    (b"START", Kw::Start),
    (b"TABLE", Kw::Table),
    (b"VALUE", Kw::Value),
    (b"BACKUP", Kw::Backup),
    (b"COMMIT", Kw::Commit),
    (b"CREATE", Kw::Create),
    (b"ERRORS", Kw::Errors),
    (b"EXPORT", Kw::Export),
    (b"GLOBAL", Kw::Global),
    (b"SELECT", Kw::Select),
    (b"SETVAL", Kw::SessionFn),
    (b"TABLES", Kw::Tables),
    (b"UPDATE", Kw::Update),
    (b"VALUES", Kw::Values),
    (b"EXPLAIN", Kw::Explain),
    (b"EXECUTE", Kw::Execute),
    (b"HANDLER", Kw::Handler),
    (b"LASTVAL", Kw::SessionFn),
    (b"NEXTVAL", Kw::SessionFn),
    (b"PREPARE", Kw::Prepare),
    (b"PERSIST", Kw::Persist),
    (b"RELEASE", Kw::Release),
    (b"SESSION", Kw::Session),
    (b"DESCRIBE", Kw::Describe),
    (b"GET_LOCK", Kw::GetLock),
    (b"PASSWORD", Kw::Password),
    (b"ROLLBACK", Kw::Rollback),
    (b"WARNINGS", Kw::Warnings),
    (b"ROW_COUNT", Kw::SessionFn),
    (b"SAVEPOINT", Kw::Savepoint),
    (b"STATEMENT", Kw::Statement),
    (b"TEMPORARY", Kw::Temporary),
    (b"AUTOCOMMIT", Kw::Autocommit),
    (b"DEALLOCATE", Kw::Deallocate),
    (b"FOUND_ROWS", Kw::SessionFn),
    (b"TRANSACTION", Kw::Transaction),
    (b"IS_FREE_LOCK", Kw::SessionFn),
    (b"IS_USED_LOCK", Kw::SessionFn),
    (b"PERSIST_ONLY", Kw::PersistOnly),
    (b"RELEASE_LOCK", Kw::SessionFn),
    (b"CONNECTION_ID", Kw::SessionFn),
    (b"LAST_INSERT_ID", Kw::LastInsertId),
    (b"RELEASE_ALL_LOCKS", Kw::SessionFn),
    (b"SQL_CALC_FOUND_ROWS", Kw::SqlCalcFoundRows),
];

const MAX_LEN: usize = 19;

/// The range of `WORDS` holding the words of each length and first letter.
static INDEX: [[(u8, u8); 26]; MAX_LEN + 1] = index();

const fn index() -> [[(u8, u8); 26]; MAX_LEN + 1] {
    let mut t = [[(0u8, 0u8); 26]; MAX_LEN + 1];
    let mut i = 0;
    while i < WORDS.len() {
        let w = WORDS[i].0;
        assert!(w.len() <= MAX_LEN && w[0].is_ascii_uppercase());
        let cell = &mut t[w.len()][(w[0] - b'A') as usize];
        if cell.1 == 0 {
            cell.0 = i as u8;
        } else {
            assert!(
                cell.1 as usize == i,
                "WORDS must be sorted by length, then first letter"
            );
        }
        cell.1 = i as u8 + 1;
        i += 1;
    }
    t
}

/// The keyword `w` is (ASCII case-insensitive), or `Kw::Other`.
pub fn keyword(w: &[u8]) -> Kw {
    let (Some(by_first), Some(first)) = (INDEX.get(w.len()), w.first()) else {
        return Kw::Other;
    };
    let letter = first.to_ascii_uppercase().wrapping_sub(b'A');
    let Some(&(from, to)) = by_first.get(letter as usize) else {
        return Kw::Other;
    };
    for (word, kw) in &WORDS[from as usize..to as usize] {
        if word[1..].eq_ignore_ascii_case(&w[1..]) {
            return *kw;
        }
    }
    Kw::Other
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_word_is_found_in_any_case() {
        for (w, kw) in WORDS {
            assert_eq!(keyword(w), *kw);
            assert_eq!(keyword(&w.to_ascii_lowercase()), *kw);
        }
        for w in [
            &b""[..],
            b"c",
            b"id",
            b"sbtest1",
            b"SELECTS",
            b"SQL_CALC_FOUND_ROWSX",
        ] {
            assert_eq!(keyword(w), Kw::Other, "{}", String::from_utf8_lossy(w));
        }
    }
}
