//! A small MySQL lexer: skips whitespace, comments and literals, yields keywords/identifiers,
//! user variables and punctuation. It never allocates; identifiers are byte slices.
//!
//! Executable comments (`/*! ... */`, `/*M! ... */`) are lexed as code, like MySQL does.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tok<'a> {
    /// Keyword or identifier (unquoted or back-quoted), as written.
    Word(&'a [u8]),
    /// String, number, hex or bit literal, or `?` placeholder.
    Literal,
    /// `@name` / `@'name'` user variable.
    UserVar,
    /// `@@name` system variable (optionally `@@session.` / `@@global.`), as written after `@@`.
    SysVar(&'a [u8]),
    /// `:=`
    Assign,
    /// Any other single punctuation byte: `(`, `)`, `,`, `;`, `=`, `.`, ...
    Punct(u8),
}

pub struct Lexer<'a> {
    s: &'a [u8],
    pos: usize,
    /// Inside an executable comment: its closing `*/` is skipped.
    in_exec_comment: bool,
}

/// Byte classes, one table lookup per byte on the per-statement path.
const IDENT: u8 = 1;
const SPACE: u8 = 2;
/// Bytes that may start (or end) a comment: `/`, `*`, `#`, `-`.
const COMMENT: u8 = 4;
/// `.`: continues a number or a qualified variable name (`run_end` with `dots`).
const DOT: u8 = 8;

static CLASS: [u8; 256] = classes();

const fn classes() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut b = 0usize;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80 {
            t[b] |= IDENT;
        }
        if c.is_ascii_whitespace() {
            t[b] |= SPACE;
        }
        if matches!(c, b'/' | b'*' | b'#' | b'-') {
            t[b] |= COMMENT;
        }
        if c == b'.' {
            t[b] |= DOT;
        }
        b += 1;
    }
    t
}

pub(super) fn is_ident(b: u8) -> bool {
    CLASS[b as usize] & IDENT != 0
}

/// The end of the quoted string, identifier or name opened by the quote at `start`
/// (backslash escapes except in back-quotes, doubled quotes); the input's end if unclosed.
pub(super) fn quoted_end(s: &[u8], start: usize) -> usize {
    let q = s[start];
    let mut pos = start + 1;
    while pos < s.len() {
        // the next quote, or backslash outside back-quotes, by a vectorised search: the
        // literals of writes (sysbench's 120-byte strings, JSON documents) are long
        let rest = &s[pos..];
        let found = if q == b'`' {
            memchr::memchr(q, rest)
        } else {
            memchr::memchr2(q, b'\\', rest)
        };
        let Some(k) = found else {
            return s.len();
        };
        pos += k;
        if s[pos] == b'\\' {
            pos += 2;
            continue;
        }
        pos += 1;
        if s.get(pos) == Some(&q) {
            pos += 1; // doubled quote
            continue;
        }
        return pos;
    }
    s.len()
}

/// The end of a run of identifier bytes (and dots, with `dots`) from `pos`: a word, a
/// variable's name, a number's digits.
pub(super) fn run_end(s: &[u8], mut pos: usize, dots: bool) -> usize {
    // one table test per byte (the words of every statement pass here)
    let mask = if dots { IDENT | DOT } else { IDENT };
    while pos < s.len() && CLASS[s[pos] as usize] & mask != 0 {
        pos += 1;
    }
    pos
}

/// The end of the number literal starting at `start` (a digit): identifier bytes and dots,
/// then a signed exponent (`1e+5`).
pub(super) fn number_end(s: &[u8], start: usize) -> usize {
    let mut pos = run_end(s, start, true);
    if matches!(s.get(pos), Some(b'+' | b'-')) && matches!(s[pos - 1], b'e' | b'E') {
        pos += 1;
        while pos < s.len() && s[pos].is_ascii_digit() {
            pos += 1;
        }
    }
    pos
}

impl<'a> Lexer<'a> {
    pub fn new(s: &'a [u8]) -> Self {
        Self {
            s,
            pos: 0,
            in_exec_comment: false,
        }
    }

