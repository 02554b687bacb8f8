//! Whether any of several plain ASCII texts occurs in a statement, ignoring ASCII case,
//! without reading every byte: a multi-pattern skip search (Wu and Manber, 1994) on
//! case-folded pairs of bytes. The window is the shortest pattern's length `m`; the pair of
//! bytes at the window's end says how far the window may move without passing an
//! occurrence (at most `m - 1`). On a point select and 50 patterns of 15 bytes that is three
//! probes instead of a packed search over a lowercased copy of the whole text.
//!
//! Proof of the skip: for an occurrence starting at `s`, its window ends at `e = s + m - 1`.
//! While the window ends at `pos < e`, either the pair at `pos` lies inside the occurrence's
//! first `m` bytes at offset `j` (so the table holds at most `m - 2 - j = e - pos`), or it
//! lies before them (`pos <= e - m + 1`, and the largest shift, `m - 1`, reaches at most
//! `e`). Hash collisions only lower shifts. At `pos = e` the shift is 0 and the patterns
//! whose last pair hashes alike are compared.

/// Pairs hash into this many slots.
const SLOTS: usize = 1 << 12;

#[derive(Debug)]
pub struct SkipSearch {
    /// Shortest pattern length (the window).
    m: usize,
    /// How far the window may move when its last pair hashes to the slot.
    shift: Box<[u8]>,
    /// The patterns whose `m`-th pair hashes to slot `h`: `ids[starts[h]..starts[h + 1]]`.
    starts: Box<[u16]>,
    ids: Box<[u16]>,
    /// The patterns, lowercased.
    patterns: Vec<Box<[u8]>>,
}

fn slot(a: u8, b: u8) -> usize {
    ((a.to_ascii_lowercase() as usize) << 4 ^ b.to_ascii_lowercase() as usize) & (SLOTS - 1)
}

impl SkipSearch {
    /// Patterns shorter than 4 bytes, more than 65,535 of them or a window over 255 make the
    /// skips too short to pay: `None`.
    pub fn new(patterns: &[String]) -> Option<SkipSearch> {
        let m = patterns.iter().map(String::len).min()?;
        if !(4..=255).contains(&m) || patterns.len() > u16::MAX as usize {
            return None;
        }
        let patterns: Vec<Box<[u8]>> = patterns
            .iter()
            .map(|p| p.to_ascii_lowercase().into_bytes().into())
            .collect();
        let mut shift = vec![(m - 1) as u8; SLOTS];
        let mut last: Vec<(usize, u16)> = Vec::new();
        for (id, p) in patterns.iter().enumerate() {
            for j in 0..m - 1 {
                let s = &mut shift[slot(p[j], p[j + 1])];
                *s = (*s).min((m - 2 - j) as u8);
            }
            last.push((slot(p[m - 2], p[m - 1]), id as u16));
        }
        last.sort_unstable();
        let mut starts = vec![0u16; SLOTS + 1];
        for &(h, _) in &last {
            starts[h + 1] += 1;
        }
        for h in 0..SLOTS {
            starts[h + 1] += starts[h];
        }
        Some(SkipSearch {
            m,
            shift: shift.into(),
            starts: starts.into(),
            ids: last.iter().map(|&(_, id)| id).collect(),
            patterns,
        })
    }

    /// Whether some pattern occurs in `text`, ASCII case ignored.
    pub fn is_match(&self, text: &[u8]) -> bool {
        let m = self.m;
        let mut pos = m - 1;
        while pos < text.len() {
            let h = slot(text[pos - 1], text[pos]);
            match self.shift[h] {
                0 => {
                    if self.verify(h, &text[pos + 1 - m..]) {
                        return true;
                    }
                    pos += 1;
                }
                s => pos += s as usize,
            }
        }
        false
    }

    /// Whether a pattern whose window's last pair hashes to `h` starts `rest`.
    #[cold]
    fn verify(&self, h: usize, rest: &[u8]) -> bool {
        let (a, b) = (self.starts[h] as usize, self.starts[h + 1] as usize);
        self.ids[a..b].iter().any(|&id| {
            let p = &self.patterns[id as usize];
            rest.len() >= p.len() && rest[..p.len()].eq_ignore_ascii_case(p)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::SkipSearch;
    use proptest::prelude::*;

    fn naive(patterns: &[String], text: &[u8]) -> bool {
        let text = text.to_ascii_lowercase();
        patterns.iter().any(|p| {
            let p = p.to_ascii_lowercase().into_bytes();
            text.windows(p.len()).any(|w| w == &p[..])
        })
    }

    #[test]
    fn finds_each_pattern_anywhere_in_any_case() {
        let pats: Vec<String> = (1..=50).map(|i| format!("tenant_{i}_secret")).collect();
        let s = SkipSearch::new(&pats).unwrap();
        assert!(!s.is_match(b"SELECT c FROM sbtest1 WHERE id=5012"));
        assert!(s.is_match(b"SELECT * FROM TENANT_17_Secret"));
        assert!(s.is_match(b"tenant_50_secret"));
        assert!(s.is_match(b"xtenant_9_secretx"));
        assert!(!s.is_match(b"tenant_51_secret tenant__secret"));
        assert!(!s.is_match(b"tenant_1_secre"));
        assert!(!s.is_match(b""));
        assert!(SkipSearch::new(&["abc".to_string()]).is_none(), "too short");
    }

    proptest! {
        /// Small alphabets make near misses, shared pairs and hash collisions common.
        #[test]
        fn answers_as_a_naive_search(
            pats in prop::collection::vec("[abAB_é]{4,9}", 1..12),
            text in "[abAB_é ]{0,80}",
            at in any::<prop::sample::Index>(),
            put in any::<bool>(),
        ) {
            let mut text = text.into_bytes();
            if put {
                // an occurrence, case flipped, at a random place
                let p = pats[at.index(pats.len())].to_ascii_uppercase().into_bytes();
                let i = at.index(text.len() + 1);
                text.splice(i..i, p);
            }
            let pats: Vec<String> = pats.into_iter().filter(|p| p.is_ascii()).collect();
            if let Some(s) = SkipSearch::new(&pats) {
                prop_assert_eq!(s.is_match(&text), naive(&pats, &text));
            }
        }
    }
}
