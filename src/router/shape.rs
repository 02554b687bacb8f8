//! Statement shapes: each distinct shape is classified once per worker thread.
//!
//! A statement's shape is its text with every literal replaced by a canonical one (numbers by
//! `0`, strings by an empty string with the same quote): `SELECT c FROM t WHERE id=42` and
//! `... id=7` share the shape `SELECT c FROM t WHERE id=0`. Replacing a literal by another
//! literal that ends the same way leaves every other token as it was, so a statement
//! classifies exactly as its shape does (checked by a property test), and the shape is an
//! exact key: no hash collision can route one statement as another. Comments do not change
//! a classification, so they are left out of the shape (a space in their place): the tags
//! ORMs and tracing libraries add (`/* controller='users',traceparent='00-...' */`) share
//! the bare statement's shape. A comment that could hold a Sluice hint does change it: it
//! stays in the shape as written (literals in it included), so a hinted statement shares
//! the shape of those with the same hint only. Text the replacement could not keep equal
//! (an executable comment, an exponent glued to a word) has no shape and is classified in
//! full each time.

use super::lexer::{is_ident, number_end, quoted_end, run_end};
use super::Intent;
use std::cell::RefCell;
use std::collections::HashMap;

/// Longer statements are classified every time (lexing is small next to running them).
const MAX_SQL: usize = 1024;
/// Past this many shapes a thread's cache starts over (bounded memory: ~0.5 MiB typical).
const MAX_SHAPES: usize = 4096;

/// Writes the shape of `sql` to `out`; `false` if it has none (see the module comment). It
/// reads the text token by token as the lexer does (`lexer::Lexer::next_tok`), so that a
/// literal is replaced only where the lexer reads one, with the lexer's own extents; but it
/// looks only at the bytes that may start a literal or a special token (`stops`): the
/// words, spaces and punctuation between them stay as they are. A digit is a number's start
/// unless an identifier byte comes before it (the lexer's words and numbers are maximal runs
/// of identifier bytes, and every other token ends on a byte that is not one), in which case
/// it is inside a word: the rest of the word is skipped.
pub fn shape(sql: &[u8], out: &mut Vec<u8>) -> bool {
    let (mut i, mut copied, n) = (0, 0, sql.len());
    loop {
        i = super::stops::next(sql, i);
        if i >= n {
            break;
        }
        if !sql[i].is_ascii_digit() {
            match special(sql, i, out, &mut copied) {
                Some(end) => i = end,
                None => return false,
            }
        } else if i > 0 && is_ident(sql[i - 1]) {
            i = run_end(sql, i + 1, false); // `sbtest1`
        } else {
            let end = number_end(sql, i);
            if sql.get(end).is_some_and(|&b| is_ident(b) || b == b'.') {
                return false; // `1e+5x`: a `0` in its place would swallow the `x`
            }
            out.extend_from_slice(&sql[copied..i]);
            out.push(b'0');
            (i, copied) = (end, end);
        }
    }
    out.extend_from_slice(&sql[copied..]);
    true
}

/// A token starting at `i` with a stop byte that is not a digit: where it ends (`None`: no
/// shape).
fn special(sql: &[u8], i: usize, out: &mut Vec<u8>, copied: &mut usize) -> Option<usize> {
    let c = sql[i];
    let next = sql.get(i + 1).copied();
    Some(match c {
        b'\'' | b'"' => {
            out.extend_from_slice(&sql[*copied..i]);
            out.extend_from_slice(&[c, c]);
            *copied = quoted_end(sql, i);
            *copied
        }
        b'`' => quoted_end(sql, i), // an identifier: kept as written
        b'@' => {
            // a variable's name is kept as written
            let sys = next == Some(b'@');
            let at = i + 1 + usize::from(sys);
            match sql.get(at) {
                Some(b'\'' | b'"' | b'`') if !sys => quoted_end(sql, at),
                _ => run_end(sql, at, true),
            }
        }
        b'#' => line_comment(sql, i, out, copied),
        b'-' if next == Some(b'-') => {
            let after = sql.get(i + 2);
            if !after.is_none_or(|c| c.is_ascii_whitespace() || c.is_ascii_control()) {
                return None; // `--x`: two minus signs
            }
            line_comment(sql, i, out, copied)
        }
        b'/' if next == Some(b'*') => block_comment(sql, i, out, copied)?,
        _ => i + 1,
    })
}

/// A comment from `i` to `end` left out of the shape: a space in its place.
fn leave_out(sql: &[u8], (i, end): (usize, usize), out: &mut Vec<u8>, copied: &mut usize) -> usize {
    out.extend_from_slice(&sql[*copied..i]);
    out.push(b' ');
    *copied = end;
    end
}