    /// Leading comments (before the first token) are returned through `on_comment` so hints
    /// like `/* sluice:primary */` can be read.
    pub fn skip_space(&mut self, mut on_comment: impl FnMut(&'a [u8])) {
        let s = self.s;
        // most tokens follow no space at all: then no comment can start here either
        if s.get(self.pos)
            .is_none_or(|&c| CLASS[c as usize] & (SPACE | COMMENT) == 0)
        {
            return;
        }
        loop {
            while self.pos < s.len() && CLASS[s[self.pos] as usize] & SPACE != 0 {
                self.pos += 1;
            }
            // the usual case: a token follows the space
            match s.get(self.pos) {
                Some(&c) if CLASS[c as usize] & COMMENT != 0 => {}
                _ => return,
            }
            let rest = &s[self.pos..];
            if rest.starts_with(b"/*") {
                let is_exec = rest.get(2) == Some(&b'!') || rest.starts_with(b"/*M!");
                if is_exec {
                    self.pos += if rest[2] == b'!' { 3 } else { 4 };
                    while self.pos < s.len() && s[self.pos].is_ascii_digit() {
                        self.pos += 1;
                    }
                    self.in_exec_comment = true;
                    continue;
                }
                // the closing `*/` is searched after the opening `/*` (`/*/` opens only)
                let end = find(&rest[2..], b"*/").map(|i| i + 4).unwrap_or(rest.len());
                on_comment(&rest[2..end.saturating_sub(2).max(2)]);
                self.pos += end;
            } else if self.in_exec_comment && rest.starts_with(b"*/") {
                self.in_exec_comment = false;
                self.pos += 2;
            } else if rest.starts_with(b"#")
                || (rest.starts_with(b"--")
                    && rest
                        .get(2)
                        .is_none_or(|c| c.is_ascii_whitespace() || c.is_ascii_control()))
            {
                let end = memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1);
                self.pos += end;
            } else {
                return;
            }
        }
    }

    fn quoted(&mut self) {
        self.pos = quoted_end(self.s, self.pos);
    }

    pub fn next_tok(&mut self) -> Option<Tok<'a>> {
        self.skip_space(|_| {});
        let s = self.s;
        let c = *s.get(self.pos)?;
        let start = self.pos;
        Some(match c {
            b'\'' | b'"' => {
                self.quoted();
                Tok::Literal
            }
            b'`' => {
                self.quoted();
                Tok::Word(&s[start + 1..self.pos.saturating_sub(1).max(start + 1)])
            }
            b'0'..=b'9' => {
                self.pos = number_end(s, start);
                Tok::Literal
            }
            b'?' => {
                self.pos += 1;
                Tok::Literal
            }
            b'@' => {
                if s.get(self.pos + 1) == Some(&b'@') {
                    self.pos += 2;
                    let from = self.pos;
                    self.pos = run_end(s, self.pos, true);
                    Tok::SysVar(&s[from..self.pos])
                } else {
                    self.pos += 1;
                    match s.get(self.pos) {
                        Some(b'\'' | b'"' | b'`') => self.quoted(),
                        _ => {
                            self.pos = run_end(s, self.pos, true);
                        }
                    }
                    Tok::UserVar
                }
            }
            b':' if s.get(self.pos + 1) == Some(&b'=') => {
                self.pos += 2;
                Tok::Assign
            }
            c if is_ident(c) => {
                // x'..', b'..', N'..', _utf8'..' literals
                self.pos = run_end(s, self.pos, false);
                let w = &s[start..self.pos];
                if s.get(self.pos) == Some(&b'\'')
                    && (w.eq_ignore_ascii_case(b"x")
                        || w.eq_ignore_ascii_case(b"b")
                        || w.eq_ignore_ascii_case(b"n")
                        || w[0] == b'_')
                {
                    self.quoted();
                    return Some(Tok::Literal);
                }
                Tok::Word(w)
            }
            _ => {
                self.pos += 1;
                Tok::Punct(c)
            }
        })
    }
}

impl Lexer<'_> {
    /// Byte offset just past the last token.
    pub fn offset(&self) -> usize {
        self.pos.min(self.s.len())
    }
}

