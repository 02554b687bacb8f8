//! `[stats]`: query digest statistics and the slow-query log.

use super::Dur;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Stats {
    /// Rows of digest statistics kept (per statement shape, user, database, backend and
    /// route); the least used make room for new ones, counted under "others".
    #[serde(default = "max_digests")]
    pub max_digests: usize,
    /// Statements slower than this are logged (target `sluice::slow`); absent: off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slow_query: Option<Dur>,
    /// The slow-query log shows literal values (otherwise `?`).
    #[serde(default)]
    pub log_values: bool,
}

fn max_digests() -> usize {
    5_000
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            max_digests: max_digests(),
            slow_query: None,
            log_values: false,
        }
    }
}
