use super::*;

fn c(sql: &str) -> Intent {
    classify(sql.as_bytes())
}

#[test]
fn kinds() {
    let cases: &[(&str, Kind)] = &[
        ("SELECT 1", Kind::Read),
        ("  select * from t where id = 5", Kind::Read),
        ("SHOW DATABASES", Kind::Read),
        ("DESC t", Kind::Read),
        ("EXPLAIN SELECT 1", Kind::Read),
        ("HELP 'select'", Kind::Read),
        ("INSERT INTO t VALUES (1)", Kind::Write),
        ("update t set a = 1", Kind::Write),
        ("REPLACE INTO t VALUES (1)", Kind::Write),
        ("CREATE TABLE t (a int)", Kind::Write),
        ("LOAD DATA LOCAL INFILE 'x' INTO TABLE t", Kind::Write),
        ("CALL p()", Kind::Write),
        ("DO SLEEP(1)", Kind::Write),
        ("HANDLER t OPEN", Kind::Write),
        ("BEGIN", Kind::Begin),
        ("START TRANSACTION READ ONLY", Kind::Begin),
        ("START SLAVE", Kind::Write),
        ("COMMIT", Kind::EndTx),
        ("ROLLBACK TO SAVEPOINT a", Kind::EndTx),
        ("SET NAMES utf8mb4", Kind::SetSession),
        ("SET CHARACTER SET utf8", Kind::SetSession),
        ("SET sql_mode = 'ANSI'", Kind::SetSession),
        (
            "SET SESSION time_zone = '+00:00', @@session.sql_mode = ''",
            Kind::SetSession,
        ),
        (
            "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
            Kind::SetSession,
        ),
        (
            "SET TRANSACTION ISOLATION LEVEL READ COMMITTED",
            Kind::SetOther,
        ),
        ("SET GLOBAL max_connections = 10", Kind::SetOther),
        ("SET @@global.max_connections = 10", Kind::SetOther),
        ("SET @x := 1", Kind::SetOther),
        ("SET autocommit = 0", Kind::SetOther),
        (
            "SET STATEMENT max_statement_time=1 FOR SELECT 1",
            Kind::SetOther,
        ),
        ("USE `db`", Kind::Use),
        ("KILL QUERY 7", Kind::Kill),
        ("", Kind::Empty),
        ("/* nothing */", Kind::Empty),
        ("WITH a AS (SELECT 1) SELECT * FROM a", Kind::Undecided),
        ("/*!40101 SET NAMES utf8 */", Kind::SetSession),
    ];
    for (sql, want) in cases {
        assert_eq!(c(sql).kind, *want, "{sql}");
    }
}