fn find(h: &[u8], n: &[u8]) -> Option<usize> {
    memchr::memmem::find(h, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok<'_>> {
        let mut l = Lexer::new(s.as_bytes());
        std::iter::from_fn(|| l.next_tok()).collect()
    }

    #[test]
    fn skips_comments_and_literals() {
        let t =
            toks("SELECT /* x */ 'a''b', \"c\\\"d\", 1.5e+3, x'ff' -- tail\n FROM `t``x` # more");
        assert_eq!(
            t,
            vec![
                Tok::Word(b"SELECT"),
                Tok::Literal,
                Tok::Punct(b','),
                Tok::Literal,
                Tok::Punct(b','),
                Tok::Literal,
                Tok::Punct(b','),
                Tok::Literal,
                Tok::Word(b"FROM"),
                Tok::Word(b"t``x"),
            ]
        );
    }

    /// Where a quoted text ends, with escapes, doubled quotes and unclosed ends, short and
    /// past the vectorised searches' block sizes.
    #[test]
    fn quoted_ends() {
        let end = |s: &str| quoted_end(s.as_bytes(), 0);
        assert_eq!(end("'' x"), 2);
        assert_eq!(end("'a''b' x"), 6);
        assert_eq!(end(r"'a\'b' x"), 6, "an escaped quote");
        assert_eq!(end(r"'a\\' x"), 5, "an escaped backslash");
        assert_eq!(end(r"`a\` x"), 4, "no escapes in back-quotes");
        assert_eq!(end("`a``b` x"), 6);
        assert_eq!(end(r#""a\"b" x"#), 6);
        assert_eq!(end("'abc"), 4, "unclosed");
        assert_eq!(end(r"'abc\"), 5, "unclosed after a backslash");
        let long = format!("'{}\\'{}''' x", "7".repeat(100), "3".repeat(70));
        assert_eq!(end(&long), long.len() - 2);
    }

    #[test]
    fn variables() {
        assert_eq!(
            toks("SET @a := @@session.sql_mode"),
            vec![
                Tok::Word(b"SET"),
                Tok::UserVar,
                Tok::Assign,
                Tok::SysVar(b"session.sql_mode")
            ]
        );
    }

    #[test]
    fn executable_comment_is_code() {
        assert_eq!(
            toks("/*!40101 SET NAMES utf8 */"),
            vec![Tok::Word(b"SET"), Tok::Word(b"NAMES"), Tok::Word(b"utf8")]
        );
    }

    #[test]
    fn unterminated_input_does_not_panic() {
        for s in ["'abc", "`abc", "/* abc", "@'x", "x'1", "--", "@@", "1e+"] {
            let _ = toks(s);
        }
    }
}

/// The statement with its literals as `?` and spacing normalised (`SELECT c FROM t WHERE id
/// = ?`), at most `max` bytes: what digest statistics and the slow-query log show.
/// The statement's first word (comments skipped), if it starts with one.
pub fn first_word(sql: &[u8]) -> Option<&[u8]> {
    match Lexer::new(sql).next_tok()? {
        Tok::Word(w) => Some(w),
        _ => None,
    }
}

pub fn normalized(sql: &[u8], max: usize) -> String {
    let mut lx = Lexer::new(sql);
    let mut out = String::new();
    let mut prev = None;
    while let Some(t) = lx.next_tok() {
        if out.len() >= max {
            break;
        }
        let piece: std::borrow::Cow<'_, str> = match t {
            Tok::Word(w) => String::from_utf8_lossy(w),
            Tok::Literal => "?".into(),
            Tok::UserVar => "@var".into(),
            Tok::SysVar(n) => format!("@@{}", String::from_utf8_lossy(n)).into(),
            Tok::Assign => ":=".into(),
            Tok::Punct(p) => (p as char).to_string().into(),
        };
        // `f(x)`, `a.b`, `x, y`: no space; a word's `(` is a call's (or `IN(`)
        let glue = matches!(t, Tok::Punct(b',' | b')' | b'.' | b';'))
            || (t == Tok::Punct(b'(') && matches!(prev, Some(Tok::Word(_))))
            || out.ends_with('(')
            || out.ends_with('.');
        prev = Some(t);
        if !out.is_empty() && !glue {
            out.push(' ');
        }
        out.push_str(&piece);
    }
    if out.len() > max {
        let mut cut = max;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
    }
    out
}

#[cfg(test)]
mod normalized_tests {
    #[test]
    fn literals_become_placeholders() {
        assert_eq!(
            super::normalized(
                b"select  c from sbtest1 where id=42 and name in ('a','b')",
                200
            ),
            "select c from sbtest1 where id = ? and name in(?, ?)"
        );
        assert_eq!(super::normalized(b"SELECT 'x'", 4), "SELE");
    }
}
