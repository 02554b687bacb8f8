//! The fast path of a small response: when the whole of it is already in the read buffer
//! (a short reply arrives in one read), it is checked in place, then written to the client
//! as it is when its sequence ids are the client's (from the read buffer, without a copy,
//! for a read whose reply may go early; else copied to the client's buffer for the
//! session's flush), or copied in runs of packets with their sequence ids renumbered, the
//! result-set EOFs of a classic-framing client added as the packet-by-packet path adds
//! them. Anything unusual (an
//! error, LOCAL INFILE, a cursor, a long packet, a part still to come, a classic backend
//! with a modern client) is left to the packet-by-packet path, which then finds the buffer
//! untouched.

use super::Relay;
use crate::protocol::packet::payload_len;
use crate::protocol::reply::{self, OkInfo};
use crate::protocol::{lenenc, status, MAX_PAYLOAD};
use tokio::io::{AsyncRead, AsyncWrite};

/// What a wholly buffered response holds.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Whole {
    /// Its length in the buffer (headers included).
    pub bytes: usize,
    pub packets: u32,
    /// The backend's sequence id of its last packet.
    pub last_seq: u8,
    pub rows: u64,
    pub status: u16,
    pub warnings: u16,
    /// The last OK packet (not result-set terminators).
    pub ok: Option<OkInfo>,
}

/// A run of the response, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Piece<'a> {
    /// Packets passed on as they are (headers included).
    Packets(&'a [u8]),
    /// The end of a result set's column definitions (where a classic client's EOF goes when
    /// the backend did not send one).
    DefinitionsEnd,
    /// The rows' terminator, by its (status, warnings): a classic client gets an EOF for it.
    Terminator(u16, u16),
}

/// Responses at least this long whose sequence ids are the client's are written from the
/// read buffer as they are (no copy) by the awaited path; shorter ones are written the same
/// way at once when they may go early and the client pipelines nothing, else copied into the
/// client's buffer (pipelined replies share a write; a write's OK waits for the flush).
pub(super) const PASS_THROUGH_MIN: usize = 4096;

/// Responses of more pieces (many result sets) take the packet-by-packet path.
const MAX_PIECES: usize = 8;

/// The pieces of a response, in order.
pub(super) struct Pieces<'a> {
    list: [Piece<'a>; MAX_PIECES],
    len: usize,
}

impl<'a> Pieces<'a> {
    pub(super) fn new() -> Self {
        Pieces {
            list: [Piece::DefinitionsEnd; MAX_PIECES],
            len: 0,
        }
    }

    fn push(&mut self, piece: Piece<'a>) -> Option<()> {
        *self.list.get_mut(self.len)? = piece;
        self.len += 1;
        Some(())
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &Piece<'a>> {
        self.list[..self.len].iter()
    }
}

/// Physical packets of a buffer, each shorter than `MAX_PAYLOAD`.
struct Packets<'a> {
    bytes: &'a [u8],
    at: usize,
    count: u32,
    last_seq: u8,
}

impl<'a> Packets<'a> {
    fn next(&mut self) -> Option<&'a [u8]> {
        let h = self.bytes.get(self.at..self.at + 4)?;
        let len = payload_len(h);
        if len >= MAX_PAYLOAD {
            return None;
        }
        let payload = self.bytes.get(self.at + 4..self.at + 4 + len)?;
        self.last_seq = h[3];
        self.at += 4 + len;
        self.count += 1;
        Some(payload)
    }

    fn since(&self, start: usize) -> &'a [u8] {
        &self.bytes[start..self.at]
    }
}

