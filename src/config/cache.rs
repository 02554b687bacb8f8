//! `[cache]`: the result cache's memory bounds and how it learns about writes it did not see.
//! What is cached is chosen by rules (`cache_ttl`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Cache {
    /// Bytes of cached replies kept in all (keys and bookkeeping included); the least used
    /// entries make room.
    #[serde(default = "max_memory")]
    pub max_memory: u64,
    /// A reply larger than this streams as usual and is not kept.
    #[serde(default = "max_entry_size")]
    pub max_entry_size: usize,
    /// Follow the primary's binary log (a replication client) so that writes that do not
    /// pass through this Sluice invalidate entries too. Off: such writes are seen only
    /// when an entry's TTL ends.
    #[serde(default = "yes")]
    pub binlog: bool,
    /// The server id Sluice's binary log client registers with (unique among the
    /// primary's replicas and other Sluice instances). Absent: a random one in
    /// 1073741824-2147483647, drawn at start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binlog_server_id: Option<u32>,
}

fn max_memory() -> u64 {
    64 << 20
}

fn max_entry_size() -> usize {
    1 << 20
}

fn yes() -> bool {
    true
}

impl Default for Cache {
    fn default() -> Self {
        Cache {
            max_memory: max_memory(),
            max_entry_size: max_entry_size(),
            binlog: true,
            binlog_server_id: None,
        }
    }
}
