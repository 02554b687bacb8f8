//! Packet framing over any tokio byte stream: 3-byte length, 1-byte sequence id, payload.
//!
//! Physical packets are at most 16 MiB - 1; a logical packet of that size is continued by the
//! next physical packet. Readers and writers here are buffered; callers flush explicitly once
//! per reply so a small response costs one `write` syscall. Buffers are allocated on demand
//! and can be released while a connection is idle.

use super::MAX_PAYLOAD;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

const BUF_SIZE: usize = 16 * 1024;
/// The read buffer's first size; it doubles (up to `BUF_SIZE`) when a read fills it.
const FIRST_BUF: usize = 1024;

/// Error reading a logical packet that was larger than the allowed maximum. The stream has been
/// drained past the packet, so the connection stays usable.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("packet of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// The payload length in a physical packet header (its first three bytes).
pub fn payload_len(header: &[u8]) -> usize {
    u32::from_le_bytes([header[0], header[1], header[2], 0]) as usize
}

pub struct PacketReader<R> {
    inner: R,
    /// Bytes read from `inner` not yet consumed, from `pos`. Allocated on demand and
    /// released by `release_idle`, so an idle connection holds no buffer.
    buf: Vec<u8>,
    pos: usize,
}

impl<R: AsyncRead + Unpin> PacketReader<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            buf: Vec::new(),
            pos: 0,
        }
    }

    /// Copies buffered bytes into `out`; returns how many.
    fn take_buffered(&mut self, out: &mut [u8]) -> usize {
        let n = (self.buf.len() - self.pos).min(out.len());
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        n
    }

    async fn read_exact_into(&mut self, out: &mut [u8]) -> io::Result<()> {
        let mut filled = self.take_buffered(out);
        while filled < out.len() {
            if out.len() - filled >= BUF_SIZE {
                // large payloads go straight to their destination
                return self.inner.read_exact(&mut out[filled..]).await.map(|_| ());
            }
            self.fill().await?;
            filled += self.take_buffered(&mut out[filled..]);
        }
        Ok(())
    }

    /// One read into the (empty) buffer.
    async fn fill(&mut self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll_fill(cx)).await
    }

    /// `fill` as a poll: one `poll_read` into the buffer's spare room, no future around it.
    /// For an empty buffer (what is buffered is dropped).
    pub fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.buf.clear();
        self.pos = 0;
        // small at first (an idle client holds little), up to BUF_SIZE once reads fill it
        self.buf.reserve(FIRST_BUF);
        let mut room = tokio::io::ReadBuf::uninit(self.buf.spare_capacity_mut());
        if let Err(e) = std::task::ready!(Pin::new(&mut self.inner).poll_read(cx, &mut room)) {
            return Poll::Ready(Err(e));
        }
        let n = room.filled().len();
        if n == 0 {
            return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
        }
        // SAFETY: `ReadBuf` guarantees its first `n` (filled) bytes were initialised, and
        // they are the vector's spare room from index 0 (the vector was cleared)
        unsafe { self.buf.set_len(n) };
        if n == self.buf.capacity() && n < BUF_SIZE {
            self.buf.reserve(n); // the socket had more: twice the room next time
        }
        Poll::Ready(Ok(()))
    }

    /// Reads one physical packet into `buf`, taking it straight from the buffer when one read
    /// brought all of it (a command, a small reply: nearly always).
    pub async fn read_physical_fast(&mut self, buf: &mut Vec<u8>) -> io::Result<u8> {
        self.fill_if_empty().await?;
        self.read_physical(buf).await // takes it from the buffer when it is all there
    }

    /// Reads what has arrived when nothing is buffered (cancel-safe: nothing is lost when
    /// dropped while waiting); an error at end of stream.
    pub async fn fill_if_empty(&mut self) -> io::Result<()> {
        if self.buffered() == 0 {
            self.fill().await?;
        }
        Ok(())
    }

    /// Reads one physical packet header: (payload length, sequence id).
    pub async fn read_header(&mut self) -> io::Result<(usize, u8)> {
        let mut h = [0u8; 4];
        self.read_exact_into(&mut h).await?;
        Ok((payload_len(&h), h[3]))
    }

    /// Appends `len` payload bytes to `buf`. The buffer grows with the bytes that actually
    /// arrive (at most doubling), never to the announced length up front: a peer that
    /// announces 16 MiB and sends nothing costs 64 KiB.
    pub async fn read_payload(&mut self, len: usize, buf: &mut Vec<u8>) -> io::Result<()> {
        const FIRST_CHUNK: usize = 64 * 1024;
        let end = buf.len() + len;
        while buf.len() < end {
            let start = buf.len();
            let chunk = (end - start).min(start.max(FIRST_CHUNK));
            buf.resize(start + chunk, 0);
            self.read_exact_into(&mut buf[start..]).await?;
        }
        Ok(())
    }

    /// Discards `len` payload bytes.
    pub async fn skip_payload(&mut self, mut len: usize) -> io::Result<()> {
        let mut scratch = vec![0u8; len.min(64 * 1024)];
        while len > 0 {
            let n = len.min(scratch.len());
            self.read_exact_into(&mut scratch[..n]).await?;
            len -= n;
        }
        Ok(())
    }

    /// Reads one packet of at most `limit` bytes without reading ahead, so that what the peer
    /// sends next (a TLS ClientHello after an SSL request) stays in the socket.
    pub async fn read_packet_exact(
        &mut self,
        buf: &mut Vec<u8>,
        limit: usize,
    ) -> Result<u8, ReadError> {
        debug_assert_eq!(self.buffered(), 0);
        let mut h = [0u8; 4];
        self.inner.read_exact(&mut h).await?;
        let len = payload_len(&h);
        if len > limit {
            return Err(ReadError::TooLarge { size: len, limit });
        }
        buf.clear();
        buf.resize(len, 0);
        self.inner.read_exact(buf).await?;
        Ok(h[3])
    }

    /// Reads one physical packet into `buf` (cleared first); returns its sequence id.
    pub async fn read_physical(&mut self, buf: &mut Vec<u8>) -> io::Result<u8> {
        if let Some(seq) = self.take_physical(buf) {
            return Ok(seq);
        }
        let (len, seq) = self.read_header().await?;
        buf.clear();
        self.read_payload(len, buf).await?;
        Ok(seq)
    }

    /// Reads one logical packet (joining continuations) into `buf`; returns the last sequence
    /// id. A packet larger than `limit` is skipped entirely and reported as `TooLarge`.
    pub async fn read_logical(&mut self, buf: &mut Vec<u8>, limit: usize) -> Result<u8, ReadError> {
        self.fill_if_empty().await?;
        if let Some(seq) = self.take_small(buf, limit) {
            return Ok(seq);
        }
        buf.clear();
        let mut total = 0usize;
        let mut too_large = false;
        loop {
            let (len, seq) = self.read_header().await?;
            total += len;
            if too_large || total > limit {
                too_large = true;
                buf.clear();
                self.skip_payload(len).await?;
            } else {
                self.read_payload(len, buf).await?;
            }
            if len < MAX_PAYLOAD {
                if too_large {
                    return Err(ReadError::TooLarge { size: total, limit });
                }
                return Ok(seq);
            }
        }
    }

    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// The stream, to wrap it (buffered bytes stay buffered).
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// The stream (buffered bytes are dropped).
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// `read_logical` without waiting, for a packet the stream has whole now (a command:
    /// nearly always). `None`: ask `read_logical` (what was read stays buffered).
    pub fn read_logical_now(&mut self, buf: &mut Vec<u8>, limit: usize) -> Option<io::Result<u8>> {
        if self.buffered() == 0 {
            let mut cx = Context::from_waker(std::task::Waker::noop());
            match self.poll_fill(&mut cx) {
                Poll::Pending => return None,
                Poll::Ready(Err(e)) => return Some(Err(e)),
                Poll::Ready(Ok(())) => {}
            }
        }
        self.take_small(buf, limit).map(Ok)
    }

    /// The next packet into `buf` if it is wholly buffered, single and within `limit`.
    fn take_small(&mut self, buf: &mut Vec<u8>, limit: usize) -> Option<u8> {
        let whole = self.peek_physical()?;
        if whole.0.len() < MAX_PAYLOAD && whole.0.len() <= limit {
            return self.take_physical(buf);
        }
        None
    }

    /// The next physical packet into `buf` (replacing its contents) if it is wholly buffered:
    /// its sequence id. No I/O: the common case of a reply, which arrives in one read.
    pub fn take_physical(&mut self, buf: &mut Vec<u8>) -> Option<u8> {
        let (payload, seq) = self.peek_physical()?;
        buf.clear();
        buf.extend_from_slice(payload);
        let len = payload.len();
        self.consume_physical(len);
        Some(seq)
    }

    /// The next physical packet if it is wholly buffered, not consumed: (payload, sequence id).
    pub fn peek_physical(&self) -> Option<(&[u8], u8)> {
        let rest = &self.buf[self.pos..];
        let h = rest.get(..4)?;
        Some((rest.get(4..4 + payload_len(h))?, h[3]))
    }

    /// Consumes the packet `peek_physical` returned (`payload_len` bytes of payload).
    pub fn consume_physical(&mut self, payload_len: usize) {
        self.pos += 4 + payload_len;
    }

    /// The buffered bytes not consumed yet (whole and partial packets).
    pub fn unread(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    /// Consumes `n` bytes of `unread` (whole packets).
    pub fn consume(&mut self, n: usize) {
        self.pos += n;
    }

    /// Room for `n` bytes in the read buffer (tests: a long reply read at once).
    #[cfg(test)]
    pub(crate) fn reserve(&mut self, n: usize) {
        self.buf.reserve(n);
    }

    /// Bytes already buffered but not consumed (used to detect pipelined input).
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Frees the buffer if nothing is buffered (call before waiting idle).
    pub fn release_idle(&mut self) {
        if self.buffered() == 0 {
            self.buf = Vec::new();
            self.pos = 0;
        }
    }
}

