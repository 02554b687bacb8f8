//! Statements prepared on one backend connection, keyed by (database, SQL): one backend
//! statement per key, the replaced or least recently used one closed on the server.

use std::sync::Arc;

pub type StmtKey = (Option<String>, Arc<str>);

#[derive(Debug, Clone, Copy)]
struct Entry {
    id: u32,
    params: u16,
    used: u64,
}

#[derive(Debug, Default, Clone)]
pub struct StmtCache {
    map: ahash::AHashMap<StmtKey, Entry>,
    tick: u64,
    /// Backend statement ids to close (COM_STMT_CLOSE, no reply) before the next command.
    pub pending_close: Vec<u32>,
}

impl StmtCache {
    /// The backend statement id and parameter count of `key`, marked as just used.
    pub fn get(&mut self, key: &StmtKey) -> Option<(u32, u16)> {
        self.tick += 1;
        let tick = self.tick;
        self.map.get_mut(key).map(|e| {
            e.used = tick;
            (e.id, e.params)
        })
    }

    /// Records a statement prepared on the server. A statement it replaces is closed; past
    /// `cap` statements the least recently used one is closed.
    pub fn insert(&mut self, key: StmtKey, id: u32, params: u16, cap: usize) {
        self.tick += 1;
        let entry = Entry {
            id,
            params,
            used: self.tick,
        };
        if let Some(old) = self.map.insert(key, entry) {
            if old.id != id {
                self.pending_close.push(old.id);
            }
        }
        while self.map.len() > cap.max(1) {
            let Some(lru) = self
                .map
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(e) = self.map.remove(&lru) {
                self.pending_close.push(e.id);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(s: &str) -> StmtKey {
        (None, Arc::from(s))
    }

    #[test]
    fn replacing_a_statement_closes_the_old_one() {
        let mut c = StmtCache::default();
        c.insert(key("a"), 1, 0, 10);
        c.insert(key("a"), 2, 0, 10);
        assert_eq!(c.len(), 1);
        assert_eq!(c.get(&key("a")), Some((2, 0)));
        assert_eq!(c.pending_close, vec![1]);
    }

    #[test]
    fn least_recently_used_is_evicted_and_closed() {
        let mut c = StmtCache::default();
        c.insert(key("a"), 1, 0, 2);
        c.insert(key("b"), 2, 0, 2);
        assert!(c.get(&key("a")).is_some()); // b is now the least recently used
        c.insert(key("c"), 3, 0, 2);
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(&key("b")), None);
        assert_eq!(c.pending_close, vec![2]);
    }
}