#[test]
fn flags() {
    let cases: &[(&str, u32)] = &[
        ("SELECT * FROM t FOR UPDATE", flag::LOCKING),
        ("SELECT * FROM t FOR SHARE", flag::LOCKING),
        ("SELECT * FROM t LOCK IN SHARE MODE", flag::LOCKING),
        (
            "SELECT a INTO @x FROM t",
            flag::INTO | flag::ASSIGNS_USER_VAR,
        ),
        ("SELECT * FROM t INTO OUTFILE '/tmp/x'", flag::INTO),
        (
            "SELECT LAST_INSERT_ID()",
            flag::SESSION_FN | flag::LAST_INSERT_ID,
        ),
        ("select found_rows()", flag::SESSION_FN),
        ("SELECT ROW_COUNT()", flag::SESSION_FN),
        ("SELECT GET_LOCK('a', 1)", flag::GET_LOCK),
        ("SELECT RELEASE_LOCK('a')", flag::SESSION_FN),
        (
            "SELECT IS_FREE_LOCK('a'), IS_USED_LOCK('a')",
            flag::SESSION_FN,
        ),
        ("SELECT NEXTVAL(s)", flag::SESSION_FN),
        ("SELECT NEXT VALUE FOR s", flag::SESSION_FN),
        ("SELECT @a", flag::USER_VAR),
        ("SELECT @a := 5", flag::ASSIGNS_USER_VAR),
        ("SET @a = 1", flag::ASSIGNS_USER_VAR),
        ("CREATE TEMPORARY TABLE t (a int)", flag::TEMP_TABLE),
        ("LOCK TABLES t READ", flag::LOCK_TABLES),
        ("SELECT SQL_CALC_FOUND_ROWS * FROM t", flag::CALC_FOUND_ROWS),
        ("PREPARE s FROM 'SELECT 1'", flag::SQL_PREPARE),
        ("XA START 'x'", flag::XA),
        ("SELECT 1; SELECT 2", flag::MULTI),
        ("/* sluice:primary */ SELECT 1", flag::HINT_PRIMARY),
        ("/* sluice:replica */ SELECT 1", flag::HINT_REPLICA),
        ("SET autocommit=1", flag::AUTOCOMMIT),
        ("SET @@autocommit=1", flag::AUTOCOMMIT),
        ("SHOW WARNINGS", flag::SHOW_WARNINGS),
        ("SET TRANSACTION READ ONLY", flag::PIN),
        ("BACKUP STAGE START", flag::PIN),
        ("BACKUP LOCK t", flag::PIN),
        ("FLUSH TABLES WITH READ LOCK", flag::PIN),
        ("flush tables t1, t2 with read lock", flag::PIN),
        ("FLUSH TABLES t FOR EXPORT", flag::PIN),
        ("FLUSH STATUS", flag::PIN),
        ("flush local status", flag::PIN),
        ("HANDLER t OPEN", flag::PIN),
        ("CALL p(1)", flag::CALL),
        ("SET GLOBAL wait_timeout = 3", flag::GLOBAL_CHANGE),
        ("SET @@global.wait_timeout = 3", flag::GLOBAL_CHANGE),
        ("SET PASSWORD FOR u = PASSWORD('x')", flag::GLOBAL_CHANGE),
        ("GRANT SELECT ON db.* TO u", flag::GLOBAL_CHANGE),
        ("revoke all on *.* from u", flag::GLOBAL_CHANGE),
        ("CREATE USER u IDENTIFIED BY 'x'", flag::GLOBAL_CHANGE),
        ("DROP ROLE r", flag::GLOBAL_CHANGE),
        ("RENAME USER a TO b", flag::GLOBAL_CHANGE),
        ("FLUSH PRIVILEGES", flag::GLOBAL_CHANGE),
    ];
    for (sql, want) in cases {
        let got = c(sql).flags;
        assert_eq!(got & want, *want, "{sql}: flags {got:#x}");
    }
    for plain in [
        "SET SESSION wait_timeout = 3",
        "SET wait_timeout = 3",
        "CREATE TABLE user (a int)",
        "SELECT * FROM grant_log",
        "SET STATEMENT max_statement_time=1 FOR SELECT 1",
    ] {
        assert_eq!(c(plain).flags & flag::GLOBAL_CHANGE, 0, "{plain}");
    }
}

