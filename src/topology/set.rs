//! A set of backend indices without an upper bound (the backend list only grows on
//! reloads). Indices below 64 cost no allocation.

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BackendSet {
    low: u64,
    /// Words for indices 64 and up (index 64 is bit 0 of word 0).
    high: Vec<u64>,
}

impl BackendSet {
    pub fn insert(&mut self, i: usize) {
        if i < 64 {
            self.low |= 1 << i;
            return;
        }
        let (w, b) = ((i - 64) / 64, (i - 64) % 64);
        if self.high.len() <= w {
            self.high.resize(w + 1, 0);
        }
        self.high[w] |= 1 << b;
    }

    pub fn contains(&self, i: usize) -> bool {
        if i < 64 {
            return self.low & (1 << i) != 0;
        }
        let (w, b) = ((i - 64) / 64, (i - 64) % 64);
        self.high.get(w).is_some_and(|x| x & (1 << b) != 0)
    }

    pub fn clear(&mut self) {
        self.low = 0;
        self.high.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::BackendSet;

    #[test]
    fn indices_past_64_are_distinct() {
        let mut s = BackendSet::default();
        s.insert(64);
        assert!(s.contains(64));
        assert!(!s.contains(0), "backend 64 must not stand for backend 0");
        s.insert(0);
        s.insert(200);
        assert!(s.contains(0) && s.contains(200) && !s.contains(136) && !s.contains(128));
        s.clear();
        assert!(!s.contains(0) && !s.contains(64) && !s.contains(200));
    }
}