/// `#` or `-- ` to the end of the line.
fn line_comment(sql: &[u8], i: usize, out: &mut Vec<u8>, copied: &mut usize) -> usize {
    let end = memchr::memchr(b'\n', &sql[i..]).map_or(sql.len(), |n| i + n + 1);
    leave_out(sql, (i, end), out, copied)
}

/// Finds Sluice's hint prefix in a comment (a vectorised search: the tags ORMs and tracing
/// libraries add run to a hundred bytes and more, on every statement).
static HINT: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
    std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"sluice:"));

/// `/* ... */`, left out, or kept as written when it could hold a hint (the hint is then
/// part of the shape: statements with different hints have different shapes); `None` for
/// one the lexer reads as code (`/*!`, `/*M!`) or one never closed.
fn block_comment(sql: &[u8], i: usize, out: &mut Vec<u8>, copied: &mut usize) -> Option<usize> {
    let rest = &sql[i..];
    if rest.get(2) == Some(&b'!') || rest.starts_with(b"/*M!") {
        return None;
    }
    let body = &rest[2..];
    let close = memchr::memchr_iter(b'*', body).find(|&k| body.get(k + 1) == Some(&b'/'))?;
    let len = close + 4;
    if HINT.find(&rest[..len]).is_some() {
        return Some(i + len); // copied with the text around it
    }
    Some(leave_out(sql, (i, i + len), out, copied))
}

struct Shapes {
    /// Each shape's intent and id (ids are never reused by a thread: rule caches key on them).
    map: HashMap<Box<[u8]>, (Intent, u64), ahash::RandomState>,
    scratch: Vec<u8>,
    next_id: u64,
}

thread_local! {
    static SHAPES: RefCell<Shapes> = RefCell::new(Shapes {
        map: HashMap::with_hasher(ahash::RandomState::new()),
        scratch: Vec::new(),
        next_id: 1,
    });
}

