//! Building and parsing the small generic replies: OK, ERR, EOF.

use super::lenenc;

/// The fields of an OK packet (or a 0xFE-headed OK terminator) that Sluice cares about.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OkInfo {
    pub affected_rows: u64,
    pub last_insert_id: u64,
    pub status: u16,
    pub warnings: u16,
}

/// Parses an OK payload (header 0x00 or 0xFE) with protocol 41 layout.
pub fn parse_ok(payload: &[u8]) -> Option<OkInfo> {
    let mut pos = 1;
    let affected_rows = lenenc::read_int(payload, &mut pos)?;
    let last_insert_id = lenenc::read_int(payload, &mut pos)?;
    let status = lenenc::u16_at(payload, pos)?;
    let warnings = lenenc::u16_at(payload, pos + 2)?;
    Some(OkInfo {
        affected_rows,
        last_insert_id,
        status,
        warnings,
    })
}

/// Parses a classic EOF payload: (warnings, status).
pub fn parse_eof(payload: &[u8]) -> Option<(u16, u16)> {
    Some((lenenc::u16_at(payload, 1)?, lenenc::u16_at(payload, 3)?))
}

pub fn ok(affected_rows: u64, last_insert_id: u64, status: u16, warnings: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(11);
    out.push(0x00);
    lenenc::write_int(&mut out, affected_rows);
    lenenc::write_int(&mut out, last_insert_id);
    out.extend_from_slice(&status.to_le_bytes());
    out.extend_from_slice(&warnings.to_le_bytes());
    out
}

/// A result-set terminator built on the stack (at most 7 bytes): the relay synthesizes one
/// per result set when the client and the backend frame them differently.
#[derive(Clone, Copy)]
pub struct Terminator {
    bytes: [u8; 7],
    len: u8,
}

impl std::ops::Deref for Terminator {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }
}

impl std::fmt::Debug for Terminator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", &**self)
    }
}

/// OK packet with 0xFE header: the result-set terminator of CLIENT_DEPRECATE_EOF (no
/// affected rows, no insert id).
pub fn ok_terminator(status: u16, warnings: u16) -> Terminator {
    let [s0, s1] = status.to_le_bytes();
    let [w0, w1] = warnings.to_le_bytes();
    Terminator {
        bytes: [0xFE, 0, 0, s0, s1, w0, w1],
        len: 7,
    }
}

pub fn eof(status: u16, warnings: u16) -> Terminator {
    let [s0, s1] = status.to_le_bytes();
    let [w0, w1] = warnings.to_le_bytes();
    Terminator {
        bytes: [0xFE, w0, w1, s0, s1, 0, 0],
        len: 5,
    }
}

/// Terminator in the framing a client negotiated.
pub fn terminator(deprecate_eof: bool, status: u16, warnings: u16) -> Terminator {
    if deprecate_eof {
        ok_terminator(status, warnings)
    } else {
        eof(status, warnings)
    }
}

/// ERR packet payload (protocol 41).
pub fn err(code: u16, state: &str, msg: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(9 + msg.len());
    out.push(0xFF);
    out.extend_from_slice(&code.to_le_bytes());
    out.push(b'#');
    let st = state.as_bytes();
    out.extend_from_slice(&st[..st.len().min(5)]);
    out.extend_from_slice(msg.as_bytes());
    out
}

/// (code, sqlstate, message) of an ERR payload.
pub fn parse_err(payload: &[u8]) -> Option<(u16, String, String)> {
    let code = lenenc::u16_at(payload, 1)?;
    let rest = payload.get(3..)?;
    if rest.first() == Some(&b'#') && rest.len() >= 6 {
        let state = String::from_utf8_lossy(&rest[1..6]).into_owned();
        Some((
            code,
            state,
            String::from_utf8_lossy(&rest[6..]).into_owned(),
        ))
    } else {
        Some((
            code,
            "HY000".into(),
            String::from_utf8_lossy(rest).into_owned(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminators_encode_like_the_protocol() {
        let mut ok_t = ok(0, 0, 0x0022, 3);
        ok_t[0] = 0xFE;
        assert_eq!(&*ok_terminator(0x0022, 3), &ok_t[..]);
        assert_eq!(&*eof(0x0022, 3), &[0xFE, 3, 0, 0x22, 0][..]);
        assert_eq!(parse_eof(&eof(0x0102, 7)), Some((7, 0x0102)));
        let t = parse_ok(&terminator(true, 0x0002, 1)).unwrap();
        assert_eq!((t.status, t.warnings), (0x0002, 1));
    }

    #[test]
    fn ok_roundtrip() {
        let p = ok(3, 300, 0x0002, 1);
        assert_eq!(
            parse_ok(&p),
            Some(OkInfo {
                affected_rows: 3,
                last_insert_id: 300,
                status: 2,
                warnings: 1
            })
        );
        let t = ok_terminator(0x22, 0);
        assert_eq!(t[0], 0xFE);
        assert_eq!(parse_ok(&t).unwrap().status, 0x22);
    }

    #[test]
    fn err_roundtrip() {
        let e = err(1045, "28000", "Access denied");
        assert_eq!(
            parse_err(&e),
            Some((1045, "28000".into(), "Access denied".into()))
        );
    }

    #[test]
    fn eof_layout() {
        assert_eq!(parse_eof(&eof(0x0A, 2)), Some((2, 0x0A)));
    }
}