/// Checks that `bytes` start with a whole COM_QUERY / COM_STMT_EXECUTE response of OKs and
/// result sets (in `deprecate_eof` framing): what it holds, and its pieces. `None` if it is
/// not all there or not that simple. Its pieces go to `pieces` if given.
pub(super) fn walk<'a>(
    bytes: &'a [u8],
    deprecate_eof: bool,
    mut pieces: Option<&mut Pieces<'a>>,
) -> Option<Whole> {
    let mut p = Packets {
        bytes,
        at: 0,
        count: 0,
        last_seq: 0,
    };
    let mut w = Whole::default();
    // the pieces only when asked for (translating): else nothing is built per reply
    let mut on = |piece| pieces.as_deref_mut().map_or(Some(()), |l| l.push(piece));
    loop {
        let start = p.at;
        let first = p.next()?;
        match *first.first()? {
            0x00 => {
                let ok = reply::parse_ok(first)?;
                (w.status, w.warnings, w.ok) = (ok.status, ok.warnings, Some(ok));
                on(Piece::Packets(p.since(start)))?;
            }
            0xFF | 0xFB => return None,
            _ => {
                definitions(&mut p, first, deprecate_eof)?;
                on(Piece::Packets(p.since(start)))?;
                on(Piece::DefinitionsEnd)?;
                let rows_start = p.at;
                let (end, st, warnings) = rows(&mut p, deprecate_eof, &mut w.rows)?;
                (w.status, w.warnings) = (st, warnings);
                on(Piece::Packets(&bytes[rows_start..end]))?;
                on(Piece::Terminator(st, warnings))?;
            }
        }
        if w.status & status::MORE_RESULTS == 0 {
            (w.bytes, w.packets, w.last_seq) = (p.at, p.count, p.last_seq);
            return Some(w);
        }
    }
}

/// The column definitions after the column count `first` (and a classic EOF after them).
fn definitions(p: &mut Packets<'_>, first: &[u8], deprecate_eof: bool) -> Option<()> {
    let cols = lenenc::read_int(first, &mut 0)?;
    if cols == 0 {
        return None;
    }
    for _ in 0..cols {
        if p.next()?.first() == Some(&0xFF) {
            return None;
        }
    }
    if !deprecate_eof {
        let (_, st) = reply::parse_eof(p.next().filter(|e| e.first() == Some(&0xFE))?)?;
        if st & status::CURSOR_EXISTS != 0 {
            return None;
        }
    }
    Some(())
}

/// Rows up to their terminator: (where the terminator starts, its status, its warnings).
fn rows(p: &mut Packets<'_>, deprecate_eof: bool, rows: &mut u64) -> Option<(usize, u16, u16)> {
    skip_plain_rows(p, rows);
    loop {
        let at = p.at;
        let row = p.next()?;
        let (st, warnings) = match row.first() {
            Some(0xFF) => return None,
            Some(0xFE) if deprecate_eof => {
                let ok = reply::parse_ok(row)?;
                (ok.status, ok.warnings)
            }
            Some(0xFE) if row.len() < 9 => {
                let (warnings, st) = reply::parse_eof(row)?;
                (st, warnings)
            }
            _ => {
                *rows += 1;
                continue;
            }
        };
        if st & status::CURSOR_EXISTS != 0 {
            return None;
        }
        return Some((at, st, warnings));
    }
}

/// Hops over the whole rows whose first byte cannot begin a terminator or an error (nearly
/// all rows): one header read per row, nothing else. `p` is left at the first other packet.
fn skip_plain_rows(p: &mut Packets<'_>, rows: &mut u64) {
    let (bytes, mut at, mut n) = (p.bytes, p.at, 0u32);
    while let Some(h) = bytes.get(at..at + 5) {
        let len = payload_len(h);
        let next = at + 4 + len;
        if h[4] >= 0xFE || len == 0 || len >= MAX_PAYLOAD || next > bytes.len() {
            break;
        }
        at = next;
        n += 1;
    }
    p.at = at;
    p.count += n;
    *rows += u64::from(n);
}

/// Copies the pieces of a wholly buffered response `w` to the client's buffer, renumbered
/// from `seq`, with the EOFs a classic client needs added after each result set's definitions
/// and in place of each terminator (`hint`: the status of the one after the definitions): how
/// many were added, `None` (nothing done) if it does not fit.
fn copy_translated<CW: AsyncWrite + Unpin>(
    client: &mut crate::protocol::packet::PacketWriter<CW>,
    (seq, hint): (&mut u8, u16),
    w: &Whole,
    pieces: &Pieces<'_>,
) -> Option<u32> {
    // what the client gets: the bytes, plus an EOF (9 bytes with its header) after each
    // result set's definitions
    let added = pieces
        .iter()
        .filter(|p| matches!(p, Piece::DefinitionsEnd))
        .count();
    if w.bytes + 9 * added >= client.room() {
        return None;
    }
    for piece in pieces.iter() {
        match *piece {
            Piece::Packets(b) => client.push_renumbered(b, seq),
            Piece::DefinitionsEnd => {
                client.push_physical(*seq, &reply::eof(hint, 0));
                *seq = seq.wrapping_add(1);
            }
            Piece::Terminator(st, warnings) => {
                client.push_physical(*seq, &reply::eof(st, warnings));
                *seq = seq.wrapping_add(1);
            }
        }
    }
    Some(added as u32)
}

