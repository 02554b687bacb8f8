//! Which rules a statement matches, in file order.

use super::{cache, kind_of, Route, RuleSet};
use crate::router::Intent;
use std::net::IpAddr;

/// A statement as the rules see it.
pub struct Subject<'a> {
    pub sql: &'a [u8],
    pub intent: &'a Intent,
    /// The statement's shape id on this thread (`Classifier::classify_shaped`; 0: none).
    pub shape: u64,
    pub user: &'a str,
    pub schema: Option<&'a str>,
    pub client: Option<IpAddr>,
}

/// The rules a statement matched (indices into `RuleSet::rules`, in order).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub matched: Vec<u16>,
}

/// Longest normalised text `digest_pattern` sees.
const MAX_NORMALIZED: usize = 64 << 10;

impl RuleSet {
    /// The rules `s` matches; `None` when it matches none (nothing allocated).
    pub fn evaluate(&self, s: &Subject<'_>) -> Option<Outcome> {
        if self.rules.is_empty() {
            return None;
        }
        cache::with_candidates(
            (self.version, s.shape),
            || self.shape_candidates(s.sql, s.intent),
            |candidates| self.walk(candidates, s),
        )
    }

    /// Rules whose shape-only matches hold for `sql`.
    fn shape_candidates(&self, sql: &[u8], intent: &Intent) -> cache::Candidates {
        let ddl = intent.kind == crate::router::Kind::Write
            && crate::router::first_word(sql).is_some_and(is_ddl_word);
        let kind = kind_of(intent.kind, ddl);
        let hits = self.has_digest_patterns.then(|| {
            self.digest_set
                .matches(&crate::router::normalized(sql, MAX_NORMALIZED))
        });
        let mut out = Vec::new();
        for (i, r) in self.rules.iter().enumerate() {
            let ok = r.digest.is_none_or(|d| d == intent.digest)
                && r.kind.is_none_or(|k| k == kind)
                && r.digest_pattern
                    .is_none_or(|p| hits.as_ref().is_some_and(|h| h.matched(p)));
            if ok {
                out.push(i as u16);
            }
        }
        let plain = out
            .iter()
            .copied()
            .filter(|&i| self.rules[i as usize].pattern.is_none())
            .collect();
        cache::Candidates {
            all: out.into_boxed_slice(),
            plain,
        }
    }

    /// Whether any `pattern` matches `sql`, with the matches when one does.
    fn pattern_matches(&self, sql: &[u8]) -> Option<regex::bytes::SetMatches> {
        let any = if self.any_pattern.fallback {
            self.pattern_set.is_match(sql)
        } else {
            self.any_pattern.is_match(sql)
        };
        any.then(|| self.pattern_set.matches(sql))
    }

    fn walk(&self, c: &cache::Candidates, s: &Subject<'_>) -> Option<Outcome> {
        let mut patterns = None;
        let candidates = if c.plain.len() == c.all.len() {
            &c.plain
        } else {
            patterns = self.pattern_matches(s.sql);
            if patterns.is_some() {
                &c.all
            } else {
                &c.plain // no pattern matches: only the rules without one can
            }
        };
        let mut out: Option<Outcome> = None;
        for &i in candidates.iter() {
            let r = &self.rules[i as usize];
            if r.user.as_deref().is_some_and(|u| u != s.user)
                || r.schema.as_deref().is_some_and(|d| Some(d) != s.schema)
                || r.client
                    .is_some_and(|net| !s.client.is_some_and(|ip| net.contains(&ip)))
            {
                continue;
            }
            if let Some(p) = r.pattern {
                if !patterns.as_ref().is_some_and(|h| h.matched(p)) {
                    continue;
                }
            }
            out.get_or_insert_with(Outcome::default).matched.push(i);
            if r.actions.reject.is_some() || !r.actions.keep_going {
                break;
            }
        }
        out
    }

    /// `sql` with every matched rule's `rewrite` applied in order (`None`: no rewrite),
    /// counted.
    pub fn rewrite(&self, outcome: &Outcome, sql: &[u8]) -> Option<Vec<u8>> {
        self.rewrite_counted(outcome, sql, true)
    }

    /// `rewrite` without counting (`EXPLAIN ROUTE`).
    pub fn rewrite_quiet(&self, outcome: &Outcome, sql: &[u8]) -> Option<Vec<u8>> {
        self.rewrite_counted(outcome, sql, false)
    }

    fn rewrite_counted(&self, outcome: &Outcome, sql: &[u8], count: bool) -> Option<Vec<u8>> {
        let mut cur: Option<Vec<u8>> = None;
        for &i in &outcome.matched {
            let r = &self.rules[i as usize];
            if let (Some(re), Some(with)) = (&r.pattern_regex, &r.actions.rewrite) {
                let now = cur.as_deref().unwrap_or(sql);
                let next = re.replace_all(now, with.as_bytes()).into_owned();
                cur = Some(next);
                if count {
                    r.counters.rewrites.inc();
                }
            }
        }
        cur
    }

    /// The route of the last matched rule that has one, with that rule.
    pub fn route(&self, outcome: &Outcome) -> Option<(Route, &super::Rule)> {
        outcome.matched.iter().rev().find_map(|&i| {
            let r = &self.rules[i as usize];
            r.actions.route.map(|route| (route, r))
        })
    }

    /// The last matched rule's value of one action.
    pub fn last<'s, T>(
        &'s self,
        outcome: &Outcome,
        pick: impl Fn(&'s super::Rule) -> Option<T>,
    ) -> Option<(T, &'s super::Rule)> {
        outcome.matched.iter().rev().find_map(|&i| {
            let r = &self.rules[i as usize];
            pick(r).map(|v| (v, r))
        })
    }
}

