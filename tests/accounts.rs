//! Accounts without plaintext in the config: `password_hash`, and `[auth] users = "backend"`
//! (users created on the primary log in through Sluice without a config change).
#![allow(clippy::disallowed_methods)] // clients of the proxy: tokio timers are theirs

mod common;
use common::*;
use mysql_async::prelude::*;
use sluice::config::UserSource;

fn as_user(p: &sluice::app::Proxy, user: &str, pass: &str) -> mysql_async::OptsBuilder {
    opts(p, None).user(Some(user)).pass(Some(pass))
}

async fn server_error(o: mysql_async::OptsBuilder) -> (u16, String) {
    match mysql_async::Conn::new(o).await {
        Err(mysql_async::Error::Server(e)) => (e.code, e.message),
        Err(other) => panic!("expected a server error, got {other:?}"),
        Ok(_) => panic!("the login must fail"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_hash_in_the_config_logs_in_and_reaches_the_backends() {
    let mut cfg = config();
    cfg.users[0].password = String::new();
    cfg.users[0].password_hash = Some("*90BE3C2682EBF3427EDA20315D6EAB9E31FD1023".into()); // apppass
    let p = proxy(cfg).await;
    let mut c = mysql_async::Conn::new(opts(&p, None)).await.unwrap();
    let on_replica: u32 = server_id(&mut c, "SELECT @@server_id").await;
    assert_ne!(
        on_replica, 1,
        "a read on a replica, logged in with the hash"
    );
    c.query_drop("BEGIN").await.unwrap();
    assert_eq!(server_id(&mut c, "SELECT @@server_id").await, 1);
    c.query_drop("COMMIT").await.unwrap();
    let (code, _) = server_error(as_user(&p, "app", "wrong")).await;
    assert_eq!(code, 1045);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_created_on_the_primary_log_in_without_a_config_change() {
    let mut cfg = config();
    cfg.auth.users = UserSource::Backend;
    let p = proxy(cfg).await;
    let t = topology();
    for sql in [
        "CREATE USER IF NOT EXISTS 'late_user'@'127.0.0.1' IDENTIFIED BY 'late pw'",
        "GRANT SELECT, PROCESS ON *.* TO 'late_user'@'127.0.0.1'",
        "CREATE USER IF NOT EXISTS 'far_user'@'10.%' IDENTIFIED BY 'far pw'",
        "CREATE USER IF NOT EXISTS 'sock_user'@'127.0.0.1' IDENTIFIED VIA unix_socket",
    ] {
        t.sql(0, sql).await.unwrap();
    }
    caught_up().await;
    // created after Sluice started: found by the refresh an unknown login triggers
    let mut c = mysql_async::Conn::new(as_user(&p, "late_user", "late pw"))
        .await
        .expect("login of a user created on the primary");
    let on_replica = server_id(&mut c, "SELECT @@server_id").await;
    assert_ne!(on_replica, 1, "reads go to a replica as that user");
    let me: String = c
        .query_first("SELECT CURRENT_USER()")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(me, "late_user@127.0.0.1");
    let (code, _) = server_error(as_user(&p, "late_user", "wrong")).await;
    assert_eq!(code, 1045);
    // host patterns are honoured: this account is only for 10.%
    let (code, _) = server_error(as_user(&p, "far_user", "far pw")).await;
    assert_eq!(code, 1045);
    // an account Sluice cannot verify gets a clear error
    let (code, msg) = server_error(as_user(&p, "sock_user", "")).await;
    assert_eq!(code, 1045);
    assert!(msg.contains("unix_socket"), "{msg}");
    // COM_CHANGE_USER to a backend-only user (node-mysql2's change-user tests)
    let mut app = mysql_async::Conn::new(opts(&p, None)).await.unwrap();
    app.change_user(
        mysql_async::ChangeUserOpts::default()
            .with_user(Some("late_user".into()))
            .with_pass(Some("late pw".into())),
    )
    .await
    .expect("change_user to a backend account");
    let me: String = app
        .query_first("SELECT CURRENT_USER()")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(me, "late_user@127.0.0.1");
}
