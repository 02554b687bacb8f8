//! Streams one command's response from a backend to a client, packet by packet.
//!
//! Rows are never decoded: only the first byte and length of each packet are inspected to find
//! the end of a result set. Sequence ids are renumbered for the client, and EOF/OK framing is
//! translated when the client and the backend negotiated CLIENT_DEPRECATE_EOF differently.

use super::packet::{PacketReader, PacketWriter};
use super::reply::{self, OkInfo};
use super::{lenenc, status, MAX_PAYLOAD};
use std::io;
use tokio::io::{AsyncRead, AsyncWrite};

/// What kind of response follows the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// COM_QUERY / COM_STMT_EXECUTE: OK, ERR, LOCAL INFILE, or result sets (maybe several).
    ResultSets,
    /// COM_STMT_FETCH: rows then a terminator, or ERR.
    Rows,
    /// COM_STMT_PREPARE: prepare-OK, parameter and column definitions, or ERR.
    Prepare,
    /// COM_FIELD_LIST: column definitions then a terminator, or ERR.
    FieldList,
    /// Exactly one packet (OK, ERR, or the COM_STATISTICS string).
    Single,
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("backend connection failed")]
    Backend(#[source] io::Error),
    #[error("client connection failed")]
    Client(#[source] io::Error),
    #[error("backend sent an unexpected packet: {0}")]
    Protocol(&'static str),
}

/// Whether `command` is a COM_STMT_EXECUTE that asks for a cursor (its flags byte).
pub fn cursor_asked(command: &[u8]) -> bool {
    command.first() == Some(&super::cmd::STMT_EXECUTE)
        && command.get(5).is_some_and(|f| f & 0x07 != 0)
}

/// What the caller learns from a relayed response.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    /// Server status flags of the final OK/EOF (or the hint when the response had none).
    pub status: u16,
    /// The last OK packet seen (not result-set terminators).
    pub ok: Option<OkInfo>,
    /// The ERR payload, when the response ended in an error.
    pub err: Option<Vec<u8>>,
    /// COM_STMT_PREPARE: (backend statement id, columns, params).
    pub prepared: Option<(u32, u16, u16)>,
    /// Warning count of the final OK or terminator.
    pub warnings: u16,
    /// Number of packets written to the client.
    pub sent: u32,
    /// Rows relayed (counted by packet, never decoded).
    pub rows: u64,
    /// Checksum of the reply's content (see `Relay::digest`); 0 when not computed.
    pub digest: u64,
}

/// Borrowed streams and framing for one response.
pub struct Relay<'a, BR, BW: AsyncWrite, CR, CW: AsyncWrite> {
    pub backend_r: &'a mut PacketReader<BR>,
    pub backend_w: &'a mut PacketWriter<BW>,
    /// Where the response goes; `None` swallows it (realignment commands, silent prepares).
    pub client_w: Option<&'a mut PacketWriter<CW>>,
    /// Needed only to stream LOAD DATA LOCAL INFILE contents.
    pub client_r: Option<&'a mut PacketReader<CR>>,
    pub client_deprecate_eof: bool,
    pub backend_deprecate_eof: bool,
    /// Status flags to put in synthesized EOFs before the real status is known.
    pub status_hint: u16,
    /// COM_STMT_PREPARE: statement id to show the client instead of the backend's.
    pub stmt_id_for_client: Option<u32>,
    /// The response is to a COM_STMT_EXECUTE that asked for a cursor (`cursor_asked`): a
    /// result set whose definitions end with CURSOR_EXISTS is one (rows come with
    /// COM_STMT_FETCH). Other responses can carry the flag too (MariaDB leaves it set after
    /// a stored program's own cursor), and their rows follow.
    pub cursor_asked: bool,
    /// The reply may reach the client before the session's bookkeeping after it (a read
    /// that changes nothing others could see): a small whole reply is then written from the
    /// read buffer without a copy. Otherwise it is buffered, and the session flushes it
    /// after its bookkeeping (a write's cache invalidation before the client sees its OK).
    pub reply_early: bool,
    pub buf: &'a mut Vec<u8>,
    pub out_seq: u8,
    pub outcome: Outcome,
    /// When set, a checksum of what the reply says (column definitions, rows, affected rows,
    /// insert id, error code; not status flags or session-tracking data, which differ from
    /// server to server) for transaction replay. Off: no cost.
    pub digest: Option<std::hash::DefaultHasher>,
    backend_seq: u8,
    /// Classic-framing client, modern backend: the EOF after column definitions is still due.
    pending_eof: bool,
}

