//! Packet framing over any tokio byte stream: 3-byte length, 1-byte sequence id, payload.
//!
//! Physical packets are at most 16 MiB - 1; a logical packet of that size is continued by the
//! next physical packet. Readers and writers here are buffered; callers flush explicitly once
//! per reply so a small response costs one `write` syscall.

use super::MAX_PAYLOAD;
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};

const BUF_SIZE: usize = 16 * 1024;

/// Error reading a logical packet that was larger than the allowed maximum. The stream has been
/// drained past the packet, so the connection stays usable.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("packet of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error(transparent)]
    Io(#[from] io::Error),
}

pub struct PacketReader<R> {
    inner: BufReader<R>,
}

impl<R: AsyncRead + Unpin> PacketReader<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner: BufReader::with_capacity(BUF_SIZE, inner),
        }
    }

    /// Reads one physical packet header: (payload length, sequence id).
    pub async fn read_header(&mut self) -> io::Result<(usize, u8)> {
        let mut h = [0u8; 4];
        self.inner.read_exact(&mut h).await?;
        Ok((u32::from_le_bytes([h[0], h[1], h[2], 0]) as usize, h[3]))
    }

    /// Appends `len` payload bytes to `buf`.
    pub async fn read_payload(&mut self, len: usize, buf: &mut Vec<u8>) -> io::Result<()> {
        let start = buf.len();
        buf.resize(start + len, 0);
        self.inner.read_exact(&mut buf[start..]).await?;
        Ok(())
    }

    /// Discards `len` payload bytes.
    pub async fn skip_payload(&mut self, mut len: usize) -> io::Result<()> {
        let mut scratch = [0u8; 4096];
        while len > 0 {
            let n = len.min(scratch.len());
            self.inner.read_exact(&mut scratch[..n]).await?;
            len -= n;
        }
        Ok(())
    }

    /// Reads one physical packet into `buf` (cleared first); returns its sequence id.
    pub async fn read_physical(&mut self, buf: &mut Vec<u8>) -> io::Result<u8> {
        let (len, seq) = self.read_header().await?;
        buf.clear();
        self.read_payload(len, buf).await?;
        Ok(seq)
    }

    /// Reads one logical packet (joining continuations) into `buf`; returns the last sequence
    /// id. A packet larger than `limit` is skipped entirely and reported as `TooLarge`.
    pub async fn read_logical(&mut self, buf: &mut Vec<u8>, limit: usize) -> Result<u8, ReadError> {
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
        self.inner.get_ref()
    }

    /// Bytes already buffered but not consumed (used to detect pipelined input).
    pub fn buffered(&self) -> usize {
        self.inner.buffer().len()
    }
}

pub struct PacketWriter<W: AsyncWrite> {
    inner: BufWriter<W>,
}

impl<W: AsyncWrite + Unpin> PacketWriter<W> {
    pub fn new(inner: W) -> Self {
        Self {
            inner: BufWriter::with_capacity(BUF_SIZE, inner),
        }
    }

    /// Writes one physical packet with the given sequence id. `payload` must be shorter than
    /// `MAX_PAYLOAD` unless the caller continues it.
    pub async fn write_physical(&mut self, seq: u8, payload: &[u8]) -> io::Result<()> {
        let len = payload.len() as u32;
        let h = len.to_le_bytes();
        self.inner.write_all(&[h[0], h[1], h[2], seq]).await?;
        self.inner.write_all(payload).await
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
        self.inner.flush().await
    }

    pub fn get_mut(&mut self) -> &mut W {
        self.inner.get_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn split_and_join_large_packet() {
        let (a, b) = tokio::io::duplex(1 << 20);
        let payload: Vec<u8> = (0..(MAX_PAYLOAD * 2 + 10)).map(|i| i as u8).collect();
        let expected = payload.clone();
        let writer = tokio::spawn(async move {
            let mut w = PacketWriter::new(a);
            let mut seq = 0;
            w.write_packet(&mut seq, &payload).await.unwrap();
            w.flush().await.unwrap();
            seq
        });
        let mut r = PacketReader::new(b);
        let mut buf = Vec::new();
        let last = r.read_logical(&mut buf, usize::MAX).await.unwrap();
        assert_eq!(buf, expected);
        assert_eq!(last, 2);
        assert_eq!(writer.await.unwrap(), 3);
    }

    #[tokio::test]
    async fn exact_multiple_gets_empty_trailer() {
        let (a, b) = tokio::io::duplex(1 << 20);
        let payload = vec![7u8; MAX_PAYLOAD];
        tokio::spawn(async move {
            let mut w = PacketWriter::new(a);
            let mut seq = 0;
            w.write_packet(&mut seq, &payload).await.unwrap();
            w.write_packet(&mut seq, b"next").await.unwrap();
            w.flush().await.unwrap();
        });
        let mut r = PacketReader::new(b);
        let mut buf = Vec::new();
        r.read_logical(&mut buf, usize::MAX).await.unwrap();
        assert_eq!(buf.len(), MAX_PAYLOAD);
        r.read_logical(&mut buf, usize::MAX).await.unwrap();
        assert_eq!(buf, b"next");
    }

    #[tokio::test]
    async fn too_large_is_drained() {
        let (a, b) = tokio::io::duplex(1 << 16);
        tokio::spawn(async move {
            let mut w = PacketWriter::new(a);
            let mut seq = 0;
            w.write_packet(&mut seq, &[1u8; 5000]).await.unwrap();
            let mut seq = 0;
            w.write_packet(&mut seq, b"ok").await.unwrap();
            w.flush().await.unwrap();
        });
        let mut r = PacketReader::new(b);
        let mut buf = Vec::new();
        assert!(matches!(
            r.read_logical(&mut buf, 1000).await,
            Err(ReadError::TooLarge { .. })
        ));
        r.read_logical(&mut buf, 1000).await.unwrap();
        assert_eq!(buf, b"ok");
    }
}
