//! Reads of server state: a replica would answer them differently (global variables and
//! status, `mysql.*` tables, events disabled on replicas, grants, the process list,
//! `EXPLAIN` of a write refused as read-only), so they go where the state lives; and
//! diagnostics about the session's previous statement, answered by the connection that ran
//! it. Schema-object reads (`SHOW TABLES`, `information_schema.COLUMNS`, ...) stay reads.

use super::classify::flag;
use super::keyword::Kw;

fn is(w: &[u8], any: &[&[u8]]) -> bool {
    any.iter().any(|k| w.eq_ignore_ascii_case(k))
}

/// A schema qualifier: `Some(true)` for `information_schema` (depends on the view),
/// `Some(false)` for schemas that are all server state, `None` otherwise.
pub(super) fn schema(w: &[u8]) -> Option<bool> {
    if is(w, &[b"information_schema", b"`information_schema`"]) {
        Some(true)
    } else if is(
        w,
        &[
            b"mysql",
            b"`mysql`",
            b"performance_schema",
            b"`performance_schema`",
            b"sys",
            b"`sys`",
        ],
    ) {
        Some(false)
    } else {
        None
    }
}

/// `information_schema` views that describe schema objects (the same on every replica).
const SCHEMA_VIEWS: &[&[u8]] = &[
    b"TABLES",
    b"COLUMNS",
    b"SCHEMATA",
    b"STATISTICS",
    b"VIEWS",
    b"KEY_COLUMN_USAGE",
    b"TABLE_CONSTRAINTS",
    b"REFERENTIAL_CONSTRAINTS",
    b"CHECK_CONSTRAINTS",
    b"PARTITIONS",
    b"TRIGGERS",
    b"CHARACTER_SETS",
    b"COLLATIONS",
    b"COLLATION_CHARACTER_SET_APPLICABILITY",
    b"ENGINES",
    b"KEYWORDS",
    b"SQL_FUNCTIONS",
];

/// Views about the session's own previous statements.
const DIAGNOSTIC_VIEWS: &[&[u8]] = &[b"OPTIMIZER_TRACE", b"PROFILING"];

/// The flags of `information_schema.<w>`.
pub(super) fn info_schema_table(w: &[u8]) -> u32 {
    let w = w
        .strip_prefix(b"`")
        .and_then(|w| w.strip_suffix(b"`"))
        .unwrap_or(w);
    if is(w, SCHEMA_VIEWS) {
        0
    } else if is(w, &[b"SESSION_STATUS"]) {
        flag::SHOW_WARNINGS | flag::STATUS
    } else if is(w, DIAGNOSTIC_VIEWS) {
        flag::SHOW_WARNINGS
    } else {
        flag::SERVER_STATE
    }
}

/// `SHOW` targets that describe schema objects or the session's own variables.
const SHOW_SCHEMA: &[&[u8]] = &[
    b"TABLES",
    b"FULL",
    b"COLUMNS",
    b"FIELDS",
    b"CREATE",
    b"INDEX",
    b"INDEXES",
    b"KEYS",
    b"DATABASES",
    b"SCHEMAS",
    b"TABLE",
    b"CHARACTER",
    b"CHARSET",
    b"COLLATION",
    b"VARIABLES",
    b"TRIGGERS",
    b"SESSION",
    b"LOCAL",
    // answered from the session's previous statement (`SHOW_WARNINGS`, see classify)
    b"WARNINGS",
    b"ERRORS",
    b"COUNT",
];

/// Word `w` at token `ntok` (1-5) of a statement whose first word is `first`.
pub(super) fn after_first(first: Kw, ntok: usize, w: &[u8]) -> u32 {
    match first {
        Kw::Show if ntok == 1 => {
            if is(w, &[b"STATUS"]) {
                flag::SHOW_WARNINGS | flag::STATUS
            } else if is(w, &[b"PROFILE", b"PROFILES"]) {
                flag::SHOW_WARNINGS
            } else if is(w, SHOW_SCHEMA) {
                0
            } else {
                flag::SERVER_STATE // GLOBAL ..., PROCESSLIST, GRANTS, EVENTS, ENGINE, ...
            }
        }
        Kw::Show if ntok == 2 => {
            if is(w, &[b"STATUS"]) {
                flag::SHOW_WARNINGS | flag::STATUS // SHOW SESSION STATUS (GLOBAL: flagged at 1)
            } else if is(w, &[b"PROCESSLIST", b"USER", b"EVENT"]) {
                flag::SERVER_STATE // SHOW FULL PROCESSLIST, SHOW CREATE USER / EVENT
            } else {
                0
            }
        }
        // FLUSH [LOCAL | NO_WRITE_TO_BINLOG] STATUS zeroes the session's status counters: the
        // session then keeps that connection, so that the counters it reads next count its
        // own statements (not those of a pooled connection's other users, or a replica's)
        Kw::Flush if ntok <= 2 && is(w, &[b"STATUS"]) => flag::PIN,
        Kw::Explain | Kw::Describe | Kw::Desc
            if is(w, &[b"INSERT", b"UPDATE", b"DELETE", b"REPLACE"]) =>
        {
            flag::SERVER_STATE // EXPLAIN of a write: a read-only replica refuses it
        }
        _ => 0,
    }
}
