//! `SHOW [FULL] PROCESSLIST` through Sluice lists Sluice's sessions: the ids that
//! `CONNECTION_ID()` returns and `KILL` takes, their users, databases, commands, and for a
//! running statement the backend's state and text.
#![allow(clippy::disallowed_methods)] // clients of the proxy: tokio timers are theirs

mod common;
use common::*;
use mysql_async::prelude::*;
use std::time::{Duration, Instant};

type Row = (
    u64,
    String,
    String,
    Option<String>,
    String,
    u64,
    String,
    Option<String>,
);

/// A row of `SHOW FULL PROCESSLIST` (with its Progress column).
type Full = (
    u64,
    String,
    String,
    Option<String>,
    String,
    u64,
    String,
    Option<String>,
    String,
);

async fn list(c: &mut mysql_async::Conn) -> Vec<Row> {
    let rows: Vec<Full> = c.query("SHOW FULL PROCESSLIST").await.unwrap();
    rows.into_iter()
        .map(|(id, user, host, db, command, time, state, info, _)| {
            (id, user, host, db, command, time, state, info)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_process_list_shows_sluices_sessions_and_kill_takes_their_ids() {
    let db = database("plist").await;
    let p = proxy(config()).await;
    let mut me = client(&p, Some(&db)).await;
    let mut idle = client(&p, None).await;
    let mut busy = client(&p, Some(&db)).await;
    let my_id: u64 = me
        .query_first("SELECT CONNECTION_ID()")
        .await
        .unwrap()
        .unwrap();
    let idle_id: u64 = idle
        .query_first("SELECT CONNECTION_ID()")
        .await
        .unwrap()
        .unwrap();
    let busy_id: u64 = busy
        .query_first("SELECT CONNECTION_ID()")
        .await
        .unwrap()
        .unwrap();
    let sql = format!("SELECT SLEEP(20) /* plist_sleep {} */", "y".repeat(150));
    let text = sql.clone();
    let sleeper = tokio::spawn(async move {
        let r = busy.query_drop(text).await;
        (r, busy)
    });
    // wait until the statement runs, as the process list shows it
    let t = Instant::now();
    let row = loop {
        let rows = list(&mut me).await;
        let running = |r: &&Row| r.0 == busy_id && r.4 == "Query" && r.6 == "User sleep";
        if let Some(r) = rows.iter().find(running) {
            break r.clone();
        }
        assert!(t.elapsed() < Duration::from_secs(10), "{rows:?}");
        tokio::time::sleep(Duration::from_millis(20)).await; // polling interval
    };
    assert_eq!(row.1, "app");
    assert!(row.2.starts_with("127.0.0.1:"), "{row:?}");
    assert_eq!(row.3.as_deref(), Some(db.as_str()));
    assert_eq!(row.7.as_deref(), Some(sql.as_str()));
    // without FULL the text is cut at 100 characters
    let short: Vec<(u64, Option<String>)> = me
        .query_map("SHOW PROCESSLIST", |r: mysql_async::Row| {
            (r.get(0).unwrap(), r.get(7).unwrap())
        })
        .await
        .unwrap();
    let cut = short
        .iter()
        .find(|r| r.0 == busy_id)
        .and_then(|r| r.1.clone());
    assert_eq!(cut.as_deref(), Some(&sql[..100]));

    let rows = list(&mut me).await;
    let mine = rows.iter().find(|r| r.0 == my_id).expect("own row");
    assert_eq!(mine.4, "Query");
    assert_eq!(mine.7.as_deref(), Some("SHOW FULL PROCESSLIST"));
    let quiet = rows.iter().find(|r| r.0 == idle_id).expect("idle row");
    assert_eq!((quiet.3.as_deref(), quiet.4.as_str()), (None, "Sleep"));
    // only Sluice's sessions: no backend thread (the monitor's, the pool's) shows
    let ours = [my_id, idle_id, busy_id];
    assert!(
        rows.iter().all(|r| r.1 != "app" || ours.contains(&r.0)),
        "{rows:?}"
    );
    assert_eq!(rows.iter().filter(|r| ours.contains(&r.0)).count(), 3);

    // information_schema.PROCESSLIST shows the same sessions, with and without an alias
    let ids: Vec<u64> = me
        .query(
            "SELECT ID FROM information_schema.PROCESSLIST \
             WHERE COMMAND = 'Query' AND STATE = 'User sleep'",
        )
        .await
        .unwrap();
    assert_eq!(ids, [busy_id]);
    let n: Option<u64> = me
        .query_first(format!(
            "SELECT COUNT(*) FROM information_schema.processlist p WHERE p.ID IN ({my_id}, {idle_id}, {busy_id})"
        ))
        .await
        .unwrap();
    assert_eq!(n, Some(3));
    let info: Option<String> = me
        .query_first(format!(
            "SELECT INFO FROM INFORMATION_SCHEMA.`PROCESSLIST` WHERE ID = {busy_id}"
        ))
        .await
        .unwrap();
    assert_eq!(info.as_deref(), Some(sql.as_str()));

    // an id read from the list is the one KILL takes
    me.query_drop(format!("KILL QUERY {busy_id}"))
        .await
        .unwrap();
    let (r, mut busy) = tokio::time::timeout(Duration::from_secs(10), sleeper)
        .await
        .expect("the statement was stopped")
        .unwrap();
    // SLEEP() interrupted returns 1 (MariaDB) or the statement fails with 1317
    if let Err(e) = r {
        assert!(e.to_string().contains("1317"), "{e}");
    }
    let again: u64 = busy.query_first("SELECT 1").await.unwrap().unwrap();
    assert_eq!(again, 1);
    idle.disconnect().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_users_session_is_killed_only_with_the_privilege_to() {
    user("plist_pleb", "pleb_pw").await;
    let t = topology();
    t.sql(
        0,
        "CREATE USER IF NOT EXISTS 'plist_boss'@'127.0.0.1' IDENTIFIED BY 'boss_pw'",
    )
    .await
    .unwrap();
    t.sql(0, "GRANT SELECT, SUPER ON *.* TO 'plist_boss'@'127.0.0.1'")
        .await
        .unwrap();
    caught_up().await;
    let mut cfg = config();
    for (name, password) in [("plist_pleb", "pleb_pw"), ("plist_boss", "boss_pw")] {
        cfg.users.push(sluice::config::User {
            name: name.into(),
            password: password.into(),
            password_hash: None,
            require_tls: false,
            max_connections: 0,
        });
    }
    let p = proxy(cfg).await;
    let as_user = |name: &str, password: &str| {
        opts(&p, None)
            .user(Some(name.to_string()))
            .pass(Some(password.to_string()))
    };
    let mut pleb = mysql_async::Conn::new(as_user("plist_pleb", "pleb_pw"))
        .await
        .unwrap();
    let mut boss = mysql_async::Conn::new(as_user("plist_boss", "boss_pw"))
        .await
        .unwrap();
    let mut app = client(&p, None).await;
    let id: u64 = app
        .query_first("SELECT CONNECTION_ID()")
        .await
        .unwrap()
        .unwrap();
    let sleeper = tokio::spawn(async move {
        app.query_drop("SELECT SLEEP(20) /* plist_kill */")
            .await
            .map_err(|e| e.to_string())
    });
    while running("plist_kill").await == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await; // polling interval
    }
    let e = pleb
        .query_drop(format!("KILL QUERY {id}"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("1095"), "{e}");
    boss.query_drop(format!("KILL QUERY {id}")).await.unwrap();
    let slept = tokio::time::timeout(Duration::from_secs(10), sleeper)
        .await
        .expect("the statement was stopped")
        .unwrap();
    let e = slept.unwrap_err();
    assert!(e.contains("1317"), "{e}");
}
