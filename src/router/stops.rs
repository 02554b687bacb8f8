//! Where `shape` has something to do: the next byte of a statement that may start a literal
//! or a special token (a digit, or one of `'` `"` `` ` `` `@` `#` `/` `-`). Everything
//! between two such bytes (words, spaces, punctuation) is copied to the shape as it is, so
//! the scan skips it sixteen bytes at a time with SSE2 (part of every x86-64), and byte by
//! byte elsewhere.

/// Whether byte `c` is one `next` stops at.
const fn is_stop(c: u8) -> bool {
    c.is_ascii_digit() || matches!(c, b'\'' | b'"' | b'`' | b'@' | b'#' | b'/' | b'-')
}

static STOPS: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        t[b] = is_stop(b as u8);
        b += 1;
    }
    t
};

/// The position of the first stop byte of `s` at or after `from`; `s.len()` if none.
#[inline]
pub fn next(s: &[u8], from: usize) -> usize {
    #[cfg(target_arch = "x86_64")]
    if s.len() >= 16 {
        return wide::next(s, from);
    }
    bytewise(s, from)
}

fn bytewise(s: &[u8], mut from: usize) -> usize {
    while from < s.len() && !STOPS[s[from] as usize] {
        from += 1;
    }
    from.min(s.len())
}

#[cfg(target_arch = "x86_64")]
mod wide {
    use std::arch::x86_64::*;

    /// Bit `k` set: byte `k` of the sixteen at `p` is a stop byte.
    ///
    /// # Safety
    /// Sixteen bytes from `p` must be readable.
    #[inline(always)]
    unsafe fn mask(p: *const u8) -> u32 {
        let x = _mm_loadu_si128(p.cast::<__m128i>());
        let eq = |c: u8| _mm_cmpeq_epi8(x, _mm_set1_epi8(c as i8));
        // signed comparisons: bytes from 0x80 up are negative, never digits
        let digit = _mm_and_si128(
            _mm_cmpgt_epi8(x, _mm_set1_epi8(b'0' as i8 - 1)),
            _mm_cmplt_epi8(x, _mm_set1_epi8(b'9' as i8 + 1)),
        );
        let quotes = _mm_or_si128(
            _mm_or_si128(eq(b'\''), eq(b'"')),
            _mm_or_si128(eq(b'`'), eq(b'@')),
        );
        let comments = _mm_or_si128(_mm_or_si128(eq(b'#'), eq(b'/')), eq(b'-'));
        _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quotes, comments), digit)) as u32
    }

    /// `super::next` for `s` of sixteen bytes or more.
    pub fn next(s: &[u8], mut from: usize) -> usize {
        let n = s.len();
        while from + 16 <= n {
            // SAFETY: the sixteen bytes from `from` are inside `s`
            let m = unsafe { mask(s.as_ptr().add(from)) };
            if m != 0 {
                return from + m.trailing_zeros() as usize;
            }
            from += 16;
        }
        if from >= n {
            return n;
        }
        // the tail: the last sixteen bytes, those before `from` shifted out
        let last = n - 16;
        // SAFETY: `n >= 16` (the caller's condition), so `last..n` is inside `s`
        let m = unsafe { mask(s.as_ptr().add(last)) } >> (from - last);
        if m != 0 {
            from + m.trailing_zeros() as usize
        } else {
            n
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Sixteen at a time finds what byte by byte finds, from every position, whatever
        /// the bytes (high ones included) and however the tail falls.
        #[test]
        fn wide_and_bytewise_agree(
            s in proptest::collection::vec(
                proptest::prop_oneof![
                    proptest::prelude::any::<u8>(),
                    proptest::sample::select(b"aZ_ .(=,9'`\"@#/-\n\x80\xff".to_vec()),
                ],
                0..80,
            )
        ) {
            for from in 0..=s.len() {
                proptest::prop_assert_eq!(next(&s, from), bytewise(&s, from), "from {}", from);
            }
        }
    }

    #[test]
    fn stops_where_a_literal_or_special_token_may_start() {
        let s = b"SELECT c FROM sbtest1 WHERE id=5023 AND k = 'x' -- y";
        let mut at = Vec::new();
        let mut i = next(s, 0);
        while i < s.len() {
            at.push(s[i]);
            i = next(s, i + 1);
        }
        assert_eq!(at, b"15023''--");
        assert_eq!(next(b"SELECT c FROM tables_without_any", 0), 32);
    }
}