impl<BR, BW, CR, CW> Relay<'_, BR, BW, CR, CW>
where
    BR: AsyncRead + Unpin,
    BW: AsyncWrite + Unpin,
    CR: AsyncRead + Unpin,
    CW: AsyncWrite + Unpin,
{
    /// Forwards the response in one pass if it is wholly buffered (see the module comment);
    /// `false`: nothing was done.
    pub(super) async fn forward_whole(&mut self) -> Result<bool, super::RelayError> {
        let w = match self.forward_whole_now() {
            Ok(done) => return Ok(done),
            Err(w) => w,
        };
        // the bytes as they are: the sequence ids the client expects, nothing to add
        let (Some(client), unread) = (self.client_w.as_deref_mut(), self.backend_r.unread()) else {
            return Ok(false);
        };
        let through = client.write_through(&unread[..w.bytes]).await;
        if !through.map_err(super::RelayError::Client)? {
            return Err(super::RelayError::Protocol("pass-through refused"));
        }
        self.out_seq = self.out_seq.wrapping_add(w.packets as u8);
        self.account(&w, 0);
        Ok(true)
    }

    /// `forward_whole` without waiting: `Ok(done)` when the response was copied into the
    /// client's buffer (or is not wholly buffered: `Ok(false)`); `Err(w)`: response `w` is to
    /// be written through as it is (large, the sequence ids the client expects, nothing to
    /// translate, nothing buffered before it).
    pub(super) fn forward_whole_now(&mut self) -> Result<bool, Whole> {
        let translate = self.client_deprecate_eof != self.backend_deprecate_eof;
        if self.digest.is_some() || (translate && self.client_deprecate_eof) {
            return Ok(false);
        }
        let Some(client) = self.client_w.as_deref_mut() else {
            return Ok(false);
        };
        let unread = self.backend_r.unread();
        let mut pieces = translate.then(Pieces::new);
        let Some(w) = walk(unread, self.backend_deprecate_eof, pieces.as_mut()) else {
            return Ok(false);
        };
        let added = match pieces {
            Some(pieces) => {
                let hint = self.status_hint;
                match copy_translated(client, (&mut self.out_seq, hint), &w, &pieces) {
                    Some(added) => added,
                    None => return Ok(false),
                }
            }
            None => {
                let bytes = &unread[..w.bytes];
                let direct = unread[3] == self.out_seq && client.can_write_through();
                // pipelined commands: their replies share the buffer and one write
                let pipelined = self.client_r.as_ref().is_some_and(|r| r.buffered() > 0);
                if direct && w.bytes >= PASS_THROUGH_MIN {
                    return Err(w);
                } else if direct && !pipelined && self.reply_early {
                    // the bytes as they are, from the read buffer: no copy unless the
                    // socket is full (the rest is buffered for the flush)
                    client.write_now(bytes);
                    self.out_seq = self.out_seq.wrapping_add(w.packets as u8);
                } else if w.bytes < client.room() {
                    client.push_renumbered(bytes, &mut self.out_seq); // one copy
                } else {
                    return Ok(false);
                }
                0
            }
        };
        self.account(&w, added);
        Ok(true)
    }

    /// The response `w` was forwarded (with `added` packets of Sluice's): consumed from the
    /// backend's buffer and counted.
    fn account(&mut self, w: &Whole, added: u32) {
        self.backend_seq = w.last_seq;
        self.backend_r.consume(w.bytes);
        let o = &mut self.outcome;
        o.sent += w.packets + added;
        o.rows += w.rows;
        (o.status, o.warnings) = (w.status, w.warnings);
        if w.ok.is_some() {
            o.ok = w.ok;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packets(payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for (seq, p) in payloads.iter().enumerate() {
            out.extend_from_slice(&(p.len() as u32).to_le_bytes()[..3]);
            out.push(seq as u8 + 1);
            out.extend_from_slice(p);
        }
        out
    }

    const OK: &[u8] = &[0x00, 1, 5, 0x02, 0x00, 0x00, 0x00];
    const DEF: &[u8] = b"\x03defcolumn";
    const EOF: &[u8] = &[0xFE, 0x00, 0x00, 0x22, 0x00];

    fn check(bytes: &[u8], deprecate_eof: bool) -> Option<Whole> {
        walk(bytes, deprecate_eof, None)
    }

    #[test]
    fn ok_and_result_sets_are_whole_only_when_complete() {
        let ok = packets(&[OK]);
        let w = check(&ok, false).unwrap();
        assert_eq!((w.bytes, w.packets, w.status), (ok.len(), 1, 2));
        assert_eq!(w.ok.unwrap().last_insert_id, 5);

        let rs = packets(&[&[1], DEF, EOF, b"\x01a", b"\x01b", EOF]);
        let w = check(&rs, false).unwrap();
        assert_eq!(
            (w.bytes, w.packets, w.rows, w.status),
            (rs.len(), 6, 2, 0x22)
        );
        for cut in 0..rs.len() {
            assert_eq!(check(&rs[..cut], false), None, "cut at {cut}");
        }
        // a following pipelined reply is not part of it
        let mut two = rs.clone();
        two.extend_from_slice(&ok);
        assert_eq!(check(&two, false).unwrap().bytes, rs.len());
    }

    #[test]
    fn rows_of_every_first_byte_are_counted_to_their_terminator() {
        // NULL first column, an empty string, a row whose first byte is 0xFE (a long string's
        // length prefix: a row in classic framing, 9 bytes or more), many plain rows
        let long = [0xFE, 1, 0, 0, 0, 0, 0, 0, 0, b'x'];
        let mut list: Vec<&[u8]> = vec![&[1], DEF, EOF, &[0xFB], &[0x00], &long];
        list.extend(std::iter::repeat_n(&b"\x03abc"[..], 50));
        list.push(EOF);
        let rs = packets(&list);
        let w = check(&rs, false).unwrap();
        assert_eq!((w.bytes, w.packets, w.rows), (rs.len(), 57, 53));
        for cut in [rs.len() - 1, rs.len() - 9, rs.len() - 12, 40] {
            assert_eq!(check(&rs[..cut], false), None, "cut at {cut}");
        }
        // with CLIENT_DEPRECATE_EOF the terminator is an OK starting with 0xFE
        let ok_end: &[u8] = &[0xFE, 0, 0, 0x22, 0, 0, 0];
        let rs = packets(&[&[1], DEF, &[0xFB], b"\x01a", ok_end]);
        let w = check(&rs, true).unwrap();
        assert_eq!(
            (w.bytes, w.packets, w.rows, w.status),
            (rs.len(), 5, 2, 0x22)
        );
    }

    #[test]
    fn unusual_responses_take_the_general_path() {
        let err = packets(&[b"\xff\x15\x04#28000denied"]);
        assert_eq!(check(&err, false), None);
        let infile = packets(&[b"\xfbfile"]);
        assert_eq!(check(&infile, false), None);
        let cursor = packets(&[&[1], DEF, &[0xFE, 0, 0, 0x42, 0]]);
        assert_eq!(check(&cursor, false), None);
        let err_in_rows = packets(&[&[1], DEF, EOF, b"\x01a", b"\xff\x15\x04#HY000x"]);
        assert_eq!(check(&err_in_rows, false), None);
    }

    #[test]
    fn more_results_continue_to_the_last_terminator() {
        let more = [0x00, 0, 0, 0x0A, 0x00, 0x00, 0x00];
        let bytes = packets(&[&more, OK]);
        let w = check(&bytes, false).unwrap();
        assert_eq!((w.packets, w.status), (2, 2));
        assert_eq!(check(&bytes[..bytes.len() - 1], false), None);
    }

    #[test]
    fn modern_framing_ends_rows_with_an_ok() {
        let term = [0xFE, 0, 0, 0x02, 0x00, 0x01, 0x00];
        let rs = packets(&[&[1], DEF, b"\x01a", &term]);
        let w = check(&rs, true).unwrap();
        assert_eq!((w.packets, w.rows, w.status, w.warnings), (4, 1, 2, 1));
        assert_eq!(w.ok, None);
    }
}
