//! Accounts loaded from the backend (`[auth] users = "backend"`): user, host pattern and
//! stored mysql_native_password hash from `mysql.user` on the primary, read with the monitor
//! credentials. Refreshed on an interval and when an unknown user tries to log in (at most once
//! per `MIN_REFRESH_GAP`, so random user names cannot hammer the primary).

use crate::backend::{BackendConn, ConnectOpts};
use crate::password::native::{self, Hash};
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const MIN_REFRESH_GAP: Duration = Duration::from_secs(1);

/// What an account's secret is.
#[derive(Debug, Clone, PartialEq)]
pub enum Secret {
    /// SHA1(SHA1(password)) (mysql_native_password).
    NativeHash(Hash),
    /// caching_sha2_password's stored form (MySQL 8).
    Sha2(crate::password::sha2crypt::Sha2Crypt),
    /// MariaDB's ed25519 public key (verified from the password sent in the clear over TLS).
    Ed25519(crate::password::ed25519::PublicKey),
    /// No password.
    Empty,
    /// An authentication plugin Sluice cannot verify (unix_socket, PAM, GSSAPI...).
    Unsupported(String),
}

#[derive(Debug, Clone)]
struct Account {
    host: String,
    secret: Secret,
}

/// Opens a connection to the current primary with the monitor credentials.
pub type Opener = Box<dyn Fn() -> Option<ConnectOpts> + Send + Sync>;

#[derive(Default)]
pub struct AccountStore {
    accounts: ArcSwap<HashMap<String, Vec<Account>>>,
    last_refresh: parking_lot::Mutex<Option<Instant>>,
    refreshing: tokio::sync::Mutex<()>,
    pub opener: OnceLock<Opener>,
}

impl AccountStore {
    /// The secret of `user` connecting from `host`, refreshing once if the user is unknown.
    pub async fn lookup(&self, user: &str, host: &str) -> Option<Secret> {
        if self.knows(user) {
            return self.find(user, host);
        }
        // an unknown user waits for the next allowed refresh (at most MIN_REFRESH_GAP)
        let since = self.last_refresh.lock().map(|t| t.elapsed());
        if let Some(since) = since.filter(|s| *s < MIN_REFRESH_GAP) {
            crate::timer::sleep(MIN_REFRESH_GAP - since).await;
        }
        if let Err(e) = self.refresh_older_than(MIN_REFRESH_GAP).await {
            tracing::warn!(error = %e, "cannot load accounts from the primary");
        }
        self.find(user, host)
    }

    /// Reloads the accounts unless another task did within `age`.
    async fn refresh_older_than(&self, age: Duration) -> Result<usize, String> {
        let _one = self.refreshing.lock().await;
        if self.last_refresh.lock().is_some_and(|t| t.elapsed() < age) {
            return Ok(0);
        }
        self.load().await
    }

    /// Whether an account is named `user` (anonymous ones aside).
    fn knows(&self, user: &str) -> bool {
        self.accounts.load().contains_key(user)
    }

    /// The account a server would log `user` from `host` in as: the most specific host
    /// pattern first (exact, then fewer wildcards, then longer), then a named account
    /// before an anonymous one (`''@'host'`), as MySQL and MariaDB sort `mysql.user`. So an
    /// anonymous account on a more specific host wins over a named one on `%`, as it does
    /// on the server.
    fn find(&self, user: &str, host: &str) -> Option<Secret> {
        let all = self.accounts.load();
        let named = all.get(user).into_iter().flatten().map(|a| (a, false));
        let anonymous = all.get("").into_iter().flatten().map(|a| (a, true));
        let mut matching: Vec<(&Account, bool)> = named
            .chain(anonymous)
            .filter(|(a, _)| host_matches(&a.host, host))
            .collect();
        matching.sort_by_key(|(a, anonymous)| {
            let wild = a.host.chars().filter(|c| *c == '%' || *c == '_').count();
            (wild, usize::MAX - a.host.len(), *anonymous)
        });
        matching.first().map(|(a, _)| a.secret.clone())
    }

    /// Reloads every account from the primary.
    pub async fn refresh(&self) -> Result<usize, String> {
        let _one = self.refreshing.lock().await;
        self.load().await
    }

