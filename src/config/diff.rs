//! Differences between two configurations, as flattened key paths (for `sluice check
//! --diff-with`). Secrets are redacted on both sides before comparing.

use serde_json::Value;
use std::collections::BTreeMap;

fn flatten(prefix: String, v: &Value, out: &mut BTreeMap<String, String>) {
    match v {
        Value::Object(m) => {
            for (k, val) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(key, val, out);
            }
        }
        Value::Array(a) => {
            for (i, val) in a.iter().enumerate() {
                flatten(format!("{prefix}[{i}]"), val, out);
            }
        }
        other => {
            out.insert(prefix, other.to_string());
        }
    }
}

/// Replaces every value under a key containing "password" or named "token" with "***".
pub fn redact(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, val) in m.iter_mut() {
                if k.contains("password") || k == "token" {
                    *val = Value::String("***".into());
                } else {
                    redact(val);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(redact),
        _ => {}
    }
}

/// Lines describing how `new` differs from `running`: `+ key = v`, `- key = v`,
/// `~ key: old -> new`.
pub fn diff(running: &Value, new: &Value) -> Vec<String> {
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    let (mut r, mut n) = (running.clone(), new.clone());
    redact(&mut r);
    redact(&mut n);
    flatten(String::new(), &r, &mut a);
    flatten(String::new(), &n, &mut b);
    let mut out = Vec::new();
    for (k, v) in &b {
        match a.get(k) {
            None => out.push(format!("+ {k} = {v}")),
            Some(old) if old != v => out.push(format!("~ {k}: {old} -> {v}")),
            _ => {}
        }
    }
    for (k, v) in &a {
        if !b.contains_key(k) {
            out.push(format!("- {k} = {v}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reports_changes_and_hides_secrets() {
        let running = json!({"backends": [{"name": "db1", "weight": 1}], "users": [{"name": "app", "password": "x"}]});
        let new = json!({"backends": [{"name": "db1", "weight": 0}, {"name": "db2", "weight": 1}], "users": [{"name": "app", "password": "y"}]});
        let d = diff(&running, &new);
        assert!(
            d.contains(&"~ backends[0].weight: 1 -> 0".to_string()),
            "{d:?}"
        );
        assert!(
            d.contains(&"+ backends[1].name = \"db2\"".to_string()),
            "{d:?}"
        );
        assert!(!d.iter().any(|l| l.contains("password")), "{d:?}");
    }
}