/// Buffered packet writer; the buffer grows on demand, large payloads bypass it, and
/// `release_idle` frees it.
pub struct PacketWriter<W: AsyncWrite> {
    inner: W,
    buf: Vec<u8>,
    /// A copy of every packet written while set (the result cache keeps replies).
    capture: Option<Capture>,
}

/// Packets copied as written, up to a limit (past it the copy is abandoned).
struct Capture {
    bytes: Vec<u8>,
    limit: usize,
    over: bool,
}

/// Flush early once this much is buffered (streaming large results).
const FLUSH_AT: usize = 64 * 1024;

/// A write buffer grown by a large reply is not kept.
fn shrink(buf: &mut Vec<u8>) {
    if buf.capacity() > 4 * FLUSH_AT {
        *buf = Vec::new();
    }
}

impl<W: AsyncWrite + Unpin> PacketWriter<W> {
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            buf: Vec::new(),
            capture: None,
        }
    }

    /// Starts copying what is written (at most `limit` bytes).
    pub fn start_capture(&mut self, limit: usize) {
        self.capture = Some(Capture {
            bytes: Vec::new(),
            limit,
            over: false,
        });
    }

    /// Stops copying: the packets written since `start_capture`, unless they outgrew it.
    pub fn take_capture(&mut self) -> Option<Vec<u8>> {
        self.capture.take().filter(|c| !c.over).map(|c| c.bytes)
    }

    fn copy(&mut self, seq: u8, payload: &[u8]) {
        if let Some(c) = &mut self.capture {
            if c.over || c.bytes.len() + 4 + payload.len() > c.limit {
                c.over = true;
                c.bytes = Vec::new();
                return;
            }
            let h = (payload.len() as u32).to_le_bytes();
            c.bytes.extend_from_slice(&[h[0], h[1], h[2], seq]);
            c.bytes.extend_from_slice(payload);
        }
    }

    /// Writes whole packets (headers included) as they are.
    pub async fn write_raw(&mut self, packets: &[u8]) -> io::Result<()> {
        if self.buf.len() + packets.len() < FLUSH_AT {
            self.buf.extend_from_slice(packets);
            return Ok(());
        }
        self.write_buffered().await?;
        self.inner.write_all(packets).await
    }

    /// Whether `write_through` would write (nothing buffered or captured).
    pub fn can_write_through(&self) -> bool {
        self.buf.is_empty() && self.capture.is_none()
    }

    /// Writes whole packets (headers included, the sequence ids the reader expects) without
    /// waiting and without copying what the stream takes at once; the rest is buffered for
    /// `flush` (as is everything after an error, which the flush then reports). For when
    /// `can_write_through`.
    pub fn write_now(&mut self, packets: &[u8]) {
        debug_assert!(self.can_write_through());
        let (at, _) = write_what_fits(&mut self.inner, packets);
        self.buf.extend_from_slice(&packets[at..]);
    }

    /// Writes whole packets (headers included) straight from the caller's buffer, without
    /// copying them, when nothing is buffered or captured; `false`: nothing done.
    pub async fn write_through(&mut self, packets: &[u8]) -> io::Result<bool> {
        if !self.can_write_through() {
            return Ok(false);
        }
        self.inner.write_all(packets).await?;
        Ok(true)
    }

    /// Writes one physical packet with the given sequence id. `payload` must be shorter than
    /// `MAX_PAYLOAD` unless the caller continues it.
    pub async fn write_physical(&mut self, seq: u8, payload: &[u8]) -> io::Result<()> {
        if self.push_physical(seq, payload) {
            return Ok(());
        }
        self.copy(seq, payload);
        let h = (payload.len() as u32).to_le_bytes();
        if self.buf.capacity() == 0 {
            self.buf.reserve(512);
        }
        self.buf.extend_from_slice(&[h[0], h[1], h[2], seq]);
        if payload.len() >= FLUSH_AT {
            self.write_buffered().await?;
            return self.inner.write_all(payload).await;
        }
        self.buf.extend_from_slice(payload);
        if self.buf.len() >= FLUSH_AT {
            self.write_buffered().await?;
        }
        Ok(())
    }

    /// Writes one packet (`push_physical`'s size) without waiting: when nothing is buffered
    /// or captured, straight from `payload` with its header in one vectored write (no copy
    /// into the buffer), else buffered and flushed as far as the stream takes. `None`: too
    /// large, nothing done; `Some(false)`: the rest is buffered for `flush`.
    pub fn write_packet_now(&mut self, seq: u8, payload: &[u8]) -> io::Result<Option<bool>> {
        if !self.can_write_through() || 4 + payload.len() >= FLUSH_AT {
            if !self.push_physical(seq, payload) {
                return Ok(None);
            }
            return self.flush_now().map(Some);
        }
        let h = (payload.len() as u32).to_le_bytes();
        let header = [h[0], h[1], h[2], seq];
        let parts = [io::IoSlice::new(&header), io::IoSlice::new(payload)];
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let n = match Pin::new(&mut self.inner).poll_write_vectored(&mut cx, &parts) {
            Poll::Ready(Ok(n)) => n,
            Poll::Ready(Err(e)) if e.kind() != io::ErrorKind::Interrupted => return Err(e),
            _ => 0,
        };
        if n < 4 + payload.len() {
            // the rest for `flush`
            self.buf.reserve(4 + payload.len() - n);
            self.buf.extend_from_slice(&header[n.min(4)..]);
            self.buf.extend_from_slice(&payload[n.saturating_sub(4)..]);
            return Ok(Some(false));
        }
        // a TLS stream sends its records on flush (plain TCP: nothing to do)
        match Pin::new(&mut self.inner).poll_flush(&mut cx) {
            Poll::Ready(r) => r.map(|()| Some(true)),
            Poll::Pending => Ok(Some(false)),
        }
    }

    /// Buffers one packet if that needs no I/O (it leaves the buffer under the flush mark);
    /// `false`: nothing done, use `write_physical`.
    pub fn push_physical(&mut self, seq: u8, payload: &[u8]) -> bool {
        if self.buf.len() + 4 + payload.len() >= FLUSH_AT {
            return false;
        }
        if self.capture.is_some() {
            self.copy(seq, payload);
        }
        if self.buf.capacity() == 0 {
            self.buf.reserve(512);
        }
        let h = (payload.len() as u32).to_le_bytes();
        self.buf.extend_from_slice(&[h[0], h[1], h[2], seq]);
        self.buf.extend_from_slice(payload);
        true
    }

    /// How many bytes fit before a flush is due: packets shorter than that in all are
    /// buffered by `push_physical` / `push_renumbered`.
    pub fn room(&self) -> usize {
        FLUSH_AT - self.buf.len().min(FLUSH_AT)
    }

    /// Buffers whole physical packets (`packets`, headers included) renumbered from `seq`
    /// on, advancing it. The caller checked `room`.
    pub fn push_renumbered(&mut self, packets: &[u8], seq: &mut u8) {
        let start = self.buf.len();
        let mut at = start;
        self.buf.extend_from_slice(packets);
        while at + 4 <= self.buf.len() {
            let h = &mut self.buf[at..at + 4];
            h[3] = *seq;
            *seq = seq.wrapping_add(1);
            at += 4 + payload_len(h);
        }
        if let Some(c) = &mut self.capture {
            if c.over || c.bytes.len() + packets.len() > c.limit {
                c.over = true;
                c.bytes = Vec::new();
            } else {
                c.bytes.extend_from_slice(&self.buf[start..]);
            }
        }
    }

    async fn write_buffered(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.inner.write_all(&self.buf).await?;
            self.buf.clear();
        }
        Ok(())
    }

    /// Writes a logical packet, splitting it as needed; `seq` is advanced past what was written.
    pub async fn write_packet(&mut self, seq: &mut u8, payload: &[u8]) -> io::Result<()> {
        let mut rest = payload;
        loop {
            let n = rest.len().min(MAX_PAYLOAD);
            self.write_physical(*seq, &rest[..n]).await?;
            *seq = seq.wrapping_add(1);
            rest = &rest[n..];
            if n < MAX_PAYLOAD {
                return Ok(());
            }
        }
    }

    pub async fn flush(&mut self) -> io::Result<()> {
        self.write_buffered().await?;
        shrink(&mut self.buf);
        self.inner.flush().await
    }

    /// Flushes without waiting when the stream takes everything at once (the usual case of
    /// a statement or a reply into a socket with room): no future is built, the statement
    /// path's writes cost one poll each. `false`: the stream is full; what was written is gone
    /// from the buffer and `flush` writes the rest when there is room.
    pub fn flush_now(&mut self) -> io::Result<bool> {
        let (at, r) = write_what_fits(&mut self.inner, &self.buf);
        r?;
        self.buf.drain(..at);
        if !self.buf.is_empty() {
            return Ok(false);
        }
        shrink(&mut self.buf);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match Pin::new(&mut self.inner).poll_flush(&mut cx) {
            Poll::Ready(r) => r.map(|()| true),
            Poll::Pending => Ok(false),
        }
    }

    /// The stream (unflushed bytes are dropped).
    pub fn into_inner(self) -> W {
        self.inner
    }

    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// Whether bytes are written but not yet flushed.
    pub fn has_pending(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Frees the buffer if nothing is pending (call before waiting idle).
    pub fn release_idle(&mut self) {
        if self.buf.is_empty() {
            self.buf = Vec::new();
        }
    }
}

/// Writes what `inner` takes of `bytes` at once (one `poll_write` after another with a no-op
/// waker, until the stream is full): how many bytes went, and the error that stopped it if
/// one did.
fn write_what_fits<W: AsyncWrite + Unpin>(inner: &mut W, bytes: &[u8]) -> (usize, io::Result<()>) {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    let mut at = 0;
    while at < bytes.len() {
        match Pin::new(&mut *inner).poll_write(&mut cx, &bytes[at..]) {
            Poll::Ready(Ok(0)) => return (at, Err(io::ErrorKind::WriteZero.into())),
            Poll::Ready(Ok(n)) => at += n,
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
            Poll::Ready(Err(e)) => return (at, Err(e)),
            Poll::Pending => break,
        }
    }
    (at, Ok(()))
}

#[cfg(test)]
mod tests;
