//! The compressed protocol (`CLIENT_COMPRESS`, zlib) toward a client, as a layer under the
//! packet reader and writer: after the login's OK every byte in either direction travels in
//! compressed frames, each a 7-byte header (compressed length, compressed sequence id,
//! uncompressed length; 0 when the payload is sent as is) and a payload holding whole or
//! partial packets. The frame sequence id of a reply continues the one of the command it
//! answers (the reader hands the writer the next id). Backends are spoken to uncompressed.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Largest payload of one frame (the lengths are three bytes).
const MAX_FRAME: usize = 0xFF_FFFF;
/// Payloads shorter than this go uncompressed (as the servers do: not worth it).
const MIN_COMPRESS: usize = 50;

/// The next frame sequence id, shared by a connection's reader and writer.
pub type FrameSeq = Arc<AtomicU8>;

/// Reads compressed frames from `inner` and yields their packets' bytes.
pub struct ZRead<R> {
    pub inner: R,
    seq: FrameSeq,
    header: [u8; 7],
    have: usize,
    frame: Vec<u8>,
    plain: Vec<u8>,
    pos: usize,
}

impl<R> ZRead<R> {
    pub fn new(inner: R, seq: FrameSeq) -> Self {
        ZRead {
            inner,
            seq,
            header: [0; 7],
            have: 0,
            frame: Vec::new(),
            plain: Vec::new(),
            pos: 0,
        }
    }

    /// Bytes decompressed and not yet read (a pipelined command).
    pub fn buffered(&self) -> usize {
        self.plain.len() - self.pos
    }
}

fn len3(b: &[u8]) -> usize {
    b[0] as usize | (b[1] as usize) << 8 | (b[2] as usize) << 16
}

