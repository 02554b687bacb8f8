//! MySQL client/server wire protocol: framing, typed replies, response relaying.
//!
//! Packet structures (handshake, auth, errors) come from `mysql_common`; this module adds
//! the tokio framing and the pieces a proxy needs that a client library does not.

pub mod compress;
pub mod lenenc;
pub mod packet;
pub mod relay;
pub mod reply;
pub(crate) mod sock;
pub mod stmt;
pub mod stream;

pub use mysql_common::constants::{CapabilityFlags, StatusFlags};

/// Largest payload of one physical packet; a logical packet of this size or more is split.
pub const MAX_PAYLOAD: usize = 0xFF_FFFF;

/// Command bytes (first byte of a client command packet).
pub mod cmd {
    pub const QUIT: u8 = 0x01;
    pub const INIT_DB: u8 = 0x02;
    pub const QUERY: u8 = 0x03;
    pub const FIELD_LIST: u8 = 0x04;
    pub const STATISTICS: u8 = 0x09;
    pub const PROCESS_KILL: u8 = 0x0C;
    pub const PING: u8 = 0x0E;
    pub const CHANGE_USER: u8 = 0x11;
    pub const BINLOG_DUMP: u8 = 0x12;
    pub const REGISTER_SLAVE: u8 = 0x15;
    pub const STMT_PREPARE: u8 = 0x16;
    pub const STMT_EXECUTE: u8 = 0x17;
    pub const STMT_SEND_LONG_DATA: u8 = 0x18;
    pub const STMT_CLOSE: u8 = 0x19;
    pub const STMT_RESET: u8 = 0x1A;
    pub const SET_OPTION: u8 = 0x1B;
    pub const STMT_FETCH: u8 = 0x1C;
    pub const BINLOG_DUMP_GTID: u8 = 0x1E;
    pub const RESET_CONNECTION: u8 = 0x1F;
}

/// Status flag bits used on the hot path (raw u16 to avoid conversions).
pub mod status {
    pub const IN_TRANS: u16 = 0x0001;
    pub const AUTOCOMMIT: u16 = 0x0002;
    pub const MORE_RESULTS: u16 = 0x0008;
    pub const CURSOR_EXISTS: u16 = 0x0040;
    pub const LAST_ROW_SENT: u16 = 0x0080;
}