impl<'a, BR, BW, CR, CW> Relay<'a, BR, BW, CR, CW>
where
    BR: AsyncRead + Unpin,
    BW: AsyncWrite + Unpin,
    CR: AsyncRead + Unpin,
    CW: AsyncWrite + Unpin,
{
    /// A relay that swallows the response (`client_w` None) with both sides in the backend's
    /// framing; set the public fields to stream to a client.
    pub fn new(
        backend_r: &'a mut PacketReader<BR>,
        backend_w: &'a mut PacketWriter<BW>,
        backend_deprecate_eof: bool,
        buf: &'a mut Vec<u8>,
    ) -> Self {
        Self {
            backend_r,
            backend_w,
            client_w: None,
            client_r: None,
            client_deprecate_eof: backend_deprecate_eof,
            backend_deprecate_eof,
            status_hint: status::AUTOCOMMIT,
            stmt_id_for_client: None,
            cursor_asked: false,
            reply_early: false,
            buf,
            out_seq: 1,
            outcome: Outcome::default(),
            digest: None,
            backend_seq: 0,
            pending_eof: false,
        }
    }

    async fn read(&mut self) -> Result<usize, RelayError> {
        if let Some(seq) = self.backend_r.take_physical(self.buf) {
            self.backend_seq = seq;
            return Ok(self.buf.len());
        }
        self.backend_seq = self
            .backend_r
            .read_physical_fast(self.buf)
            .await
            .map_err(RelayError::Backend)?;
        Ok(self.buf.len())
    }

    async fn forward(&mut self) -> Result<(), RelayError> {
        if let Some(w) = self.client_w.as_deref_mut() {
            if !w.push_physical(self.out_seq, self.buf) {
                w.write_physical(self.out_seq, self.buf)
                    .await
                    .map_err(RelayError::Client)?;
            }
            self.out_seq = self.out_seq.wrapping_add(1);
            self.outcome.sent += 1;
        }
        Ok(())
    }

    /// `forward` for a packet of Sluice's own (a translated terminator). The two bodies stay
    /// separate: one shared async helper costs ~140 instructions per statement (callgrind).
    async fn emit(&mut self, payload: &[u8]) -> Result<(), RelayError> {
        if let Some(w) = self.client_w.as_deref_mut() {
            if !w.push_physical(self.out_seq, payload) {
                w.write_physical(self.out_seq, payload)
                    .await
                    .map_err(RelayError::Client)?;
            }
            self.out_seq = self.out_seq.wrapping_add(1);
            self.outcome.sent += 1;
        }
        Ok(())
    }

    /// Forwards a packet that may be continued (length == MAX_PAYLOAD) with its continuations.
    async fn forward_long(&mut self, mut len: usize) -> Result<(), RelayError> {
        self.hash(self.buf.len() as u64);
        self.forward().await?;
        while len == MAX_PAYLOAD {
            len = self.read().await?;
            self.hash(0);
            self.forward().await?;
        }
        Ok(())
    }

    /// Adds the packet in `buf` (and `extra`) to the reply checksum, when one is kept.
    fn hash(&mut self, extra: u64) {
        use std::hash::Hasher;
        if let Some(h) = self.digest.as_mut() {
            h.write(self.buf);
            h.write_u64(extra);
        }
    }

    fn hash_ok(&mut self, ok: &OkInfo) {
        use std::hash::Hasher;
        if let Some(h) = self.digest.as_mut() {
            h.write_u64(ok.affected_rows);
            h.write_u64(ok.last_insert_id);
        }
    }

    fn is_terminator(&self, len: usize) -> bool {
        self.buf.first() == Some(&0xFE)
            && if self.backend_deprecate_eof {
                len < MAX_PAYLOAD
            } else {
                len < 9
            }
    }

    /// Status and warnings of the terminator in `buf`.
    fn terminator_fields(&self) -> Result<(u16, u16), RelayError> {
        if self.backend_deprecate_eof {
            let ok =
                reply::parse_ok(self.buf).ok_or(RelayError::Protocol("short OK terminator"))?;
            Ok((ok.status, ok.warnings))
        } else {
            let (w, s) = reply::parse_eof(self.buf).ok_or(RelayError::Protocol("short EOF"))?;
            Ok((s, w))
        }
    }

    /// Forwards the terminator in `buf`, translated to the client's framing; returns status.
    async fn forward_terminator(&mut self) -> Result<u16, RelayError> {
        let (st, warnings) = self.terminator_fields()?;
        self.outcome.warnings = warnings;
        if self.client_deprecate_eof == self.backend_deprecate_eof {
            self.forward().await?;
        } else {
            let t = reply::terminator(self.client_deprecate_eof, st, warnings);
            self.emit(&t).await?;
        }
        Ok(st)
    }

    async fn finish_err(&mut self) -> Result<(), RelayError> {
        if let Some(h) = self.digest.as_mut() {
            std::hash::Hasher::write(h, self.buf.get(..3).unwrap_or_default());
        }
        self.outcome.err = Some(self.buf.clone());
        self.forward().await
    }

    /// Forwards `n` definition packets and the EOF that follows them in classic framing.
    /// For a result set's columns (`result_set`), returns the status when the definitions end
    /// the response: a server-side cursor was opened and rows come with COM_STMT_FETCH.
    async fn forward_definitions(
        &mut self,
        n: u64,
        result_set: bool,
    ) -> Result<Option<u16>, RelayError> {
        for _ in 0..n {
            let len = self.read().await?;
            if self.buf.first() == Some(&0xFF) {
                return Err(RelayError::Protocol("error inside column definitions"));
            }
            self.forward_long(len).await?;
        }
        if n == 0 {
            return Ok(None);
        }
        if !self.backend_deprecate_eof {
            self.read().await?;
            if self.buf.first() != Some(&0xFE) {
                return Err(RelayError::Protocol("missing EOF after definitions"));
            }
            let (warnings, st) = reply::parse_eof(self.buf).unwrap_or_default();
            if result_set && self.cursor_asked && st & status::CURSOR_EXISTS != 0 {
                if self.client_deprecate_eof {
                    let t = reply::ok_terminator(st, warnings);
                    self.emit(&t).await?;
                } else {
                    self.forward().await?;
                }
                return Ok(Some(st));
            }
            if !self.client_deprecate_eof {
                self.forward().await?;
            }
        } else if !self.client_deprecate_eof {
            if result_set {
                // decided by the next packet: a cursor response has exactly one EOF here
                self.pending_eof = true;
            } else {
                let t = reply::eof(self.status_hint, 0);
                self.emit(&t).await?;
            }
        }
        Ok(None)
    }

    /// The reply of a `ResultSets` command forwarded without waiting when it is wholly
    /// buffered and fits the client's buffer (a point select's): `false`, nothing done (call
    /// `run`).
    pub fn run_now(&mut self, expect: Expect) -> bool {
        if !matches!(expect, Expect::ResultSets)
            || self.backend_r.unread().len() >= whole::PASS_THROUGH_MIN
        {
            return false; // a larger reply may be written through: `run` walks it once
        }
        self.outcome.status = self.status_hint;
        self.forward_whole_now() == Ok(true)
    }

    /// Runs the relay to the end of the response. After an error, `out_seq` and
    /// `outcome.sent` tell what the client already received.
    pub async fn run(&mut self, expect: Expect) -> Result<(), RelayError> {
        let r = self.run_inner(expect).await;
        if let Some(h) = &self.digest {
            self.outcome.digest = std::hash::Hasher::finish(h);
        }
        r
    }

    async fn run_inner(&mut self, expect: Expect) -> Result<(), RelayError> {
        self.outcome.status = self.status_hint;
        match expect {
            Expect::ResultSets => self.result_sets().await?,
            Expect::Rows => {
                let st = self.rows().await?;
                self.outcome.status = st.unwrap_or(self.status_hint);
            }
            Expect::Prepare => self.prepare().await?,
            Expect::FieldList => self.field_list().await?,
            Expect::Single => {
                let len = self.read().await?;
                match self.buf.first() {
                    Some(0xFF) => self.finish_err().await?,
                    Some(0x00) => {
                        self.outcome.ok = reply::parse_ok(self.buf);
                        if let Some(ok) = self.outcome.ok {
                            self.outcome.status = ok.status;
                        }
                        self.forward().await?;
                    }
                    _ => self.forward_long(len).await?,
                }
            }
        }
        Ok(())
    }

    /// Forwards the rows that are wholly in the read buffer straight into the client's
    /// buffer: one copy each, no future, nothing inspected but the first byte. Anything else
    /// (a terminator, an error, a continued packet, a full client buffer) is left to `rows`.
    fn forward_buffered_rows(&mut self) {
        if self.digest.is_some() || self.pending_eof {
            return;
        }
        let Some(w) = self.client_w.as_deref_mut() else {
            return;
        };
        while let Some((payload, seq)) = self.backend_r.peek_physical() {
            let plain = !matches!(payload.first(), None | Some(0xFE | 0xFF));
            if !plain || payload.len() >= MAX_PAYLOAD || !w.push_physical(self.out_seq, payload) {
                return;
            }
            let len = payload.len();
            self.backend_r.consume_physical(len);
            self.backend_seq = seq;
            self.out_seq = self.out_seq.wrapping_add(1);
            self.outcome.sent += 1;
            self.outcome.rows += 1;
        }
    }

    /// Rows until a terminator; `None` when the response ended with ERR.
    async fn rows(&mut self) -> Result<Option<u16>, RelayError> {
        loop {
            self.forward_buffered_rows();
            let len = self.read().await?;
            if std::mem::take(&mut self.pending_eof) {
                if self.is_terminator(len) {
                    let (st, warnings) = self.terminator_fields()?;
                    if self.cursor_asked && st & status::CURSOR_EXISTS != 0 {
                        self.outcome.warnings = warnings;
                        let t = reply::eof(st, warnings);
                        self.emit(&t).await?;
                        return Ok(Some(st));
                    }
                }
                let t = reply::eof(self.status_hint, 0);
                self.emit(&t).await?;
            }
            match self.buf.first() {
                Some(0xFF) => {
                    self.finish_err().await?;
                    return Ok(None);
                }
                Some(0xFE) if self.is_terminator(len) => {
                    return self.forward_terminator().await.map(Some);
                }
                _ => {
                    self.outcome.rows += 1;
                    self.forward_long(len).await?
                }
            }
        }
    }

    async fn result_sets(&mut self) -> Result<(), RelayError> {
        if self.forward_whole().await? {
            return Ok(());
        }
        loop {
            let len = self.read().await?;
            let st = match self.buf.first().copied() {
                Some(0x00) => {
                    let ok = reply::parse_ok(self.buf).ok_or(RelayError::Protocol("short OK"))?;
                    self.hash_ok(&ok);
                    self.outcome.ok = Some(ok);
                    self.outcome.warnings = ok.warnings;
                    self.forward().await?;
                    ok.status
                }
                Some(0xFF) => return self.finish_err().await,
                Some(0xFB) => {
                    self.forward().await?;
                    self.local_infile().await?;
                    continue;
                }
                Some(_) => {
                    let mut pos = 0;
                    let cols = lenenc::read_int(self.buf, &mut pos)
                        .ok_or(RelayError::Protocol("bad column count"))?;
                    self.forward_long(len).await?;
                    if let Some(st) = self.forward_definitions(cols, true).await? {
                        self.outcome.status = st;
                        return Ok(()); // cursor opened
                    }
                    match self.rows().await? {
                        Some(st) => st,
                        None => return Ok(()),
                    }
                }
                None => return Err(RelayError::Protocol("empty packet")),
            };
            self.outcome.status = st;
            if st & status::MORE_RESULTS == 0 {
                return Ok(());
            }
        }
    }

    /// LOAD DATA LOCAL INFILE: stream the client's file packets to the backend until the
    /// empty packet, then the backend's reply follows as a normal result.
    async fn local_infile(&mut self) -> Result<(), RelayError> {
        let Some(client_r) = self.client_r.as_deref_mut() else {
            return Err(RelayError::Protocol(
                "LOCAL INFILE request without a client",
            ));
        };
        // the client must see the request before it sends the file
        if let Some(w) = self.client_w.as_deref_mut() {
            w.flush().await.map_err(RelayError::Client)?;
        }
        let mut backend_seq = self.backend_seq.wrapping_add(1);
        let mut data = Vec::new();
        loop {
            let _ = client_r
                .read_physical(&mut data)
                .await
                .map_err(RelayError::Client)?;
            self.out_seq = self.out_seq.wrapping_add(1);
            self.backend_w
                .write_physical(backend_seq, &data)
                .await
                .map_err(RelayError::Backend)?;
            backend_seq = backend_seq.wrapping_add(1);
            if data.is_empty() {
                break;
            }
        }
        self.backend_w.flush().await.map_err(RelayError::Backend)
    }

    async fn prepare(&mut self) -> Result<(), RelayError> {
        self.read().await?;
        match self.buf.first() {
            Some(0xFF) => return self.finish_err().await,
            Some(0x00) if self.buf.len() >= 9 => {}
            _ => return Err(RelayError::Protocol("bad prepare response")),
        }
        let id = lenenc::u32_at(self.buf, 1).unwrap_or(0);
        let cols = lenenc::u16_at(self.buf, 5).unwrap_or(0);
        let params = lenenc::u16_at(self.buf, 7).unwrap_or(0);
        self.outcome.prepared = Some((id, cols, params));
        if let Some(client_id) = self.stmt_id_for_client {
            self.buf[1..5].copy_from_slice(&client_id.to_le_bytes());
        }
        self.forward().await?;
        self.forward_definitions(params as u64, false).await?;
        self.forward_definitions(cols as u64, false)
            .await
            .map(|_| ())
    }

    async fn field_list(&mut self) -> Result<(), RelayError> {
        loop {
            let len = self.read().await?;
            match self.buf.first() {
                Some(0xFF) => return self.finish_err().await,
                Some(0xFE) if self.is_terminator(len) => {
                    self.forward_terminator().await?;
                    return Ok(());
                }
                _ => self.forward_long(len).await?,
            }
        }
    }
}

mod whole;

#[cfg(test)]
mod tests;