#[test]
fn server_state_reads() {
    use crate::router::policy::{route, SessionView, Target};
    let free = SessionView::default();
    for sql in [
        "SELECT @@global.gtid_binlog_state",
        "SELECT @@GLOBAL.read_only, 1",
        "SELECT * FROM mysql.servers",
        "SELECT host FROM `mysql`.`user`",
        "SELECT status FROM information_schema.events WHERE event_name = 'e'",
        "SELECT * FROM information_schema.PROCESSLIST",
        "SELECT * FROM INFORMATION_SCHEMA.user_privileges",
        "SELECT * FROM performance_schema.threads",
        "SELECT * FROM sys.session",
        "SHOW PROCESSLIST",
        "SHOW FULL PROCESSLIST",
        "SHOW GLOBAL STATUS LIKE 'Com_select'",
        "SHOW GLOBAL VARIABLES LIKE 'read_only'",
        "SHOW GRANTS",
        "SHOW EVENTS",
        "SHOW CREATE EVENT e",
        "SHOW CREATE USER app",
        "SHOW MASTER STATUS",
        "SHOW SLAVE STATUS",
        "SHOW BINLOG EVENTS",
        "SHOW ENGINE INNODB STATUS",
        "EXPLAIN UPDATE t SET a = 1",
        "EXPLAIN EXTENDED DELETE FROM t",
        "DESCRIBE INSERT INTO t VALUES (1)",
        "EXPLAIN FORMAT=JSON UPDATE t SET a = 1",
    ] {
        let i = c(sql);
        assert!(i.has(flag::SERVER_STATE), "{sql}: flags {:#x}", i.flags);
        assert_eq!(route(&i, &free).0, Target::Primary, "{sql}");
    }
    // a hint still sends it to a replica
    let hinted = c("/* sluice:replica */ SELECT @@global.read_only");
    assert_eq!(route(&hinted, &free).0, Target::Replica);
}

#[test]
fn schema_reads_and_unqualified_variables_stay_reads() {
    for sql in [
        "SELECT @@server_id",
        "SELECT @@session.sql_mode",
        "SELECT * FROM information_schema.tables WHERE table_schema = 'd'",
        "SELECT column_name FROM information_schema.COLUMNS",
        "SHOW TABLES",
        "SHOW FULL TABLES",
        "SHOW COLUMNS FROM t",
        "SHOW CREATE TABLE t",
        "SHOW INDEX FROM t",
        "SHOW DATABASES",
        "SHOW TABLE STATUS",
        "SHOW VARIABLES LIKE 'server_id'",
        "SHOW SESSION VARIABLES LIKE 'sql_mode'",
        "SHOW COLLATION",
        "EXPLAIN SELECT * FROM t WHERE update_time > 0",
        "DESCRIBE t",
        "SELECT * FROM mysqlx.t",
        "SELECT t.mysql FROM t",
    ] {
        let i = c(sql);
        assert_eq!(
            i.flags & flag::SERVER_STATE,
            0,
            "{sql}: flags {:#x}",
            i.flags
        );
    }
}

#[test]
fn diagnostics_about_the_previous_statement() {
    for sql in [
        "SHOW WARNINGS",
        "SHOW ERRORS",
        "SHOW COUNT(*) WARNINGS",
        "SHOW STATUS LIKE 'Handler_read%'",
        "SHOW SESSION STATUS",
        "SHOW PROFILES",
        "SHOW PROFILE FOR QUERY 1",
        "SELECT * FROM information_schema.OPTIMIZER_TRACE",
        "SELECT * FROM information_schema.profiling",
    ] {
        let i = c(sql);
        assert!(i.has(flag::SHOW_WARNINGS), "{sql}: flags {:#x}", i.flags);
        assert_eq!(i.flags & flag::SERVER_STATE, 0, "{sql}");
        let status = sql.contains("STATUS");
        assert_eq!(i.has(flag::STATUS), status, "{sql}: flags {:#x}", i.flags);
    }
    let i = c("SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS WHERE 1");
    assert!(
        i.has(flag::SHOW_WARNINGS | flag::STATUS),
        "flags {:#x}",
        i.flags
    );
}

#[test]
fn flushes_that_take_no_lock_do_not_pin() {
    for sql in [
        "FLUSH TABLES",
        "FLUSH LOGS",
        "FLUSH TABLES t",
        "FLUSH PRIVILEGES",
    ] {
        assert_eq!(c(sql).flags & flag::PIN, 0, "{sql}");
    }
}

