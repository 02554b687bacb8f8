//! `[[rules]]`: routing rules as written in the file, and their validation. The compiled
//! form (regexes, group members, counters) is `crate::rules::RuleSet`.

use super::{Config, Dur, Fallback, ReadYourWrites};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// One rule: matches (all given must hold) and actions.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Unique; names the rule in metrics, logs, `/rules` and `EXPLAIN ROUTE`.
    pub name: String,
    /// Regex on the normalised statement (literals as `?`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest_pattern: Option<String>,
    /// Regex on the statement text as sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pattern: Option<String>,
    /// A digest id as `/digests` shows it (16 hex digits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(default)]
    pub case_sensitive: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The session's current database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// The client's address, as a CIDR block (`10.0.0.0/8`) or one address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<RuleKind>,
    /// `primary`, `replica` or `group:NAME`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// When the route's group has no eligible member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<Fallback>,
    /// This rule's reads accept this much lag (instead of `routing.max_replica_lag`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lag: Option<Dur>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_your_writes: Option<ReadYourWrites>,
    /// The client gets this error message; nothing reaches a backend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reject_code: Option<u16>,
    /// Replacement for what `pattern` matched (`$1` for captures).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<String>,
    /// `group:NAME`: a copy of the statement runs there, its result discarded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<String>,
    #[serde(default)]
    pub mirror_writes: bool,
    /// The statement is stopped on the backend after this long (ERR 1969).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Dur>,
    /// Replies to this rule's cacheable reads are kept this long (`[cache]`; invalidated
    /// sooner by writes to the tables they read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_ttl: Option<Dur>,
    /// A hit in the last 10% of its entry's TTL is served and one refresh of the entry runs
    /// beside it on the primary (text statements), so a popular entry does not expire.
    #[serde(default)]
    pub cache_refresh_ahead: bool,
    /// One log line per matching statement (target `sluice::rules`).
    #[serde(default)]
    pub log: bool,
    /// Apply this rule and keep looking (otherwise the first match ends the search).
    #[serde(default, rename = "continue")]
    pub keep_going: bool,
    /// The rule's route wins over a hint in the statement.
    #[serde(default)]
    pub override_hints: bool,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum RuleKind {
    Read,
    Write,
    Ddl,
    Other,
}

/// Where a rule sends statements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteTo {
    Primary,
    Replica,
    Group(String),
}

impl RouteTo {
    pub fn parse(s: &str) -> Option<RouteTo> {
        match s {
            "primary" => Some(RouteTo::Primary),
            "replica" => Some(RouteTo::Replica),
            _ => s
                .strip_prefix("group:")
                .filter(|g| !g.is_empty())
                .map(|g| RouteTo::Group(g.to_string())),
        }
    }
}

/// The groups backends name (`[[backends]] groups`).
pub fn group_names(cfg: &Config) -> HashSet<&str> {
    cfg.backends
        .iter()
        .flat_map(|b| b.groups.iter().map(String::as_str))
        .collect()
}

/// A regex as a rule compiles it.
pub fn regex(pattern: &str, case_sensitive: bool) -> Result<regex::Regex, regex::Error> {
    regex::RegexBuilder::new(pattern)
        .case_insensitive(!case_sensitive)
        .size_limit(1 << 20)
        .build()
}

/// Reports one problem: key and message.
type Bad<'a> = dyn FnMut(String, &str) + 'a;

