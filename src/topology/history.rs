//! Which transactions a server holds, for decisions that must not mistake one history for
//! another (rejoining a returning primary, errant transactions at promotion, a switchover's
//! target). MariaDB: `gtid_binlog_state`, the last sequence number each server wrote in each
//! domain, compared per (domain, server id); two servers that wrote the same sequence
//! number in a domain hold different transactions. MySQL: `gtid_executed` sets, compared
//! exactly. (Read-your-writes keeps the cheaper per-domain `GtidSet`.)

use super::gtid::GtidSet;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    /// MariaDB: (domain, server id) -> last sequence number.
    mariadb: BTreeMap<(u32, u32), u64>,
    /// MySQL: the executed set.
    mysql: GtidSet,
}

impl History {
    /// A server's history from `Dialect::history`'s row: MariaDB's binlog state merged with
    /// its replica position (a replica without `log_slave_updates` logs nothing it applies).
    pub fn of(row: &crate::backend::QueryResult) -> History {
        let mut h = History::parse(row.get("h").unwrap_or(""));
        for (k, n) in History::parse(row.get("s").unwrap_or("")).mariadb {
            let e = h.mariadb.entry(k).or_default();
            *e = (*e).max(n);
        }
        h
    }

    /// Parses a MariaDB `gtid_binlog_state` or a MySQL `gtid_executed`.
    pub fn parse(s: &str) -> History {
        let mut h = History::default();
        let mut mysql = String::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part.contains(':') {
                mysql.push_str(part);
                mysql.push(',');
                continue;
            }
            let f: Vec<&str> = part.split('-').collect();
            if let [d, s, n] = f[..] {
                if let (Ok(d), Ok(s), Ok(n)) = (d.parse(), s.parse(), n.parse::<u64>()) {
                    let e = h.mariadb.entry((d, s)).or_default();
                    *e = (*e).max(n);
                }
            }
        }
        h.mysql = GtidSet::parse(&mysql);
        h
    }

    /// The part written by server `me` (MariaDB server id, or MySQL server uuid).
    pub fn own(&self, me: &str) -> History {
        let mariadb = self
            .mariadb
            .iter()
            .filter(|((_, s), _)| s.to_string() == me)
            .map(|(k, v)| (*k, *v))
            .collect();
        History {
            mariadb,
            mysql: self.mysql.only_source(me),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.mariadb.is_empty() && self.mysql.is_empty()
    }

    /// Whether every transaction of `other` is in this history.
    pub fn contains(&self, other: &History) -> bool {
        self.missing(other).is_empty()
    }

    /// What `other` holds that this history lacks, readable (empty: nothing).
    pub fn missing(&self, other: &History) -> String {
        let mut out: Vec<String> = other
            .mariadb
            .iter()
            .filter(|(k, n)| self.mariadb.get(k).is_none_or(|have| have < n))
            .map(|((d, s), n)| match self.mariadb.get(&(*d, *s)) {
                Some(have) if have + 1 < *n => format!("{d}-{s}-{} to {d}-{s}-{n}", have + 1),
                _ => format!("{d}-{s}-{n}"),
            })
            .collect();
        if !self.mysql.contains(&other.mysql) {
            out.push(format!("some of {}", other.mysql.text()));
        }
        out.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_sequence_number_from_another_server_is_another_transaction() {
        // the old primary (server 1) wrote 0-1-5197 that never replicated; the new primary
        // (server 3) went on with 0-3-5197
        let new_primary = History::parse("0-1-5196,0-3-5197");
        let old_primary = History::parse("0-1-5197");
        assert!(!new_primary.contains(&old_primary));
        assert_eq!(new_primary.missing(&old_primary), "0-1-5197");
        assert_eq!(
            History::parse("0-1-5190").missing(&old_primary),
            "0-1-5191 to 0-1-5197"
        );
        // had it replicated, the new primary would hold it
        assert!(History::parse("0-1-5197,0-3-5300").contains(&old_primary));
    }

    #[test]
    fn histories_compare_per_domain_and_server() {
        let have = History::parse("0-1-100,0-2-40,1-2-7");
        assert!(have.contains(&History::parse("0-1-99,0-2-40")));
        assert!(have.contains(&History::parse("")));
        assert!(!have.contains(&History::parse("1-1-1")));
        assert!(!have.contains(&History::parse("0-2-41")));
        assert_eq!(have.own("2"), History::parse("0-2-40,1-2-7"));
    }

    #[test]
    fn mysql_sets_compare_exactly() {
        let have = History::parse("aaaa:1-10,bbbb:1-3");
        assert!(have.contains(&History::parse("aaaa:2-9")));
        assert!(!have.contains(&History::parse("aaaa:11")));
        assert_eq!(have.own("bbbb"), History::parse("bbbb:1-3"));
    }
}