#[test]
fn no_false_flags() {
    for sql in [
        "SELECT 'FOR UPDATE', `last_insert_id` FROM t",
        "SELECT * FROM t WHERE note = '@a'",
        "SELECT * FROM t -- FOR UPDATE",
        "SELECT email FROM users WHERE email LIKE '%@%'",
        "SELECT @@version",
    ] {
        let i = c(sql);
        assert_eq!(i.kind, Kind::Read, "{sql}");
        assert_eq!(
            i.flags & (flag::LOCKING | flag::NEEDS_SESSION),
            0,
            "{sql}: {:#x}",
            i.flags
        );
    }
}

#[test]
fn multi_statements() {
    assert_eq!(c("SELECT 1; SELECT 2").kind, Kind::Read);
    assert_eq!(c("SELECT 1; DELETE FROM t").kind, Kind::Write);
    let i = c("SET NAMES latin1; SELECT 1");
    assert_eq!(i.kind, Kind::Write);
    assert!(i.has(flag::PIN));
    assert_eq!(c("SELECT 1;").kind, Kind::Read);
}

#[test]
fn digest_strips_literals() {
    assert_eq!(
        c("SELECT c FROM t WHERE id = 5").digest,
        c("select c from t where id=12345").digest
    );
    assert_eq!(c("SELECT 'a'").digest, c("SELECT \"bbb\"").digest);
    assert_eq!(
        c("SELECT * FROM t WHERE id = -5").digest,
        c("SELECT * FROM t WHERE id = 5").digest
    );
    assert_ne!(
        c("SELECT a - 1").digest,
        c("SELECT a 1").digest,
        "binary minus stays in the shape"
    );
    assert_ne!(
        c("SELECT c FROM t WHERE id = 5").digest,
        c("SELECT d FROM t WHERE id = 5").digest
    );
}

#[test]
fn parser_path_decides_and_caches() {
    let cl = crate::router::Classifier::new();
    assert_eq!(
        cl.classify(b"WITH a AS (SELECT 1) SELECT * FROM a").kind,
        Kind::Read
    );
    assert_eq!(
        cl.classify(b"WITH a AS (SELECT 2) SELECT * FROM a").kind,
        Kind::Read
    );
    assert_eq!(cl.cached_shapes(), 1);
    assert_eq!(
        cl.classify(b"WITH a AS (SELECT 1) UPDATE t SET x = 1").kind,
        Kind::Write
    );
    assert_eq!(cl.classify(b"VALUES garbage (").kind, Kind::Write);
}

#[test]
fn use_and_kill_arguments() {
    assert_eq!(use_target(b"USE `my db`"), Some("my db".into()));
    assert_eq!(use_target(b"use shop"), Some("shop".into()));
    assert_eq!(kill_target(b"KILL 12"), Some((false, 12)));
    assert_eq!(kill_target(b"KILL QUERY 7"), Some((true, 7)));
    assert_eq!(kill_target(b"kill connection 9"), Some((false, 9)));
    assert_eq!(kill_target(b"KILL USER bob"), None);
}

#[test]
fn max_lag_hint() {
    assert_eq!(c("/* sluice:max_lag=500ms */ SELECT 1").max_lag_ms, 500);
    assert_eq!(
        c("/* sluice:replica,max_lag=2s */ SELECT 1").max_lag_ms,
        2000
    );
    assert_eq!(c("/* sluice:max_lag=soon */ SELECT 1").max_lag_ms, 0);
    assert_eq!(c("SELECT 1").max_lag_ms, 0);
}

#[test]
fn drop_database_names_its_database() {
    use super::drop_database_target as d;
    assert_eq!(d(b"DROP DATABASE db1").as_deref(), Some("db1"));
    assert_eq!(
        d(b"drop schema if exists `my``db`").as_deref(),
        Some("my`db")
    );
    assert_eq!(d(b"DROP TABLE db1"), None);
    assert_eq!(d(b"DROP DATABASE IF db1"), None);
    assert_eq!(
        super::classify(b"DROP DATABASE db1").kind,
        super::Kind::Write
    );
}
