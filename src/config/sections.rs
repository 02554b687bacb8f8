//! Every problem of a file in one run: when the file does not deserialize as a whole, each
//! section (and each entry of an array of tables) is tried on its own, and what did parse is
//! validated, so that a typo in one key does not hide a missing primary elsewhere.

use super::rules::Rule;
use super::{
    validate, Admin, Auth, Backend, BackendTls, Config, Failover, Listen, Log, Monitor, Pool,
    Problem, Routing, Stats, Tls, User,
};
use serde::de::DeserializeOwned;
use serde::Deserialize;

/// Sections a file must have.
const REQUIRED: [&str; 3] = ["listen", "admin", "backends"];

fn one<T: DeserializeOwned>(key: &str, v: &toml::Value, out: &mut Vec<Problem>) -> bool {
    match T::deserialize(v.clone()) {
        Ok(_) => true,
        Err(e) => {
            out.push(Problem {
                key: key.into(),
                message: e.message().trim().to_string(),
            });
            false
        }
    }
}

/// Each entry of an array of tables; `true` when all parse.
fn each<T: DeserializeOwned>(key: &str, v: &toml::Value, out: &mut Vec<Problem>) -> bool {
    match v.as_array() {
        Some(items) => items.iter().enumerate().fold(true, |ok, (i, item)| {
            one::<T>(&format!("{key}[{i}]"), item, out) && ok
        }),
        None => one::<Vec<T>>(key, v, out),
    }
}

fn section(key: &str, v: &toml::Value, out: &mut Vec<Problem>) -> bool {
    match key {
        "listen" => one::<Listen>(key, v, out),
        "admin" => one::<Admin>(key, v, out),
        "users" => each::<User>(key, v, out),
        "auth" => one::<Auth>(key, v, out),
        "tls" => one::<Tls>(key, v, out),
        "backend_tls" => one::<BackendTls>(key, v, out),
        "backends" => each::<Backend>(key, v, out),
        "pool" => one::<Pool>(key, v, out),
        "routing" => one::<Routing>(key, v, out),
        "monitor" => one::<Monitor>(key, v, out),
        "failover" => one::<Failover>(key, v, out),
        "stats" => one::<Stats>(key, v, out),
        "log" => one::<Log>(key, v, out),
        "rules" => each::<Rule>(key, v, out),
        other => {
            out.push(Problem {
                key: other.into(),
                message: "unknown section".into(),
            });
            false
        }
    }
}

/// The problems of `text`, a file that failed to deserialize whole; `None` when it is not
/// TOML at all (the parser's own error says where).
pub fn problems(text: &str) -> Option<Vec<Problem>> {
    let table: toml::Table = toml::from_str(text).ok()?;
    let mut out = Vec::new();
    let mut fixed = table.clone();
    let mut failed = Vec::new();
    for (key, v) in &table {
        if !section(key, v, &mut out) {
            failed.push(key.clone());
            fixed.remove(key);
        }
    }
    for key in REQUIRED {
        if !table.contains_key(key) {
            out.push(Problem {
                key: key.into(),
                message: format!("missing section [{key}]"),
            });
        }
    }
    if REQUIRED.iter().all(|k| fixed.contains_key(*k)) {
        if let Ok(cfg) = Config::deserialize(toml::Value::Table(fixed)) {
            let unsure = |p: &Problem| {
                failed.iter().any(|f| p.key.starts_with(f.as_str()))
                    || (failed.iter().any(|f| f == "backends") && p.key.starts_with("rules"))
            };
            out.extend(validate(&cfg).into_iter().filter(|p| !unsure(p)));
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_key_typo_does_not_hide_the_other_problems() {
        let text =
            "[listen]\naddress = \"127.0.0.1:6033\"\n[admin]\naddress = \"127.0.0.1:9033\"\n\
            [[users]]\nname = \"app\"\npassword = \"x\"\n\
            [pool]\nmax_conections_per_backend = 3\n\
            [routing]\nmax_replica_lag = \"-1s\"\n\
            [[backends]]\nname = \"db0\"\naddress = \"nowhere\"\nrole = \"replica\"\n";
        let err = super::super::Config::parse(text, "x.toml")
            .unwrap_err()
            .to_string();
        for want in [
            "pool: unknown field `max_conections_per_backend`",
            "routing: invalid duration \"-1s\": durations cannot be negative",
            "backends[0].address",
            "primary",
        ] {
            assert!(err.contains(want), "{want} not in:\n{err}");
        }
    }
}