    async fn load(&self) -> Result<usize, String> {
        *self.last_refresh.lock() = Some(Instant::now());
        let opts = self
            .opener
            .get()
            .and_then(|o| o())
            .ok_or("no [monitor] credentials to read mysql.user with")?;
        let mut c = BackendConn::connect(&opts)
            .await
            .map_err(|e| e.to_string())?;
        let r = c
            .query("SELECT User, Host, plugin, authentication_string FROM mysql.user")
            .await
            .map_err(|e| e.to_string())?;
        let mut map: HashMap<String, Vec<Account>> = HashMap::new();
        for row in &r.rows {
            let cell = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
            let (user, host, plugin, auth) = (cell(0), cell(1), cell(2), cell(3));
            let secret = match plugin.as_str() {
                "" | "mysql_native_password" if auth.is_empty() => Secret::Empty,
                "" | "mysql_native_password" => match native::parse_stored(&auth) {
                    Some(h) => Secret::NativeHash(h),
                    None => Secret::Unsupported(plugin.clone()),
                },
                "caching_sha2_password" => {
                    match crate::password::sha2crypt::Sha2Crypt::parse(auth.as_bytes()) {
                        Some(c) => Secret::Sha2(c),
                        None if auth.is_empty() => Secret::Empty,
                        None => Secret::Unsupported(plugin.clone()),
                    }
                }
                "ed25519" => match crate::password::ed25519::PublicKey::parse(&auth) {
                    Some(k) => Secret::Ed25519(k),
                    None => Secret::Unsupported(plugin.clone()),
                },
                other => Secret::Unsupported(other.to_string()),
            };
            map.entry(user).or_default().push(Account { host, secret });
        }
        let n = map.values().map(Vec::len).sum();
        self.accounts.store(std::sync::Arc::new(map));
        Ok(n)
    }
}

/// MySQL host pattern match (`%` any run, `_` one character, case-insensitive); `localhost`
/// also matches loopback addresses (clients reach Sluice over TCP).
pub fn host_matches(pattern: &str, host: &str) -> bool {
    if pattern.eq_ignore_ascii_case("localhost") {
        return host == "127.0.0.1" || host == "::1" || host.eq_ignore_ascii_case("localhost");
    }
    fn m(p: &[u8], h: &[u8]) -> bool {
        match p.split_first() {
            None => h.is_empty(),
            Some((b'%', rest)) => (0..=h.len()).any(|i| m(rest, &h[i..])),
            Some((b'_', rest)) => !h.is_empty() && m(rest, &h[1..]),
            Some((c, rest)) => {
                h.first().is_some_and(|x| x.eq_ignore_ascii_case(c)) && m(rest, &h[1..])
            }
        }
    }
    m(pattern.as_bytes(), host.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_patterns() {
        assert!(host_matches("%", "10.1.2.3"));
        assert!(host_matches("10.%", "10.1.2.3"));
        assert!(!host_matches("10.%", "110.1.2.3"));
        assert!(host_matches("10.1.2._", "10.1.2.3"));
        assert!(!host_matches("10.1.2._", "10.1.2.33"));
        assert!(host_matches("127.0.0.1", "127.0.0.1"));
        assert!(host_matches("localhost", "127.0.0.1"));
        assert!(!host_matches("localhost", "10.0.0.1"));
    }

    #[test]
    fn most_specific_host_wins() {
        let s = AccountStore::default();
        let mut m = HashMap::new();
        m.insert(
            "u".to_string(),
            vec![
                Account {
                    host: "%".into(),
                    secret: Secret::Empty,
                },
                Account {
                    host: "127.0.0.1".into(),
                    secret: Secret::NativeHash([1; 20]),
                },
            ],
        );
        s.accounts.store(std::sync::Arc::new(m));
        assert_eq!(s.find("u", "127.0.0.1"), Some(Secret::NativeHash([1; 20])));
        assert_eq!(s.find("u", "10.0.0.9"), Some(Secret::Empty));
        assert_eq!(s.find("v", "10.0.0.9"), None);
    }

    #[test]
    fn anonymous_accounts_match_as_on_the_server() {
        let s = AccountStore::default();
        let acct = |host: &str, b: u8| Account {
            host: host.into(),
            secret: Secret::NativeHash([b; 20]),
        };
        let mut m = HashMap::new();
        m.insert("u".to_string(), vec![acct("%", 1), acct("10.0.0.5", 2)]);
        m.insert(
            "".to_string(),
            vec![acct("127.0.0.1", 3), acct("10.0.0.5", 4)],
        );
        s.accounts.store(std::sync::Arc::new(m));
        // a more specific host wins, anonymous or not (the ''@'localhost' surprise)
        assert_eq!(s.find("u", "127.0.0.1"), Some(Secret::NativeHash([3; 20])));
        // the same host: the named account first
        assert_eq!(s.find("u", "10.0.0.5"), Some(Secret::NativeHash([2; 20])));
        assert_eq!(s.find("u", "10.9.9.9"), Some(Secret::NativeHash([1; 20])));
        // an unknown user is the anonymous account of its host, or nobody
        assert_eq!(
            s.find("who", "127.0.0.1"),
            Some(Secret::NativeHash([3; 20]))
        );
        assert_eq!(s.find("who", "10.9.9.9"), None);
        assert!(s.knows("u") && !s.knows("who"));
    }
}
