//! Whether any rule's `pattern` matches a statement, answered per statement in as few
//! instructions as possible (the common answer is "none"). Patterns that are plain ASCII text
//! (no regex syntax) go to one Aho-Corasick automaton per case mode; the others to one
//! alternation regex. Which patterns matched is asked of the `RegexSet` only after a yes.

use aho_corasick::AhoCorasick;

#[derive(Debug, Default)]
pub struct AnyPattern {
    /// Literal patterns compared without ASCII case.
    folded: Option<AhoCorasick>,
    /// Literal patterns with `case_sensitive = true`.
    exact: Option<AhoCorasick>,
    /// Every other pattern, as one alternation (`None` if too large: `fallback` answers).
    rest: Option<regex::bytes::Regex>,
    /// Some pattern could not join `rest`: ask the caller's set.
    pub fallback: bool,
}

fn literal(p: &str) -> bool {
    p.is_ascii() && !p.is_empty() && regex::escape(p) == p
}

/// A `pattern` as every regex of the rules compiles it: case-insensitive unless
/// `case_sensitive`, and for plain ASCII text with ASCII case folding (`(?i-u)`), exactly as
/// the Aho-Corasick prefilter compares it.
pub fn set_form(p: &str, case_sensitive: bool) -> String {
    match (case_sensitive, literal(p)) {
        (true, _) => format!("(?:{p})"),
        (false, true) => format!("(?i-u:{p})"),
        (false, false) => format!("(?i:{p})"),
    }
}

impl AnyPattern {
    /// `patterns`: (pattern, case_sensitive), as the rules give them.
    pub fn new(patterns: &[(&str, bool)]) -> AnyPattern {
        let lits = |sensitive: bool| -> Vec<&str> {
            patterns
                .iter()
                .filter(|(p, cs)| *cs == sensitive && literal(p))
                .map(|(p, _)| *p)
                .collect()
        };
        let automaton = |words: Vec<&str>, fold: bool| {
            (!words.is_empty()).then(|| {
                AhoCorasick::builder()
                    .ascii_case_insensitive(fold)
                    .build(words)
                    .ok()
            })?
        };
        let others: Vec<String> = patterns
            .iter()
            .filter(|(p, _)| !literal(p))
            .map(|(p, cs)| set_form(p, *cs))
            .collect();
        let (folded_words, exact_words) = (lits(false), lits(true));
        let (nf, ne) = (folded_words.len(), exact_words.len());
        let folded = automaton(folded_words, true);
        let exact = automaton(exact_words, false);
        let rest = (!others.is_empty())
            .then(|| {
                regex::bytes::RegexBuilder::new(&others.join("|"))
                    .size_limit(64 << 20)
                    .build()
                    .ok()
            })
            .flatten();
        let fallback = (!others.is_empty() && rest.is_none())
            || (nf > 0 && folded.is_none())
            || (ne > 0 && exact.is_none());
        AnyPattern {
            folded,
            exact,
            rest,
            fallback,
        }
    }

    /// Whether some pattern matches `sql` (meaningless when `fallback`).
    pub fn is_match(&self, sql: &[u8]) -> bool {
        self.folded.as_ref().is_some_and(|a| a.is_match(sql))
            || self.exact.as_ref().is_some_and(|a| a.is_match(sql))
            || self.rest.as_ref().is_some_and(|r| r.is_match(sql))
    }
}

#[cfg(test)]
mod tests {
    use super::AnyPattern;

    #[test]
    fn literals_and_regexes_answer_alike() {
        let any = AnyPattern::new(&[
            ("tenant_7_secret", false),
            ("CaseExact", true),
            (r"LIMIT \d{5,}", false),
        ]);
        assert!(!any.fallback);
        assert!(any.is_match(b"select * from TENANT_7_SECRET"));
        assert!(any.is_match(b"x CaseExact y"));
        assert!(!any.is_match(b"x caseexact y"));
        assert!(any.is_match(b"SELECT * FROM t limit 123456"));
        assert!(!any.is_match(b"SELECT c FROM sbtest1 WHERE id=5012"));
    }
}
