//! Anonymous accounts (`''@'host'`) with `[auth] users = "backend"`: a user name without an
//! account of its own logs in as the anonymous account of its host, and a more specific
//! anonymous host wins over a named account on `%`, as on the server. (A binary of its own:
//! an anonymous account changes how the servers match every login from its host.)
#![allow(clippy::disallowed_methods)] // clients of the proxy: tokio timers are theirs

mod common;
use common::*;
use mysql_async::prelude::*;
use sluice::config::UserSource;

fn as_user(p: &sluice::app::Proxy, user: &str, pass: &str) -> mysql_async::OptsBuilder {
    opts(p, None).user(Some(user)).pass(Some(pass))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_name_logs_in_as_the_anonymous_account_of_its_host() {
    let t = topology();
    for sql in [
        "CREATE USER ''@'127.0.0.1' IDENTIFIED BY 'anon_pw'",
        "GRANT SELECT ON *.* TO ''@'127.0.0.1'",
        // a named account on '%' loses to the anonymous one on 127.0.0.1 (server rule)
        "CREATE USER 'wide_user'@'%' IDENTIFIED BY 'wide_pw'",
    ] {
        t.sql(0, sql).await.unwrap();
    }
    caught_up().await;
    let mut cfg = config();
    cfg.auth.users = UserSource::Backend;
    let p = proxy(cfg).await;
    let mut c = mysql_async::Conn::new(as_user(&p, "nobody_here", "anon_pw"))
        .await
        .unwrap();
    let me: String = c
        .query_first("SELECT CURRENT_USER()")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(me, "@127.0.0.1");
    // reads on a replica, as that account
    let on: u32 = server_id(&mut c, "SELECT @@server_id").await;
    assert_ne!(on, 1);
    for (user, pw) in [("nobody_here", "wrong"), ("wide_user", "wide_pw")] {
        match mysql_async::Conn::new(as_user(&p, user, pw)).await {
            Err(mysql_async::Error::Server(e)) => assert_eq!(e.code, 1045, "{user}: {e:?}"),
            other => panic!("{user}: expected ERR 1045, got {other:?}"),
        }
    }
    // and the server agrees about wide_user: anonymous@127.0.0.1 wins there too
    let direct = mysql_async::OptsBuilder::default()
        .ip_or_hostname("127.0.0.1")
        .tcp_port(t.servers[0].port)
        .user(Some("wide_user"))
        .pass(Some("wide_pw"))
        .prefer_socket(false);
    assert!(mysql_async::Conn::new(direct).await.is_err());
    // the app's own account (same host, named) still wins over the anonymous one
    let mut app = client(&p, None).await;
    let me: String = app
        .query_first("SELECT CURRENT_USER()")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(me, "app@127.0.0.1");
}
