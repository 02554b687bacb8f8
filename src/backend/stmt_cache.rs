//! Statements prepared on one backend connection, keyed by (database, SQL): one backend
//! statement per key, the replaced or least recently used one closed on the server.

use smallvec::SmallVec;
use std::sync::Arc;

pub type StmtKey = (Option<String>, Arc<str>);

#[derive(Debug, Clone)]
struct Entry {
    db: Option<String>,
    sql: Arc<str>,
    id: u32,
    params: u16,
    used: u64,
}

/// The statements in a vector, indexed by SQL (then the database), so that a lookup borrows
/// both (executions look up their statement every time: no allocation for it). A caller
/// that keeps where its statement was (`get_hinted`) has that position checked first, by
/// comparing the entry's text and database: no hash and no probe when it is still there.
#[derive(Debug, Default, Clone)]
pub struct StmtCache {
    entries: Vec<Entry>,
    /// Positions in `entries` of each SQL's statements (one per database).
    index: ahash::AHashMap<Arc<str>, SmallVec<[usize; 1]>>,
    tick: u64,
    /// Backend statement ids to close (COM_STMT_CLOSE, no reply) before the next command.
    pub pending_close: Vec<u32>,
}

impl StmtCache {
    /// The backend statement id and parameter count of `sql` prepared in `db`, marked as
    /// just used.
    pub fn get(&mut self, db: Option<&str>, sql: &str) -> Option<(u32, u16)> {
        let mut no_hint = usize::MAX;
        self.get_hinted(&mut no_hint, db, sql)
    }

    /// `get`, trying position `hint` first (any value: it is checked by content) and
    /// leaving there where the statement was found.
    pub fn get_hinted(
        &mut self,
        hint: &mut usize,
        db: Option<&str>,
        sql: &str,
    ) -> Option<(u32, u16)> {
        self.tick += 1;
        let at = match self.entries.get(*hint) {
            Some(e) if *e.sql == *sql && e.db.as_deref() == db => *hint,
            _ => self.position(db, sql)?,
        };
        *hint = at;
        let e = &mut self.entries[at];
        e.used = self.tick;
        Some((e.id, e.params))
    }

    /// Records a statement prepared on the server. A statement it replaces is closed; past
    /// `cap` statements the least recently used one is closed.
    pub fn insert(&mut self, (db, sql): StmtKey, id: u32, params: u16, cap: usize) {
        self.tick += 1;
        match self.position(db.as_deref(), &sql) {
            Some(i) => {
                let old = &mut self.entries[i];
                if old.id != id {
                    self.pending_close.push(old.id);
                }
                (old.id, old.params, old.used) = (id, params, self.tick);
            }
            None => {
                self.index
                    .entry(sql.clone())
                    .or_default()
                    .push(self.entries.len());
                self.entries.push(Entry {
                    db,
                    sql,
                    id,
                    params,
                    used: self.tick,
                });
            }
        }
        while self.entries.len() > cap.max(1) {
            let Some(at) = self.least_recently_used() else {
                break;
            };
            self.remove_at(at);
        }
    }

    /// Where `sql` prepared in `db` is in `entries`, by the index.
    fn position(&self, db: Option<&str>, sql: &str) -> Option<usize> {
        let list = self.index.get(sql)?;
        list.iter()
            .copied()
            .find(|&i| self.entries[i].db.as_deref() == db)
    }

    /// Closes the statement at `at`; the last entry takes its place.
    fn remove_at(&mut self, at: usize) {
        let gone = self.entries.swap_remove(at);
        if let Some(list) = self.index.get_mut(&gone.sql) {
            list.retain(|i| *i != at);
            if list.is_empty() {
                self.index.remove(&gone.sql);
            }
        }
        let moved_from = self.entries.len();
        if let Some(moved) = self.entries.get(at) {
            if let Some(list) = self.index.get_mut(&moved.sql) {
                for i in list.iter_mut().filter(|i| **i == moved_from) {
                    *i = at;
                }
            }
        }
        self.pending_close.push(gone.id);
    }

    fn least_recently_used(&self) -> Option<usize> {
        self.entries
            .iter()
            .enumerate()
            .min_by_key(|(_, e)| e.used)
            .map(|(i, _)| i)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
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

    #[test]
    fn a_hint_never_answers_for_another_statement() {
        let mut c = StmtCache::default();
        for (i, s) in ["a", "b", "c"].into_iter().enumerate() {
            c.insert(key(s), i as u32 + 1, i as u16, 3);
        }
        let mut ha = usize::MAX;
        assert_eq!(c.get_hinted(&mut ha, None, "a"), Some((1, 0)));
        assert_eq!(ha, 0);
        let mut other_db = ha; // "a"'s position, for "a" in another database
        assert_eq!(c.get_hinted(&mut other_db, Some("d"), "a"), None);
        assert_eq!(c.get(None, "b"), Some((2, 1)));
        assert_eq!(c.get(None, "c"), Some((3, 2)));
        // "a" is the least recently used: it goes, the last entry ("d") takes its position
        c.insert(key("d"), 4, 3, 3);
        assert_eq!(c.get_hinted(&mut ha, None, "a"), None);
        let mut hd = 0; // where "a" was: "d" now
        assert_eq!(c.get_hinted(&mut hd, None, "d"), Some((4, 3)));
        let mut hc = 0;
        assert_eq!(
            c.get_hinted(&mut hc, None, "c"),
            Some((3, 2)),
            "found by the index"
        );
        assert_eq!(hc, 2);
        assert_eq!(c.get(None, "b"), Some((2, 1)));
        // a replacement keeps the position and changes the id
        c.insert(key("b"), 9, 1, 3);
        assert_eq!(c.get(None, "b"), Some((9, 1)));
        assert_eq!((c.len(), c.pending_close.clone()), (3, vec![1, 2]));
    }
}
