//! `information_schema.PROCESSLIST` read through Sluice shows Sluice's sessions, as `SHOW
//! PROCESSLIST` does: each mention of the view in a read is replaced by a derived table of
//! those sessions (every value a hex literal, so nothing a client or a statement contains
//! can change the SQL), and the statement runs on the primary. The ids are those
//! `CONNECTION_ID()` returns and `KILL` takes, so a test or a tool that finds a thread there
//! and kills it kills the right client.

use super::processlist::Process;
use crate::router::lexer::{Lexer, Tok};
use std::fmt::Write;
use std::ops::Range;

/// Words that may follow a table reference without being its alias.
const NOT_ALIAS: &[&[u8]] = &[
    b"WHERE",
    b"ORDER",
    b"GROUP",
    b"LIMIT",
    b"JOIN",
    b"ON",
    b"USING",
    b"INNER",
    b"LEFT",
    b"RIGHT",
    b"CROSS",
    b"NATURAL",
    b"STRAIGHT_JOIN",
    b"UNION",
    b"EXCEPT",
    b"INTERSECT",
    b"HAVING",
    b"WINDOW",
    b"FOR",
    b"LOCK",
    b"INTO",
    b"PROCEDURE",
    b"USE",
    b"IGNORE",
    b"FORCE",
    b"PARTITION",
    b"OFFSET",
    b"FETCH",
];

/// Where `sql` names `information_schema.PROCESSLIST`: each mention's byte range, and
/// whether an alias follows it. Empty when it does not.
pub(super) fn mentions(sql: &[u8]) -> Vec<(Range<usize>, bool)> {
    mentions_of(sql, b"processlist")
}

/// Where `sql` names `information_schema.<view>` (see `mentions`).
pub(super) fn mentions_of(sql: &[u8], view: &[u8]) -> Vec<(Range<usize>, bool)> {
    let eq = |a: &[u8], b: &[u8]| a.eq_ignore_ascii_case(b);
    let mut lx = Lexer::new(sql);
    let mut out = Vec::new();
    // (token, where it starts) of the last three tokens
    let mut last: Vec<(Tok, usize)> = Vec::new();
    let mut start = 0;
    while let Some(t) = lx.next_tok() {
        last.push((t, start));
        if last.len() > 3 {
            last.remove(0);
        }
        start = lx.offset();
        if let [(Tok::Word(s), from), (Tok::Punct(b'.'), _), (Tok::Word(v), _)] = last[..] {
            if eq(s, b"information_schema") && eq(v, view) {
                let mut peek = Lexer::new(&sql[start..]);
                let alias = match peek.next_tok() {
                    Some(Tok::Word(w)) => !NOT_ALIAS.iter().any(|k| eq(w, k)),
                    _ => false,
                };
                out.push((from..start, alias));
                last.clear();
            }
        }
    }
    out
}

/// Longest statement text a row carries (the view's SQL stays bounded with many sessions).
const MAX_INFO: usize = 64 * 1024;