fn is_ddl_word(w: &[u8]) -> bool {
    ["CREATE", "ALTER", "DROP", "TRUNCATE", "RENAME"]
        .iter()
        .any(|k| w.eq_ignore_ascii_case(k.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn set(rules: &str) -> RuleSet {
        let text = format!(
            "[listen]\naddress='127.0.0.1:1'\n[admin]\naddress='127.0.0.1:2'\n[[users]]\nname='a'\npassword='b'\n\
             [[backends]]\nname='p'\naddress='127.0.0.1:3'\nrole='primary'\n\
             [[backends]]\nname='r'\naddress='127.0.0.1:4'\nrole='replica'\ngroups=['reporting']\n{rules}"
        );
        let cfg = Config::parse(&text, "t").unwrap();
        let m = crate::metrics::Metrics::new(&["p".into(), "r".into()]);
        RuleSet::compile(&cfg, |n| ["p", "r"].iter().position(|x| *x == n), &m).unwrap()
    }

    fn names(rs: &RuleSet, sql: &str, user: &str, schema: Option<&str>) -> Vec<String> {
        let c = crate::router::Classifier::new();
        let (intent, shape) = c.classify_shaped(sql.as_bytes());
        let s = Subject {
            sql: sql.as_bytes(),
            intent: &intent,
            shape,
            user,
            schema,
            client: Some("10.1.2.3".parse().unwrap()),
        };
        rs.evaluate(&s)
            .map(|o| {
                o.matched
                    .iter()
                    .map(|&i| rs.rules[i as usize].name.to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn first_match_wins_unless_continue() {
        let rs = set("[[rules]]\nname='log'\nkind='read'\nlog=true\ncontinue=true\n\
             [[rules]]\nname='reports'\ndigest_pattern='^SELECT .* FROM sales'\nroute='group:reporting'\n\
             [[rules]]\nname='never'\ndigest_pattern='sales'\nroute='primary'\n\
             [[rules]]\nname='ddl'\nkind='ddl'\nreject='no DDL here'\n");
        for _ in 0..2 {
            // second round: from the shape cache
            assert_eq!(
                names(
                    &rs,
                    "SELECT sum(x) FROM sales WHERE d > '2026-01-01'",
                    "a",
                    None
                ),
                ["log", "reports"]
            );
        }
        assert_eq!(names(&rs, "SELECT 1", "a", None), ["log"]);
        assert_eq!(names(&rs, "DROP TABLE t", "a", None), ["ddl"]);
        assert!(names(&rs, "INSERT INTO sales VALUES (1)", "a", None) == ["never"]);
    }

    #[test]
    fn per_statement_matches() {
        let rs = set(
            "[[rules]]\nname='tenant'\nschema='t1'\nuser='a'\nroute='primary'\n\
             [[rules]]\nname='net'\nclient='192.168.0.0/16'\nroute='primary'\n\
             [[rules]]\nname='big'\npattern='LIMIT [0-9]{5,}'\nreject='too big'\n\
             [[rules]]\nname='CaSe'\npattern='Select'\ncase_sensitive=true\nroute='primary'\n",
        );
        assert_eq!(names(&rs, "SELECT 1", "a", Some("t1")), ["tenant"]);
        assert!(names(&rs, "SELECT 1", "b", Some("t1")).is_empty());
        assert_eq!(
            names(&rs, "SELECT * FROM t LIMIT 100000", "a", None),
            ["big"]
        );
        assert!(names(&rs, "SELECT * FROM t LIMIT 1000", "a", None).is_empty());
        assert_eq!(names(&rs, "Select 1", "a", None), ["CaSe"]);
    }

    /// The README's recipe: an earlier rule without actions lets UPDATE/DELETE with a WHERE
    /// through (first match ends the search), the next one rejects the rest.
    #[test]
    fn recipe_block_update_and_delete_without_where() {
        let rs = set("[[rules]]\nname='with-where'\nkind='write'\ndigest_pattern='^(UPDATE|DELETE)\\b.*\\bWHERE\\b'\n\
             [[rules]]\nname='no-unbounded-writes'\nkind='write'\ndigest_pattern='^(UPDATE|DELETE)\\b'\nreject='UPDATE and DELETE need a WHERE clause'\n");
        for ok in [
            "UPDATE t SET a = 1 WHERE id = 5",
            "delete from t where id in (1, 2)",
            "INSERT INTO t VALUES (1)",
        ] {
            let n = names(&rs, ok, "a", None);
            assert!(n.is_empty() || n == ["with-where"], "{ok}: {n:?}");
        }
        for bad in [
            "UPDATE t SET a = 1",
            "DELETE FROM t",
            "delete   from t -- WHERE id = 1",
        ] {
            assert_eq!(names(&rs, bad, "a", None), ["no-unbounded-writes"], "{bad}");
        }
    }

    #[test]
    fn rewrite_replaces_with_captures() {
        let rs = set("[[rules]]\nname='rw'\npattern='FROM old_(\\w+)'\nrewrite='FROM new_$1'\n");
        let sql = b"SELECT * FROM old_orders WHERE id = 1";
        let o = Outcome { matched: vec![0] };
        assert_eq!(
            rs.rewrite(&o, sql).as_deref(),
            Some(&b"SELECT * FROM new_orders WHERE id = 1"[..])
        );
    }
}
