//! TLS toward clients: the real `mariadb` CLI with certificate verification, TLS versions,
//! and require_secure_transport.
#![allow(clippy::disallowed_methods)] // clients of the proxy: tokio timers are theirs

mod common;
use common::*;
use mysql_async::prelude::*;

/// Runs the `mariadb` CLI against the proxy; returns (success, stdout + stderr).
async fn cli(p: &sluice::app::Proxy, extra: &[&str], sql: &str) -> (bool, String) {
    cli_as(p, "app", "apppass", extra, sql).await
}

async fn cli_as(
    p: &sluice::app::Proxy,
    user: &str,
    password: &str,
    extra: &[&str],
    sql: &str,
) -> (bool, String) {
    let out = tokio::process::Command::new("mariadb")
        .args(["--no-defaults", "-h", "127.0.0.1"])
        .arg(format!("-u{user}"))
        .arg(format!("-p{password}"))
        .arg(format!("-P{}", p.addr.port()))
        .args(extra)
        .args(["-e", sql])
        .output()
        .await
        .expect("mariadb client");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn verified(ca: &str, version: &str) -> Vec<String> {
    [
        "--ssl",
        "--ssl-verify-server-cert",
        "--ssl-ca",
        ca,
        "--tls-version",
        version,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_with_a_verified_certificate_gets_tls_1_2_and_1_3() {
    let p = proxy(config()).await;
    let ca = topology().dir.join("tls").join("ca.pem");
    let ca = ca.to_str().unwrap();
    for version in ["TLSv1.3", "TLSv1.2"] {
        let args = verified(ca, version);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, out) = cli(&p, &args, "status; SELECT 'through tls' AS x").await;
        assert!(ok, "{version}: {out}");
        assert!(
            out.contains("Cipher in use"),
            "{version}: no TLS cipher in: {out}"
        );
        assert!(out.contains("through tls"), "{out}");
        // what the client asks about its TLS session describes its own (not the backend's
        // plaintext leg)
        let (ok, out) = cli(&p, &args, "SHOW STATUS LIKE 'Ssl\\_%'").await;
        assert!(ok, "{out}");
        assert!(out.contains(&format!("Ssl_version\t{version}")), "{out}");
        let cipher = if version == "TLSv1.3" {
            "Ssl_cipher\tTLS_"
        } else {
            "Ssl_cipher\tECDHE-"
        };
        assert!(out.contains(cipher), "{version}: {out}");
        // and so does information_schema.SESSION_STATUS (mtr's ssl tests read it), other
        // variables still the backend's
        let sql = "SELECT VARIABLE_NAME, VARIABLE_VALUE FROM information_schema.SESSION_STATUS \
                   WHERE VARIABLE_NAME IN ('Ssl_version', 'Ssl_cipher', 'Com_select') \
                   ORDER BY VARIABLE_NAME";
        let (ok, out) = cli(&p, &args, sql).await;
        assert!(ok, "{out}");
        assert!(out.contains(&format!("SSL_VERSION\t{version}")), "{out}");
        assert!(
            out.contains(&cipher.to_uppercase()[..12]),
            "{version}: {out}"
        );
        assert!(out.contains("COM_SELECT\t"), "{out}");
    }
    let (ok, out) = cli(&p, &["--skip-ssl"], "SHOW SESSION STATUS LIKE 'Ssl_cipher'").await;
    assert!(ok && out.contains("Ssl_cipher\t\n"), "plain TCP: {out}");
    let sql = "SELECT VARIABLE_VALUE = '' AS plain FROM INFORMATION_SCHEMA.SESSION_STATUS s \
               WHERE s.VARIABLE_NAME = 'SSL_CIPHER'";
    let (ok, out) = cli(&p, &["--skip-ssl"], sql).await;
    assert!(ok && out.contains("plain\n1\n"), "plain TCP: {out}");
    // older protocol versions are refused
    let args = verified(ca, "TLSv1.1");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, out) = cli(&p, &args, "SELECT 1").await;
    assert!(!ok, "TLS 1.1 must be refused: {out}");
    // a client that trusts another CA refuses Sluice's certificate
    let other = topology().dir.join("tls").join("server.pem");
    let args = verified(other.to_str().unwrap(), "TLSv1.3");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, _) = cli(&p, &args, "SELECT 1").await;
    assert!(!ok, "verification against the wrong CA must fail");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_secure_transport_refuses_plain_clients() {
    let mut cfg = config();
    cfg.tls
        .as_mut()
        .expect("the sandbox config has [tls]")
        .require_secure_transport = true;
    let p = proxy(cfg).await;
    let (ok, out) = cli(&p, &["--skip-ssl"], "SELECT 1").await;
    assert!(!ok && out.contains("3159"), "{out}");
    // refused before the password is judged: a wrong one gets the same answer, so an
    // eavesdropped plain login tells nothing about the password
    let (ok, out) = cli_as(&p, "app", "wrong", &["--skip-ssl"], "SELECT 1").await;
    assert!(!ok && out.contains("3159"), "{out}");
    let ca = topology().dir.join("tls").join("ca.pem");
    let args = verified(ca.to_str().unwrap(), "TLSv1.3");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, out) = cli(&p, &args, "SELECT 1").await;
    assert!(ok, "{out}");
}