/// Every problem of `[[rules]]` (and of backend group names).
pub fn check(cfg: &Config, bad: &mut Bad<'_>) {
    for (i, b) in cfg.backends.iter().enumerate() {
        for g in &b.groups {
            if !valid_name(g) {
                bad(
                    format!("backends[{i}].groups"),
                    "a group name is letters, digits, '_' and '-'",
                );
            }
        }
    }
    let groups = group_names(cfg);
    let mut names = HashSet::new();
    for (i, r) in cfg.rules.iter().enumerate() {
        let key = |k: &str| format!("rules[{i}].{k}");
        if r.name.trim().is_empty() {
            bad(key("name"), "every rule needs a name");
        } else if !names.insert(r.name.as_str()) {
            bad(key("name"), &format!("duplicate rule name {:?}", r.name));
        }
        matches(r, &key, bad);
        actions(r, &groups, &key, bad);
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-')
}

fn matches(r: &Rule, key: &dyn Fn(&str) -> String, bad: &mut Bad<'_>) {
    for (k, p) in [
        ("digest_pattern", &r.digest_pattern),
        ("pattern", &r.pattern),
    ] {
        if let Some(p) = p {
            if let Err(e) = regex(p, r.case_sensitive) {
                let first = e.to_string().lines().last().unwrap_or("").to_string();
                bad(key(k), &format!("not a valid regex: {first}"));
            }
        }
    }
    if let Some(d) = &r.digest {
        if d.len() != 16 || u64::from_str_radix(d, 16).is_err() {
            bad(key("digest"), "must be 16 hex digits, as /digests shows it");
        }
    }
    if let Some(c) = &r.client {
        if parse_client(c).is_none() {
            bad(
                key("client"),
                "must be an address or a CIDR block such as \"10.0.0.0/8\"",
            );
        }
    }
}

/// An address or CIDR block.
pub fn parse_client(s: &str) -> Option<ipnet::IpNet> {
    s.parse::<ipnet::IpNet>()
        .ok()
        .or_else(|| s.parse::<std::net::IpAddr>().ok().map(ipnet::IpNet::from))
}

fn actions(r: &Rule, groups: &HashSet<&str>, key: &dyn Fn(&str) -> String, bad: &mut Bad<'_>) {
    let unknown = |g: &str| format!("unknown group {g:?}: no [[backends]] lists it in groups");
    match r.route.as_deref().map(|s| (s, RouteTo::parse(s))) {
        Some((_, None)) => bad(
            key("route"),
            "must be \"primary\", \"replica\" or \"group:NAME\"",
        ),
        Some((_, Some(RouteTo::Group(g)))) if !groups.contains(g.as_str()) => {
            bad(key("route"), &unknown(&g))
        }
        _ => {}
    }
    if let Some(m) = &r.mirror {
        match m.strip_prefix("group:") {
            Some(g) if !g.is_empty() && !groups.contains(g) => bad(key("mirror"), &unknown(g)),
            Some(g) if !g.is_empty() => {}
            _ => bad(key("mirror"), "must be \"group:NAME\""),
        }
    }
    if r.rewrite.is_some() && r.pattern.is_none() {
        bad(
            key("rewrite"),
            "needs `pattern` (the part of the statement it replaces)",
        );
    }
    if r.reject_code.is_some() && r.reject.is_none() {
        bad(key("reject_code"), "needs `reject` (the message)");
    }
    if let Some(c) = r.reject_code {
        if !(1000..2000).contains(&c) && !(3000..5000).contains(&c) {
            bad(
                key("reject_code"),
                "must be a server error code (1000-1999 or 3000-4999); 2000-2999 are client-library codes",
            );
        }
    }
    if r.timeout
        .is_some_and(|t| t.0 < std::time::Duration::from_millis(1))
    {
        bad(key("timeout"), "must be at least 1ms");
    }
    if r.cache_ttl
        .is_some_and(|t| t.0 < std::time::Duration::from_millis(1))
    {
        bad(key("cache_ttl"), "must be at least 1ms");
    }
    if r.cache_refresh_ahead && r.cache_ttl.is_none() {
        bad(key("cache_refresh_ahead"), "needs `cache_ttl`");
    }
    if r.fallback.is_some() && r.route.is_none() {
        bad(key("fallback"), "needs `route`");
    }
}

/// Warnings: rules that can never match (an earlier rule without `continue` has the same
/// matches).
pub fn unreachable(cfg: &Config) -> Vec<String> {
    let mut out = Vec::new();
    for (i, r) in cfg.rules.iter().enumerate() {
        if let Some(earlier) = cfg.rules[..i]
            .iter()
            .find(|e| !e.keep_going && e.reject.is_none() && same_matches(e, r))
            .or_else(|| {
                cfg.rules[..i]
                    .iter()
                    .find(|e| e.reject.is_some() && same_matches(e, r))
            })
        {
            out.push(format!(
                "rules[{i}] {:?} can never match: rule {:?} before it has the same matches and ends the search",
                r.name, earlier.name
            ));
        }
    }
    out
}

/// Rule changes by name: `+ rule a`, `- rule b`, `~ rule c: key, key`, and a moved order.
pub fn changes(old: &[Rule], new: &[Rule]) -> Vec<String> {
    let mut out = Vec::new();
    let find = |list: &'_ [Rule], name: &str| list.iter().position(|r| r.name == name);
    for r in new {
        match find(old, &r.name) {
            None => out.push(format!("+ rule {}", r.name)),
            Some(i) if old[i] != *r => {
                let keys = changed_keys(&old[i], r);
                out.push(format!("~ rule {}: {}", r.name, keys.join(", ")));
            }
            Some(_) => {}
        }
    }
    for r in old {
        if find(new, &r.name).is_none() {
            out.push(format!("- rule {}", r.name));
        }
    }
    let common = |a: &[Rule], b: &[Rule]| -> Vec<String> {
        a.iter()
            .filter(|r| find(b, &r.name).is_some())
            .map(|r| r.name.clone())
            .collect()
    };
    if common(old, new) != common(new, old) {
        out.push(format!(
            "rules order: {}",
            new.iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    out
}

fn changed_keys(a: &Rule, b: &Rule) -> Vec<String> {
    let (Ok(serde_json::Value::Object(x)), Ok(serde_json::Value::Object(y))) =
        (serde_json::to_value(a), serde_json::to_value(b))
    else {
        return vec!["?".into()];
    };
    let mut keys: Vec<String> = x
        .keys()
        .chain(y.keys())
        .filter(|k| x.get(*k) != y.get(*k))
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

fn same_matches(a: &Rule, b: &Rule) -> bool {
    a.digest_pattern == b.digest_pattern
        && a.pattern == b.pattern
        && a.digest == b.digest
        && a.case_sensitive == b.case_sensitive
        && a.user == b.user
        && a.schema == b.schema
        && a.client == b.client
        && a.kind == b.kind
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(rules: &str) -> Config {
        let text = format!(
            "[listen]\naddress='127.0.0.1:1'\n[admin]\naddress='127.0.0.1:2'\n[[users]]\nname='a'\npassword='b'\n\
             [[backends]]\nname='p'\naddress='127.0.0.1:3'\nrole='primary'\n\
             [[backends]]\nname='r'\naddress='127.0.0.1:4'\nrole='replica'\ngroups=['reporting']\n{rules}"
        );
        toml::from_str(&text).unwrap()
    }

    fn problems(rules: &str) -> Vec<String> {
        let c = cfg(rules);
        let mut out = Vec::new();
        check(&c, &mut |k, m| out.push(format!("{k}: {m}")));
        out
    }

    #[test]
    fn bad_regex_unknown_group_and_duplicate_name_are_reported_with_their_key() {
        let p = problems(
            "[[rules]]\nname='a'\npattern='(unclosed'\n\
             [[rules]]\nname='a'\nroute='group:nope'\n\
             [[rules]]\nname='b'\nrewrite='x'\nmirror='reporting'\nreject_code=2013\n",
        );
        let has = |k: &str, m: &str| p.iter().any(|x| x.starts_with(k) && x.contains(m));
        assert!(has("rules[0].pattern", "not a valid regex"), "{p:?}");
        assert!(has("rules[1].name", "duplicate rule name"), "{p:?}");
        assert!(has("rules[1].route", "unknown group \"nope\""), "{p:?}");
        assert!(has("rules[2].rewrite", "needs `pattern`"), "{p:?}");
        assert!(has("rules[2].mirror", "group:NAME"), "{p:?}");
        assert!(has("rules[2].reject_code", "server error code"), "{p:?}");
        assert!(problems("[[rules]]\nname='ok'\nroute='group:reporting'\ndigest_pattern='^SELECT'\nclient='10.0.0.0/8'\n").is_empty());
    }

    #[test]
    fn changes_are_named_by_rule() {
        let old = cfg("[[rules]]\nname='a'\nuser='x'\n[[rules]]\nname='b'\nlog=true\n");
        let new = cfg("[[rules]]\nname='b'\nlog=false\n[[rules]]\nname='c'\nkind='read'\n");
        let c = changes(&old.rules, &new.rules);
        assert_eq!(c, ["~ rule b: log", "+ rule c", "- rule a"], "{c:?}");
        let swapped = cfg("[[rules]]\nname='b'\nlog=true\n[[rules]]\nname='a'\nuser='x'\n");
        assert_eq!(changes(&old.rules, &swapped.rules), ["rules order: b, a"]);
    }

    #[test]
    fn a_rule_shadowed_by_an_earlier_one_is_reported() {
        let c = cfg("[[rules]]\nname='a'\nuser='x'\nroute='primary'\n\
             [[rules]]\nname='b'\nuser='x'\nlog=true\n\
             [[rules]]\nname='c'\nuser='y'\n");
        let w = unreachable(&c);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("\"b\"") && w[0].contains("\"a\""), "{w:?}");
    }
}
