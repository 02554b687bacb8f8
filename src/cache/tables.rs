//! What a statement reads or writes, for the result cache: the tables it names (parsed with
//! `sqlparser`, once per miss or write), and whether its answer could change with nothing
//! written (time, randomness, the session, the server).

use sqlparser::ast::{visit_expressions, visit_relations, Expr, ObjectName, ObjectNamePart};
use sqlparser::ast::{SetExpr, Statement};
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::Parser;
use std::ops::ControlFlow;

/// A table as `database.table`, lower case (writes on either spelling invalidate).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Table {
    pub database: Box<str>,
    pub name: Box<str>,
}

impl Table {
    pub fn new(database: &str, name: &str) -> Table {
        Table {
            database: database.to_ascii_lowercase().into(),
            name: name.to_ascii_lowercase().into(),
        }
    }
}

/// What a write may have changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    Tables(Vec<Table>),
    /// Every table of a database (DROP DATABASE).
    Database(Box<str>),
    /// Anything: the statement could not be attributed to tables (DDL, CALL, LOAD DATA,
    /// unparsed text).
    Everything,
}

/// Functions whose value changes with nothing written: time, randomness, the session or
/// connection, locks, sequences, the server's state.
const VOLATILE: &[&str] = &[
    "benchmark",
    "connection_id",
    "curdate",
    "current_date",
    "current_role",
    "current_time",
    "current_timestamp",
    "current_user",
    "curtime",
    "database",
    "found_rows",
    "get_lock",
    "is_free_lock",
    "is_used_lock",
    "last_insert_id",
    "lastval",
    "load_file",
    "localtime",
    "localtimestamp",
    "master_gtid_wait",
    "master_pos_wait",
    "nextval",
    "now",
    "rand",
    "random_bytes",
    "release_all_locks",
    "release_lock",
    "row_count",
    "schema",
    "session_user",
    "setval",
    "sleep",
    "source_pos_wait",
    "sys_guid",
    "sysdate",
    "system_user",
    "unix_timestamp",
    "user",
    "utc_date",
    "utc_time",
    "utc_timestamp",
    "uuid",
    "uuid_short",
];

/// Schemas of server state, never cached (not changed by writes Sluice can see).
const SERVER_SCHEMAS: &[&str] = &["information_schema", "performance_schema", "mysql", "sys"];

fn parse(sql: &[u8]) -> Option<Vec<Statement>> {
    let text = std::str::from_utf8(sql).ok()?;
    Parser::parse_sql(&MySqlDialect {}, text).ok()
}

fn table_of(name: &ObjectName, database: Option<&str>) -> Option<Table> {
    let parts: Vec<&str> = name
        .0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(i) => Some(i.value.as_str()),
            ObjectNamePart::Function(_) => None,
        })
        .collect::<Option<_>>()?;
    match parts.as_slice() {
        [t] => Some(Table::new(database?, t)),
        [d, t] => Some(Table::new(d, t)),
        _ => None,
    }
}

/// The tables a cacheable read reads, or `None` when its answer must not be cached: not
/// one plain query, a volatile function, a variable, a server-state schema, a table name
/// without a current database.
pub fn read_tables(sql: &[u8], database: Option<&str>) -> Option<Vec<Table>> {
    let stmts = parse(sql)?;
    let [Statement::Query(q)] = stmts.as_slice() else {
        return None;
    };
    if !q.locks.is_empty() || matches!(&*q.body, SetExpr::Select(s) if s.into.is_some()) {
        return None;
    }
    let volatile = visit_expressions(&stmts, |e| match e {
        Expr::Function(f) => {
            let name = f.name.0.last().and_then(|p| p.as_ident());
            let multi = f.name.0.len() > 1; // a stored function in another database
            match name {
                Some(n) if multi || VOLATILE.contains(&n.value.to_ascii_lowercase().as_str()) => {
                    ControlFlow::Break(())
                }
                _ => ControlFlow::Continue(()),
            }
        }
        Expr::Identifier(i) if i.value.starts_with('@') => ControlFlow::Break(()),
        Expr::CompoundIdentifier(v) if v.first().is_some_and(|i| i.value.starts_with('@')) => {
            ControlFlow::Break(())
        }
        _ => ControlFlow::Continue(()),
    });
    if volatile.is_break() {
        return None;
    }
    let mut tables = Vec::new();
    let named = visit_relations(&stmts, |name| match table_of(name, database) {
        Some(t) if !SERVER_SCHEMAS.contains(&&*t.database) => {
            tables.push(t);
            ControlFlow::Continue(())
        }
        _ => ControlFlow::Break(()),
    });
    if named.is_break() {
        return None;
    }
    tables.sort_unstable();
    tables.dedup();
    Some(tables)
}

