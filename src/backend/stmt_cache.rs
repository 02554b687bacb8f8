//! Statements prepared on one backend connection, keyed by (database, SQL): one backend
//! statement per key, the replaced or least recently used one closed on the server.

use std::sync::Arc;

pub type StmtKey = (Option<String>, Arc<str>);

#[derive(Debug, Clone)]
struct Entry {
    db: Option<String>,
    id: u32,
    params: u16,
    used: u64,
}

/// Keyed by SQL, then the database, so that a lookup borrows both (executions look up
/// their statement every time: no allocation for it).
#[derive(Debug, Default, Clone)]
pub struct StmtCache {
    map: ahash::AHashMap<Arc<str>, Vec<Entry>>,
    len: usize,
    tick: u64,
    /// Backend statement ids to close (COM_STMT_CLOSE, no reply) before the next command.
    pub pending_close: Vec<u32>,
}

impl StmtCache {
    /// The backend statement id and parameter count of `sql` prepared in `db`, marked as
    /// just used.
    pub fn get(&mut self, db: Option<&str>, sql: &str) -> Option<(u32, u16)> {
        self.tick += 1;
        let tick = self.tick;
        let e = self
            .map
            .get_mut(sql)?
            .iter_mut()
            .find(|e| e.db.as_deref() == db)?;
        e.used = tick;
        Some((e.id, e.params))
    }

    /// Records a statement prepared on the server. A statement it replaces is closed; past
    /// `cap` statements the least recently used one is closed.
    pub fn insert(&mut self, (db, sql): StmtKey, id: u32, params: u16, cap: usize) {
        self.tick += 1;
        let entry = Entry {
            db,
            id,
            params,
            used: self.tick,
        };
        let list = self.map.entry(sql).or_default();
        match list.iter_mut().find(|e| e.db == entry.db) {
            Some(old) => {
                if old.id != id {
                    self.pending_close.push(old.id);
                }
                *old = entry;
            }
            None => {
                list.push(entry);
                self.len += 1;
            }
        }
        while self.len > cap.max(1) {
            let Some((sql, at)) = self.least_recently_used() else {
                break;
            };
            let list = self.map.get_mut(&sql).expect("found above");
            let e = list.swap_remove(at);
            if list.is_empty() {
                self.map.remove(&sql);
            }
            self.len -= 1;
            self.pending_close.push(e.id);
        }
    }

    fn least_recently_used(&self) -> Option<(Arc<str>, usize)> {
        self.map
            .iter()
            .flat_map(|(sql, list)| list.iter().enumerate().map(move |(i, e)| (sql, i, e.used)))
            .min_by_key(|(_, _, used)| *used)
            .map(|(sql, i, _)| (sql.clone(), i))
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
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
        assert_eq!(c.get(None, "a"), Some((2, 0)));
        assert_eq!(c.pending_close, vec![1]);
    }

    #[test]
    fn least_recently_used_is_evicted_and_closed() {
        let mut c = StmtCache::default();
        c.insert(key("a"), 1, 0, 2);
        c.insert(key("b"), 2, 0, 2);
        assert!(c.get(None, "a").is_some()); // b is now the least recently used
        c.insert(key("c"), 3, 0, 2);
        assert_eq!(c.len(), 2);
        assert_eq!(c.get(None, "b"), None);
        assert_eq!(c.pending_close, vec![2]);
    }

    #[test]
    fn the_same_sql_in_two_databases_is_two_statements() {
        let mut c = StmtCache::default();
        c.insert((Some("d1".into()), Arc::from("a")), 1, 0, 10);
        c.insert((Some("d2".into()), Arc::from("a")), 2, 0, 10);
        c.insert(key("a"), 3, 0, 10);
        assert_eq!(c.len(), 3);
        assert_eq!(c.get(Some("d1"), "a"), Some((1, 0)));
        assert_eq!(c.get(Some("d2"), "a"), Some((2, 0)));
        assert_eq!(c.get(None, "a"), Some((3, 0)));
        assert_eq!(c.get(Some("d3"), "a"), None);
        c.insert((Some("d4".into()), Arc::from("b")), 4, 0, 3);
        // d1's (least recently used) went
        assert_eq!(c.len(), 3);
        assert_eq!(c.get(Some("d1"), "a"), None);
        assert_eq!(c.pending_close, vec![1]);
    }
}