/// The intent of `sql` from this thread's shape cache, classifying (and remembering) its
/// shape on a miss; with the shape's id on this thread (0: `sql` has no shape).
pub fn cached(sql: &[u8], classify: impl FnOnce(&[u8]) -> Intent) -> (Intent, u64) {
    if sql.len() > MAX_SQL {
        return (classify(sql), 0);
    }
    SHAPES.with(|cell| {
        let Ok(mut shapes) = cell.try_borrow_mut() else {
            return (classify(sql), 0);
        };
        let Shapes {
            map,
            scratch,
            next_id,
        } = &mut *shapes;
        scratch.clear();
        if !shape(sql, scratch) {
            return (classify(sql), 0);
        }
        if let Some(hit) = map.get(scratch.as_slice()) {
            return *hit;
        }
        let intent = classify(sql);
        if map.len() >= MAX_SHAPES {
            *map = HashMap::with_hasher(ahash::RandomState::new());
        }
        let id = *next_id;
        *next_id += 1;
        map.insert(scratch.as_slice().into(), (intent, id));
        (intent, id)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(sql: &str) -> Option<String> {
        let mut out = Vec::new();
        shape(sql.as_bytes(), &mut out).then(|| String::from_utf8(out).unwrap())
    }

    #[test]
    fn literals_are_replaced() {
        let s = sh("SELECT c FROM sbtest1 WHERE id=5023 AND k IN (1.5, -2e+3, 'a\\'b''c', \"x\")");
        assert_eq!(
            s.as_deref(),
            Some("SELECT c FROM sbtest1 WHERE id=0 AND k IN (0, -0, '', \"\")")
        );
        assert_eq!(
            sh("SELECT x'ff', _utf8'é'").as_deref(),
            Some("SELECT x'', _utf8''")
        );
    }

    #[test]
    fn identifiers_and_variables_are_kept() {
        let s = "SELECT `a'1`, t1.c2, @v3, @@x.5, 0x1F FROM t9";
        assert_eq!(
            sh(s).as_deref(),
            Some("SELECT `a'1`, t1.c2, @v3, @@x.5, 0 FROM t9")
        );
    }

    #[test]
    fn comments_are_left_out() {
        let tagged = "SELECT c FROM t WHERE id=5 /*controller='users',action='show',\
                      traceparent='00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'*/";
        assert_eq!(sh(tagged).as_deref(), Some("SELECT c FROM t WHERE id=0  "));
        assert_eq!(
            sh("/* app */ SELECT 1 -- x\nFROM t # y").as_deref(),
            Some("  SELECT 0  FROM t  ")
        );
        assert_eq!(sh("SELECT/**/1").as_deref(), Some("SELECT 0"));
    }

    #[test]
    fn a_tagged_statement_routes_and_digests_as_the_bare_one() {
        let bare = "SELECT c FROM sbtest1 WHERE id=17";
        let tagged = format!(
            "{bare} /*action='show',controller='users',framework='django%3A4.2',\
             traceparent='00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'*/"
        );
        let full = |sql: &[u8]| super::super::classify(sql);
        assert_eq!(cached(tagged.as_bytes(), full).0, full(bare.as_bytes()));
        // served from the shape cache: the bare statement's shape
        let again = cached(tagged.replace("17", "18").as_bytes(), |_| {
            unreachable!("cached")
        })
        .0;
        assert_eq!(again, full(bare.as_bytes()));
    }

    #[test]
    fn comments_with_hints_are_kept_and_code_has_no_shape() {
        assert_eq!(
            sh("/* a */ /* sluice:primary, max_lag=250ms */ SELECT 1 /* sluice:x 7 */").unwrap(),
            "  /* sluice:primary, max_lag=250ms */ SELECT 0 /* sluice:x 7 */"
        );
        for s in [
            "/*!40101 SET NAMES utf8 */",
            "/*M!100500 SELECT 1 */",
            "SELECT 1 /* never closed",
            "SELECT 1 --x",
            "SELECT 1e+5x",
            "SELECT .2e-2e", // the lexer reads `2e-2` then `e`: no `0` can stand for it
        ] {
            assert_eq!(sh(s), None, "{s}");
        }
        assert!(sh("SELECT '/* not a comment */ # -- '").is_some());
    }

    const PIECES: &[&str] = &[
        "SELECT ",
        "SET ",
        "FOR ",
        "UPDATE",
        "INTO ",
        "FROM t",
        "SESSION ",
        "autocommit",
        "@",
        "@@",
        "x",
        "e",
        "E",
        ".",
        "'",
        "\"",
        "`",
        "\\",
        "-",
        "+",
        "1",
        "2e",
        "0x1E",
        "9.5",
        " ",
        ",",
        "(",
        ")",
        ";",
        "=",
        ":=",
        "/",
        "*",
        "_utf8",
        "a",
        "\u{e9}",
        "\n",
        "LOCK ",
        "IN SHARE MODE",
        "LAST_INSERT_ID(",
        "WITH ",
        "?",
        "/* c */",
        "/*",
        "*/",
        "/*!",
        "/* sluice:primary */",
        "-- c\n",
        "--",
        "# c\n",
        "#",
    ];

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(50_000))]
        /// The property the cache relies on: a statement classifies (kind, flags, hints,
        /// digest) exactly as its shape does.
        #[test]
        fn a_statement_classifies_as_its_shape(
            picks in proptest::collection::vec(0..PIECES.len(), 0..24)
        ) {
            let sql: String = picks.iter().map(|&i| PIECES[i]).collect();
            let mut shaped = Vec::new();
            if shape(sql.as_bytes(), &mut shaped) {
                let full = super::super::classify(sql.as_bytes());
                proptest::prop_assert_eq!(full, super::super::classify(&shaped), "{}", sql);
                let mut again = Vec::new();
                proptest::prop_assert!(shape(&shaped, &mut again));
                proptest::prop_assert_eq!(again, shaped);
            }
        }
    }

    #[test]
    fn cache_returns_the_first_classification_of_a_shape() {
        let full = |sql: &[u8]| super::super::classify(sql);
        let a = cached(b"SELECT c FROM t WHERE id = 41", full);
        let b = cached(b"SELECT c FROM t WHERE id = 42", |_| unreachable!("cached"));
        assert_eq!(a, b, "same intent, same shape id");
        assert_ne!(a.1, 0);
        let w = cached(b"SELECT c FROM t WHERE id = 42 FOR UPDATE", full).0;
        assert!(w.has(super::super::flag::LOCKING));
    }

    #[test]
    fn a_hinted_statement_is_cached_with_its_hint_only() {
        use super::super::flag::HINT_PRIMARY;
        let full = |sql: &[u8]| super::super::classify(sql);
        let hinted = cached(b"/* sluice:primary */ SELECT c FROM h WHERE id = 1", full);
        assert!(hinted.0.has(HINT_PRIMARY));
        let bare = cached(b"SELECT c FROM h WHERE id = 2", full);
        assert!(
            !bare.0.has(HINT_PRIMARY),
            "the hint is not the bare shape's"
        );
        assert_ne!(hinted.1, bare.1);
        let again = cached(b"/* sluice:primary */ SELECT c FROM h WHERE id = 3", |_| {
            unreachable!("cached")
        });
        assert_eq!(again, hinted);
        let other = cached(b"/* sluice:replica */ SELECT c FROM h WHERE id = 4", full);
        assert!(!other.0.has(HINT_PRIMARY), "another hint, another shape");
    }
}