/// `s` cut to at most `max` bytes, at a character boundary.
fn cut(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// `s` as a literal that means exactly `s` whatever the session's `sql_mode`.
pub(super) fn text(out: &mut String, s: &str) {
    if s.is_empty() {
        out.push_str("CONVERT('' USING utf8mb4)");
        return;
    }
    out.push_str("CONVERT(X'");
    for b in s.bytes() {
        let _ = write!(out, "{b:02X}");
    }
    out.push_str("' USING utf8mb4)");
}

fn opt_text(out: &mut String, s: Option<&str>) {
    match s {
        Some(s) => text(out, s),
        None => out.push_str("CAST(NULL AS CHAR CHARACTER SET utf8mb4)"),
    }
}

/// The derived table of `rows` with the view's columns (MariaDB's, or MySQL's first eight).
fn derived(rows: &[Process], mariadb: bool) -> String {
    let mut out = String::from("(");
    for (i, p) in rows.iter().enumerate() {
        out.push_str(if i == 0 {
            "SELECT "
        } else {
            " UNION ALL SELECT "
        });
        let _ = write!(out, "CAST({} AS UNSIGNED) AS ID, ", p.id);
        text(&mut out, &p.user);
        out.push_str(" AS USER, ");
        text(&mut out, &p.host);
        out.push_str(" AS HOST, ");
        opt_text(&mut out, p.db.as_deref());
        out.push_str(" AS DB, ");
        text(&mut out, p.command);
        let _ = write!(out, " AS COMMAND, {} AS TIME, ", p.time_ms / 1000);
        text(&mut out, &p.state);
        out.push_str(" AS STATE, ");
        let info = p.info.as_deref().map(|i| cut(i, MAX_INFO));
        opt_text(&mut out, info);
        out.push_str(" AS INFO");
        if mariadb {
            let _ = write!(
                out,
                ", CAST({}.{:03} AS DECIMAL(22,3)) AS TIME_MS, 0 AS STAGE, 0 AS MAX_STAGE, \
                 CAST(0 AS DECIMAL(7,3)) AS PROGRESS, 0 AS MEMORY_USED, 0 AS MAX_MEMORY_USED, \
                 0 AS EXAMINED_ROWS, 0 AS SENT_ROWS, 0 AS QUERY_ID, ",
                p.time_ms / 1000,
                p.time_ms % 1000
            );
            opt_text(&mut out, info);
            out.push_str(" AS INFO_BINARY, 0 AS TID");
        }
    }
    out.push(')');
    out
}

/// `sql` with every mention in `at` replaced by the derived table of `rows`.
pub(super) fn rewrite(
    sql: &[u8],
    at: &[(Range<usize>, bool)],
    rows: &[Process],
    mariadb: bool,
) -> Vec<u8> {
    replace(sql, at, &derived(rows, mariadb), "PROCESSLIST")
}

/// `sql` with every mention in `at` replaced by `table` (a derived table), named `name`
/// where no alias follows.
pub(super) fn replace(sql: &[u8], at: &[(Range<usize>, bool)], table: &str, name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(sql.len() + table.len() * at.len());
    let mut from = 0;
    for (range, alias) in at {
        out.extend_from_slice(&sql[from..range.start]);
        out.push(b' ');
        out.extend_from_slice(table.as_bytes());
        if !alias {
            out.extend_from_slice(b" AS ");
            out.extend_from_slice(name.as_bytes());
        }
        from = range.end;
    }
    out.extend_from_slice(&sql[from..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn proc(id: u32, info: Option<&str>) -> Process {
        Process {
            id,
            user: Arc::from("app"),
            host: Arc::from("127.0.0.1:5000"),
            db: None,
            command: "Query",
            time_ms: 1500,
            state: "User sleep".into(),
            info: info.map(str::to_string),
        }
    }

    #[test]
    fn mentions_are_found_with_their_aliases() {
        let m = |s: &str| mentions(s.as_bytes());
        let sql = "SELECT id FROM information_schema.processlist WHERE info LIKE 'x%'";
        let found = m(sql);
        assert_eq!(found.len(), 1);
        assert_eq!(&sql[found[0].0.clone()], " information_schema.processlist");
        assert!(!found[0].1);
        assert!(m("select * from INFORMATION_SCHEMA.`PROCESSLIST` p where p.id = 1")[0].1);
        assert!(!m("SELECT COUNT(*) FROM information_schema.processlist")[0].1);
        assert!(m("SELECT * FROM information_schema.tables").is_empty());
        assert!(m("SELECT 'information_schema.processlist'").is_empty());
        assert_eq!(
            m(
                "SELECT (SELECT COUNT(*) FROM information_schema.processlist) + \
               (SELECT MAX(id) FROM information_schema.processlist AS q)"
            )
            .len(),
            2
        );
    }

    #[test]
    fn values_cannot_change_the_sql() {
        let sql = b"SELECT id, info FROM information_schema.processlist WHERE 1";
        let at = mentions(sql);
        let rows = [proc(7, Some("x'); DROP TABLE t; --")), proc(9, None)];
        let out = String::from_utf8(rewrite(sql, &at, &rows, true)).unwrap();
        assert!(!out.contains("DROP TABLE"), "{out}");
        assert!(
            out.starts_with("SELECT id, info FROM (SELECT CAST(7 AS UNSIGNED) AS ID"),
            "{out}"
        );
        assert!(out.ends_with(") AS PROCESSLIST WHERE 1"), "{out}");
        assert!(
            out.contains("CAST(1.500 AS DECIMAL(22,3)) AS TIME_MS"),
            "{out}"
        );
    }
}