/// A user known to Sluice only by its caching_sha2_password string (as MySQL 8 stores it):
/// Sluice asks the client for full authentication and logs in to the backend with the
/// password it received, over TLS (in the clear) and without (RSA-encrypted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caching_sha2_full_authentication_over_tls_and_rsa() {
    user("sha2app", "sha2 pass!word").await;
    let stored = sluice::password::sha2crypt::Sha2Crypt::new(
        b"sha2 pass!word",
        b"0123456789abcdefghij",
        5000,
    );
    let mut cfg = config_for("sha2app", "");
    cfg.users[0].password_hash = Some(String::from_utf8(stored.to_bytes()).unwrap());
    let p = proxy(cfg).await;
    let ca = topology().dir.join("tls").join("ca.pem");
    let tls = verified(ca.to_str().unwrap(), "TLSv1.3");
    let tls: Vec<&str> = tls.iter().map(String::as_str).collect();
    let sql = "SELECT CONCAT('user=', CURRENT_USER())";
    let (ok, out) = cli_as(&p, "sha2app", "sha2 pass!word", &tls, sql).await;
    assert!(ok && out.contains("user=sha2app@"), "over TLS: {out}");
    let (ok, out) = cli_as(&p, "sha2app", "wrong", &tls, sql).await;
    assert!(
        !ok && out.contains("1045"),
        "wrong password over TLS: {out}"
    );

    // no TLS: the client fetches Sluice's RSA public key and encrypts the password
    let plain = opts(&p, None)
        .user(Some("sha2app"))
        .pass(Some("sha2 pass!word"));
    let mut c = mysql_async::Conn::new(plain.clone())
        .await
        .expect("caching_sha2 full authentication with RSA");
    let who: Option<String> = c.query_first("SELECT CURRENT_USER()").await.unwrap();
    assert!(who.unwrap().starts_with("sha2app@"));
    let e = mysql_async::Conn::new(plain.pass(Some("wrong")))
        .await
        .map(|_| ())
        .unwrap_err();
    assert!(e.to_string().contains("1045"), "{e}");
}

/// An encrypted client killed while its statement runs: the statement is killed on the
/// backend (the TLS layer owns the socket; a second registration of it notices the close).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_of_a_vanished_tls_client_is_killed() {
    let p = proxy(config()).await;
    let ca = topology().dir.join("tls").join("ca.pem");
    let mut child = tokio::process::Command::new("mariadb")
        .args(["--no-defaults", "-h", "127.0.0.1", "-uapp", "-papppass"])
        .arg(format!("-P{}", p.addr.port()))
        .args(verified(ca.to_str().unwrap(), "TLSv1.3"))
        .args(["-e", "SELECT SLEEP(30) AS tls_vanish_marker"])
        .kill_on_drop(true)
        .spawn()
        .expect("mariadb client");
    let started = std::time::Instant::now();
    while running("tls_vanish_marker").await == 0 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the statement never ran"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    child.kill().await.unwrap();
    let left = std::time::Instant::now();
    while running("tls_vanish_marker").await > 0 {
        assert!(
            left.elapsed() < std::time::Duration::from_secs(5),
            "the statement still runs on a backend 5 s after its TLS client was killed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// An ed25519 account loaded from the backend: over TLS the client is switched to
/// mysql_clear_password, Sluice checks the password against the stored public key and logs
/// in to the backends with client_ed25519 (a read on a replica and a transaction on the
/// primary run as that account). A wrong password, and the right one without TLS, get ERR
/// 1045 (the latter saying why).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ed25519_accounts_log_in_over_tls() {
    let t = topology();
    for i in 0..3 {
        // INSTALL SONAME is not replicated; the account is, and needs the plugin everywhere
        let r = t
            .sql(
                i,
                "SELECT COUNT(*) AS n FROM information_schema.plugins \
                 WHERE plugin_name = 'ed25519' AND plugin_status = 'ACTIVE'",
            )
            .await
            .unwrap();
        if r.get("n") != Some("1") {
            t.sql(i, "INSTALL SONAME 'auth_ed25519'").await.unwrap();
        }
    }
    let password = "ed pass\"wo'rd";
    t.sql(
        0,
        "CREATE USER IF NOT EXISTS 'edapp'@'127.0.0.1' IDENTIFIED VIA ed25519 \
         USING PASSWORD('ed pass\"wo\\'rd')",
    )
    .await
    .unwrap();
    t.sql(0, "GRANT SELECT ON *.* TO 'edapp'@'127.0.0.1'")
        .await
        .unwrap();
    caught_up().await;
    let mut cfg = config();
    cfg.auth.users = sluice::config::UserSource::Backend;
    let p = proxy(cfg).await;
    let ca = topology().dir.join("tls").join("ca.pem");
    let tls = verified(ca.to_str().unwrap(), "TLSv1.3");
    let tls: Vec<&str> = tls.iter().map(String::as_str).collect();
    let sql = "SELECT CONCAT('user=', CURRENT_USER(), ' read_on=', @@server_id); \
               START TRANSACTION; SELECT CONCAT('tx_on=', @@server_id); COMMIT";
    let (ok, out) = cli_as(&p, "edapp", password, &tls, sql).await;
    assert!(
        ok && out.contains("user=edapp@127.0.0.1"),
        "over TLS: {out}"
    );
    assert!(
        out.contains("read_on=2") || out.contains("read_on=3"),
        "the read on a replica: {out}"
    );
    assert!(
        out.contains("tx_on=1"),
        "the transaction on the primary: {out}"
    );
    let (ok, out) = cli_as(&p, "edapp", "wrong", &tls, sql).await;
    assert!(!ok && out.contains("1045"), "wrong password: {out}");
    let (ok, out) = cli_as(&p, "edapp", password, &["--skip-ssl"], sql).await;
    assert!(
        !ok && out.contains("1045") && out.contains("connect with SSL"),
        "without TLS: {out}"
    );
}
