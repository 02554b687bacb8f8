//! Whether any rule's `pattern` matches a statement, answered per statement in as few
//! instructions as possible (the common answer is "none"). Case-insensitive plain ASCII
//! text patterns are looked for with a skip search (`skip`, statements up to 4 KiB, patterns
//! of 4 bytes or more) or one packed (Teddy, SIMD) search over an ASCII-lowercased copy of
//! the statement; every other pattern is in one alternation regex (plain text with
//! ASCII case folding, `(?i-u)`). Which patterns matched is asked of the `RegexSet` only
//! after a yes. Measured under callgrind for 50 literal patterns on a point select, per
//! statement: the skip search ~80 instructions, the packed search ~130 and its lowercased
//! copy ~80, the alternation ~380, an Aho-Corasick automaton with ASCII case folding ~711.

use aho_corasick::packed;
use std::cell::RefCell;

#[derive(Debug, Default)]
pub struct AnyPattern {
    /// Case-insensitive plain-text patterns, lowercased.
    literals: Option<packed::Searcher>,
    /// The same, for statements up to `SKIP_MAX` bytes (when all are long enough).
    skip: Option<super::skip::SkipSearch>,
    /// The other patterns as one alternation.
    rest: Option<regex::bytes::Regex>,
    /// The alternation could not be built (too large): ask the caller's set.
    pub fallback: bool,
}

fn literal(p: &str) -> bool {
    p.is_ascii() && !p.is_empty() && regex::escape(p) == p
}

/// A `pattern` as every regex of the rules compiles it: case-insensitive unless
/// `case_sensitive`, and for plain ASCII text with ASCII case folding (`(?i-u)`).
pub fn set_form(p: &str, case_sensitive: bool) -> String {
    match (case_sensitive, literal(p)) {
        (true, _) => format!("(?:{p})"),
        (false, true) => format!("(?i-u:{p})"),
        (false, false) => format!("(?i:{p})"),
    }
}

thread_local! {
    /// The lowercased statement (reused: no allocation per statement).
    static LOWER: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

impl AnyPattern {
    /// `patterns`: (pattern, case_sensitive), as the rules give them.
    pub fn new(patterns: &[(&str, bool)]) -> AnyPattern {
        if patterns.is_empty() {
            return AnyPattern::default();
        }
        let (plain, other): (Vec<_>, Vec<_>) =
            patterns.iter().partition(|(p, cs)| !cs && literal(p));
        let lowered: Vec<String> = plain.iter().map(|(p, _)| p.to_ascii_lowercase()).collect();
        let literals = packed::Config::new()
            .builder()
            .extend(&lowered)
            .build()
            .filter(|_| !lowered.is_empty());
        // without a packed searcher (too many or unsuitable literals), all in the regex
        let in_regex: Vec<_> = match literals {
            Some(_) => other,
            None => patterns.to_vec(),
        };
        let rest = (!in_regex.is_empty()).then(|| {
            let forms: Vec<String> = in_regex.iter().map(|(p, cs)| set_form(p, *cs)).collect();
            regex::bytes::RegexBuilder::new(&forms.join("|"))
                .size_limit(64 << 20)
                .build()
                .ok()
        });
        AnyPattern {
            fallback: matches!(rest, Some(None)),
            skip: literals
                .as_ref()
                .and_then(|_| super::skip::SkipSearch::new(&lowered)),
            literals,
            rest: rest.flatten(),
        }
    }

    /// Whether some pattern matches `sql` (meaningless when `fallback`).
    pub fn is_match(&self, sql: &[u8]) -> bool {
        if let Some(s) = &self.literals {
            let found = if let Some(k) = self.skip.as_ref().filter(|_| sql.len() <= SKIP_MAX) {
                k.is_match(sql)
            } else if sql.len() <= ON_STACK {
                let mut buf = [0u8; ON_STACK];
                let lower = &mut buf[..sql.len()];
                lowercase_into(lower, sql);
                s.find(&lower[..]).is_some()
            } else {
                Self::find_lowered(s, sql)
            };
            if found {
                return true;
            }
        }
        self.rest.as_ref().is_some_and(|r| r.is_match(sql))
    }

    /// The packed search over a lowercased copy of a long statement (a reused buffer).
    fn find_lowered(s: &packed::Searcher, sql: &[u8]) -> bool {
        LOWER.with(|cell| match cell.try_borrow_mut() {
            Ok(mut buf) => {
                buf.clear();
                buf.extend_from_slice(sql);
                buf.make_ascii_lowercase();
                let found = s.find(&buf[..]).is_some();
                if buf.capacity() > 64 << 10 {
                    *buf = Vec::new();
                }
                found
            }
            Err(_) => s.find(sql.to_ascii_lowercase()).is_some(),
        })
    }
}

/// Statements up to this long use the skip search when there is one; longer ones the packed
/// search (linear in the text whatever the patterns; the skip search's checks at each
/// window whose last pair ends a pattern are not).
const SKIP_MAX: usize = 4096;

/// Statements up to this long are lowercased into a stack buffer (no thread-local).
const ON_STACK: usize = 256;

/// `dst` = `src` ASCII-lowercased (same lengths; a loop the compiler vectorises).
fn lowercase_into(dst: &mut [u8], src: &[u8]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d = s.to_ascii_lowercase();
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
        // literals only (the packed search alone), and mixed case in the pattern
        let lits = AnyPattern::new(&[("Tenant_7_Secret", false), ("x_y", false)]);
        assert!(lits.literals.is_some() && lits.rest.is_none());
        assert!(lits.is_match(b"select * from tenant_7_SECRET"));
        assert!(lits.is_match(b"X_Y"));
        assert!(!lits.is_match(b"select 1"));
        assert!(!lits.is_match(b""));
        // longer than the stack buffer, the match past its end
        let long = format!("SELECT '{}' FROM TENANT_7_secret", "x".repeat(300));
        assert!(lits.is_match(long.as_bytes()));
        assert!(!lits.is_match(&long.as_bytes()[..300]));
    }
}