/// What a write (`sql`, run with current database `database`) may have changed: every
/// table an INSERT, REPLACE, UPDATE or DELETE names (sources included), the table a CREATE,
/// ALTER, DROP or TRUNCATE TABLE names, else everything.
pub fn written(sql: &[u8], database: Option<&str>) -> Written {
    let Some(stmts) = parse(sql) else {
        return Written::Everything;
    };
    let dml = stmts.iter().all(|s| {
        matches!(
            s,
            Statement::Insert(_) | Statement::Update { .. } | Statement::Delete(_)
        )
    });
    if !dml {
        return ddl(&stmts, database).unwrap_or(Written::Everything);
    }
    let mut tables = Vec::new();
    let all = visit_relations(&stmts, |name| match table_of(name, database) {
        Some(t) => {
            tables.push(t);
            ControlFlow::Continue(())
        }
        None => ControlFlow::Break(()),
    });
    if all.is_break() || tables.is_empty() {
        return Written::Everything;
    }
    tables.sort_unstable();
    tables.dedup();
    Written::Tables(tables)
}

/// What DDL statements change: the tables created, replaced, altered, dropped or truncated,
/// the views created, altered or dropped (no reply that reads a view is kept), a dropped
/// database; `None` when a statement is none of those (anything may have changed).
fn ddl(stmts: &[Statement], database: Option<&str>) -> Option<Written> {
    use sqlparser::ast::ObjectType;
    let mut tables = Vec::new();
    for s in stmts {
        let names: Vec<&ObjectName> = match s {
            Statement::CreateTable(c) => vec![&c.name],
            Statement::AlterTable(a) => vec![&a.name],
            Statement::CreateView(v) => vec![&v.name],
            Statement::AlterView(v) => vec![&v.name],
            Statement::Drop {
                object_type: ObjectType::Table | ObjectType::View,
                names,
                ..
            } => names.iter().collect(),
            Statement::Drop {
                object_type: ObjectType::Database | ObjectType::Schema,
                names,
                ..
            } if stmts.len() == 1 && names.len() == 1 => {
                let [ObjectNamePart::Identifier(db)] = names[0].0.as_slice() else {
                    return None;
                };
                return Some(Written::Database(db.value.to_ascii_lowercase().into()));
            }
            Statement::Truncate(t) => t.table_names.iter().map(|t| &t.name).collect(),
            Statement::CreateDatabase { .. } => vec![],
            _ => return None,
        };
        for n in names {
            tables.push(table_of(n, database)?);
        }
    }
    tables.sort_unstable();
    tables.dedup();
    Some(Written::Tables(tables))
}

