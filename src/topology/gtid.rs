//! GTID positions: MariaDB `domain-server-seq` lists and MySQL `uuid:interval` sets, and the
//! one question routing asks of them: has this replica applied that write?

use std::collections::HashMap;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GtidSet {
    /// MariaDB: domain -> highest sequence number applied.
    mariadb: HashMap<u32, u64>,
    /// MySQL: source uuid -> executed intervals (inclusive).
    mysql: HashMap<String, Vec<(u64, u64)>>,
}

impl GtidSet {
    pub fn parse(s: &str) -> GtidSet {
        let mut set = GtidSet::default();
        // MySQL sets may continue an entry on the next line
        let cleaned: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        for part in cleaned.split(',').filter(|p| !p.is_empty()) {
            if let Some((uuid, ranges)) = part.split_once(':') {
                let iv = set.mysql.entry(uuid.to_ascii_lowercase()).or_default();
                for r in ranges.split(':') {
                    let (a, b) = r.split_once('-').unwrap_or((r, r));
                    if let (Ok(a), Ok(b)) = (a.parse(), b.parse()) {
                        iv.push((a, b));
                    }
                }
            } else {
                let f: Vec<&str> = part.split('-').collect();
                if let [d, _server, n] = f[..] {
                    if let (Ok(d), Ok(n)) = (d.parse::<u32>(), n.parse::<u64>()) {
                        let e = set.mariadb.entry(d).or_default();
                        *e = (*e).max(n);
                    }
                }
            }
        }
        set
    }

    pub fn is_empty(&self) -> bool {
        self.mariadb.is_empty() && self.mysql.is_empty()
    }

    /// The MySQL part of this set that came from source `uuid`.
    pub fn only_source(&self, uuid: &str) -> GtidSet {
        let mysql = self
            .mysql
            .iter()
            .filter(|(u, _)| u.eq_ignore_ascii_case(uuid))
            .map(|(u, iv)| (u.clone(), iv.clone()))
            .collect();
        GtidSet {
            mariadb: Default::default(),
            mysql,
        }
    }

    /// The MySQL part in `uuid:a-b` form (for messages).
    pub fn text(&self) -> String {
        let mut parts: Vec<String> = self
            .mysql
            .iter()
            .map(|(u, iv)| {
                let ranges: Vec<String> = iv.iter().map(|(a, b)| format!("{a}-{b}")).collect();
                format!("{u}:{}", ranges.join(":"))
            })
            .collect();
        parts.sort();
        parts.join(",")
    }

    /// Whether everything in `needed` is contained in this set.
    pub fn contains(&self, needed: &GtidSet) -> bool {
        let maria = needed
            .mariadb
            .iter()
            .all(|(d, n)| self.mariadb.get(d).is_some_and(|have| have >= n));
        let my = needed.mysql.iter().all(|(uuid, ivs)| {
            let have = self.mysql.get(uuid);
            ivs.iter()
                .all(|&(a, b)| have.is_some_and(|h| h.iter().any(|&(x, y)| x <= a && b <= y)))
        });
        maria && my
    }
}

/// The newest write any session made through this Sluice (`read_your_writes = "global"`):
/// its GTID set and that set as text.
pub type GlobalWrite = arc_swap::ArcSwapOption<(std::sync::Arc<GtidSet>, String)>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mariadb_positions() {
        let have = GtidSet::parse("0-1-120,1-2-5");
        assert!(have.contains(&GtidSet::parse("0-1-120")));
        assert!(have.contains(&GtidSet::parse("0-3-100")));
        assert!(!have.contains(&GtidSet::parse("0-1-121")));
        assert!(!have.contains(&GtidSet::parse("2-1-1")));
        assert!(have.contains(&GtidSet::parse("")));
    }

    #[test]
    fn mysql_sets() {
        let have = GtidSet::parse("3E11FA47-71CA-11E1-9E33-C80AA9429562:1-50:60-70,\n aaaa:1-3");
        assert!(have.contains(&GtidSet::parse("3e11fa47-71ca-11e1-9e33-c80aa9429562:23")));
        assert!(have.contains(&GtidSet::parse(
            "3e11fa47-71ca-11e1-9e33-c80aa9429562:60-65,aaaa:2"
        )));
        assert!(!have.contains(&GtidSet::parse("3e11fa47-71ca-11e1-9e33-c80aa9429562:55")));
        assert!(!have.contains(&GtidSet::parse("bbbb:1")));
    }
}