fn invalid(msg: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// How much a buffer grows at a time beyond what has arrived or been inflated: memory
/// follows the bytes a client really sends, not the lengths its headers claim.
const STEP: usize = 64 * 1024;

/// Inflates `frame` into `out`, which must come to exactly `expected` bytes.
fn inflate(frame: &[u8], expected: usize, out: &mut Vec<u8>) -> io::Result<()> {
    out.clear();
    let mut d = Decompress::new(true);
    loop {
        out.reserve(STEP.min(expected + 1 - out.len()));
        let read = d.total_in() as usize;
        match d.decompress_vec(&frame[read..], out, FlushDecompress::Finish) {
            Ok(Status::StreamEnd) if out.len() == expected => return Ok(()),
            Ok(Status::StreamEnd) => break,
            Ok(_) if out.len() <= expected && out.len() < out.capacity() => break,
            Ok(_) if out.len() <= expected => {}
            Ok(_) => break,
            Err(_) => return Err(invalid("compressed frame: not zlib data")),
        }
    }
    Err(invalid("compressed frame: wrong uncompressed length"))
}

impl<R: AsyncRead + Unpin> ZRead<R> {
    /// Reads into `buf[*have..]` until it is full.
    fn fill(
        inner: &mut R,
        cx: &mut Context<'_>,
        buf: &mut [u8],
        have: &mut usize,
    ) -> Poll<io::Result<()>> {
        while *have < buf.len() {
            let mut rb = ReadBuf::new(&mut buf[*have..]);
            ready!(Pin::new(&mut *inner).poll_read(cx, &mut rb))?;
            if rb.filled().is_empty() {
                return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
            }
            *have += rb.filled().len();
        }
        Poll::Ready(Ok(()))
    }

    /// Reads and unpacks the next frame into `plain`.
    fn next_frame(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.have < 7 {
            ready!(Self::fill(
                &mut self.inner,
                cx,
                &mut self.header,
                &mut self.have
            ))?;
            self.frame.clear();
        }
        let len = len3(&self.header[..3]);
        loop {
            let mut got = self.have - 7;
            // the buffer grows with what arrives (at most STEP ahead of it)
            let upto = len.min(got + STEP);
            if self.frame.len() < upto {
                self.frame.resize(upto, 0);
            }
            let r = Self::fill(&mut self.inner, cx, &mut self.frame[..upto], &mut got);
            self.have = got + 7;
            ready!(r)?;
            if got == len {
                break;
            }
        }
        self.have = 0;
        self.seq
            .store(self.header[3].wrapping_add(1), Ordering::Release);
        self.pos = 0;
        match len3(&self.header[4..]) {
            0 => std::mem::swap(&mut self.plain, &mut self.frame),
            n => inflate(&self.frame, n, &mut self.plain)?,
        }
        Poll::Ready(Ok(()))
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for ZRead<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let me = self.get_mut();
        while me.buffered() == 0 {
            match me.next_frame(cx) {
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof && me.have == 0 => {
                    return Poll::Ready(Ok(())); // the client closed between frames
                }
                other => ready!(other)?,
            }
        }
        let n = me.buffered().min(buf.remaining());
        buf.put_slice(&me.plain[me.pos..me.pos + n]);
        me.pos += n;
        Poll::Ready(Ok(()))
    }
}

/// Writes what it is given as compressed frames to `inner`, each write call at once (no
/// bytes wait in this layer: the packet writer above already gathers a reply).
pub struct ZWrite<W> {
    pub inner: W,
    seq: FrameSeq,
    /// Frames of the write in progress, and how much of them went out.
    out: Vec<u8>,
    sent: usize,
    /// Bytes of the caller's buffer those frames hold.
    accepted: usize,
    deflate: Compress,
}

impl<W> ZWrite<W> {
    pub fn new(inner: W, seq: FrameSeq) -> Self {
        ZWrite {
            inner,
            seq,
            out: Vec::new(),
            sent: 0,
            accepted: 0,
            deflate: Compress::new(Compression::fast(), true),
        }
    }

    /// Appends `data` to `out` as frames.
    fn frame(&mut self, data: &[u8]) -> io::Result<()> {
        for chunk in data.chunks(MAX_FRAME) {
            let seq = self.seq.fetch_add(1, Ordering::AcqRel);
            let at = self.out.len();
            self.out.extend_from_slice(&[0; 7]);
            let mut plain_len = 0;
            if chunk.len() >= MIN_COMPRESS {
                self.deflate.reset();
                self.out.reserve(chunk.len() + 64);
                self.deflate
                    .compress_vec(chunk, &mut self.out, FlushCompress::Finish)
                    .map_err(io::Error::other)?;
                plain_len = chunk.len();
                if self.out.len() - at - 7 >= chunk.len() {
                    // no smaller: send it as is
                    self.out.truncate(at + 7);
                    plain_len = 0;
                }
            }
            if plain_len == 0 {
                self.out.extend_from_slice(chunk);
            }
            let c = ((self.out.len() - at - 7) as u32).to_le_bytes();
            let u = (plain_len as u32).to_le_bytes();
            self.out[at..at + 7].copy_from_slice(&[c[0], c[1], c[2], seq, u[0], u[1], u[2]]);
        }
        Ok(())
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for ZWrite<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let me = self.get_mut();
        if me.out.is_empty() {
            if buf.is_empty() {
                return Poll::Ready(Ok(0));
            }
            me.frame(buf)?;
            me.accepted = buf.len();
            me.sent = 0;
        }
        // the caller offers the same bytes again until this returns them written
        while me.sent < me.out.len() {
            let n = ready!(Pin::new(&mut me.inner).poll_write(cx, &me.out[me.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            me.sent += n;
        }
        me.out.clear();
        if me.out.capacity() > 1 << 20 {
            me.out = Vec::new();
        }
        Poll::Ready(Ok(me.accepted))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn what_is_written_compressed_reads_back() {
        let (a, b) = tokio::io::duplex(1 << 16);
        let seq = FrameSeq::default();
        let mut w = ZWrite::new(a, seq.clone());
        let mut r = ZRead::new(b, FrameSeq::default());
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 7) as u8).collect();
        let writer = tokio::spawn(async move {
            w.write_all(b"short").await.unwrap();
            w.write_all(&big).await.unwrap();
            w.flush().await.unwrap();
            w
        });
        let mut got = vec![0; 5 + 200_000];
        r.read_exact(&mut got).await.unwrap();
        assert_eq!(&got[..5], b"short");
        assert!(got[5..]
            .iter()
            .enumerate()
            .all(|(i, &b)| b == (i % 7) as u8));
        let w = writer.await.unwrap();
        assert_eq!(w.seq.load(Ordering::Relaxed), 2, "one frame per write");
        // the reader hands the writer the id after the last frame it read
        assert_eq!(r.seq.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn a_header_that_claims_more_than_the_data_holds_costs_no_more_memory() {
        let mut z = Compress::new(Compression::fast(), true);
        let mut payload = Vec::with_capacity(64);
        z.compress_vec(b"abc", &mut payload, FlushCompress::Finish)
            .unwrap();
        let mut out = Vec::new();
        assert!(inflate(&payload, MAX_FRAME, &mut out).is_err());
        assert!(out.capacity() <= 2 * STEP, "{}", out.capacity());
        inflate(&payload, 3, &mut out).unwrap();
        assert_eq!(out, b"abc");
        let big = vec![7u8; 300_000];
        let mut packed = Vec::with_capacity(400_000);
        let mut z = Compress::new(Compression::fast(), true);
        z.compress_vec(&big, &mut packed, FlushCompress::Finish)
            .unwrap();
        inflate(&packed, big.len(), &mut out).unwrap();
        assert_eq!(out, big);
        assert!(inflate(&packed, big.len() - 1, &mut out).is_err());
    }

    #[tokio::test]
    async fn a_frame_with_a_wrong_length_is_an_error() {
        let (mut a, b) = tokio::io::duplex(1 << 10);
        let mut r = ZRead::new(b, FrameSeq::default());
        // says 100 bytes uncompressed, holds zlib data of 3
        let mut z = Compress::new(Compression::fast(), true);
        let mut payload = Vec::with_capacity(64);
        z.compress_vec(b"abc", &mut payload, FlushCompress::Finish)
            .unwrap();
        let mut frame = vec![payload.len() as u8, 0, 0, 0, 100, 0, 0];
        frame.extend_from_slice(&payload);
        a.write_all(&frame).await.unwrap();
        let mut buf = [0u8; 10];
        let e = r.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }
}