/// Whether statement `sql` may create, change or rename a view (it names VIEW, or renames
/// tables). Errs on the side of yes.
pub fn may_change_views(sql: &[u8]) -> bool {
    let first = crate::router::first_word(sql).unwrap_or_default();
    let ddl = [&b"CREATE"[..], b"ALTER", b"DROP", b"RENAME"];
    if !ddl.iter().any(|w| first.eq_ignore_ascii_case(w)) {
        return false;
    }
    // (a DROP only shrinks the set of views: a name left in it costs a reply not kept)
    first.eq_ignore_ascii_case(b"RENAME") || sql.windows(4).any(|w| w.eq_ignore_ascii_case(b"VIEW"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reads(sql: &str) -> Option<Vec<String>> {
        read_tables(sql.as_bytes(), Some("shop")).map(|v| {
            v.into_iter()
                .map(|t| format!("{}.{}", t.database, t.name))
                .collect()
        })
    }

    #[test]
    fn a_read_names_its_tables() {
        assert_eq!(
            reads("SELECT a FROM Items i JOIN other.t ON i.x = t.y WHERE z IN (SELECT 1 FROM c)"),
            Some(vec!["other.t".into(), "shop.c".into(), "shop.items".into()])
        );
        assert_eq!(reads("SELECT 1"), Some(vec![]));
    }

    #[test]
    fn volatile_reads_are_not_cached() {
        for sql in [
            "SELECT NOW()",
            "SELECT CURRENT_TIMESTAMP",
            "SELECT rand() FROM t",
            "SELECT * FROM t WHERE id = @x",
            "SELECT @@server_id",
            "SELECT uuid()",
            "SELECT * FROM t FOR UPDATE",
            "SELECT * FROM t LOCK IN SHARE MODE",
            "SELECT a INTO @v FROM t",
            "SELECT * FROM information_schema.tables",
            "SELECT * FROM mysql.user",
            "SELECT other.f(1)",
            "SELECT 1; SELECT 2",
            "UPDATE t SET a = 1",
            "SELECT LAST_INSERT_ID()",
        ] {
            assert_eq!(reads(sql), None, "{sql}");
        }
        assert_eq!(read_tables(b"SELECT * FROM t", None), None);
    }

    #[test]
    fn view_ddl_is_recognised() {
        for sql in [
            "CREATE VIEW v AS SELECT 1",
            "create or replace algorithm=merge view v as select 1",
            "ALTER VIEW v AS SELECT 2",
            "DROP VIEW v",
            "RENAME TABLE v TO w",
        ] {
            assert!(may_change_views(sql.as_bytes()), "{sql}");
        }
        for sql in [
            "CREATE TABLE t (a INT)",
            "ALTER TABLE t ADD b INT",
            "UPDATE view_t SET a = 1",
        ] {
            assert!(!may_change_views(sql.as_bytes()), "{sql}");
        }
    }

    #[test]
    fn a_write_names_what_it_changed() {
        let w = |sql: &str| written(sql.as_bytes(), Some("shop"));
        assert_eq!(
            w("UPDATE items SET n = n + 1 WHERE id = 3"),
            Written::Tables(vec![Table::new("shop", "items")])
        );
        assert_eq!(
            w("INSERT INTO a.x SELECT * FROM y"),
            Written::Tables(vec![Table::new("a", "x"), Table::new("shop", "y")])
        );
        assert_eq!(
            w("REPLACE INTO x VALUES (1)"),
            Written::Tables(vec![Table::new("shop", "x")])
        );
        assert_eq!(
            w("DELETE FROM x WHERE id = 1"),
            Written::Tables(vec![Table::new("shop", "x")])
        );
        let x = || Written::Tables(vec![Table::new("shop", "x")]);
        assert_eq!(w("TRUNCATE TABLE x"), x());
        assert_eq!(w("ALTER TABLE x ADD c INT"), x());
        assert_eq!(w("CREATE OR REPLACE TABLE x (a INT)"), x());
        assert_eq!(w("DROP TABLE IF EXISTS x"), x());
        assert_eq!(w("CREATE DATABASE other"), Written::Tables(vec![]));
        assert_eq!(
            w("DROP DATABASE IF EXISTS Shop"),
            Written::Database("shop".into())
        );
        let v = Written::Tables(vec![Table::new("shop", "v")]);
        assert_eq!(w("CREATE VIEW v AS SELECT 1"), v);
        assert_eq!(w("DROP VIEW v"), v);
        assert_eq!(w("CALL p()"), Written::Everything);
        assert_eq!(written(b"UPDATE x SET a = 1", None), Written::Everything);
    }
}
