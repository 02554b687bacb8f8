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

/// OK packet with 0xFE header: the result-set terminator of CLIENT_DEPRECATE_EOF.
pub fn ok_terminator(status: u16, warnings: u16) -> Vec<u8> {
    let mut out = ok(0, 0, status, warnings);
    out[0] = 0xFE;
    out
}

pub fn eof(status: u16, warnings: u16) -> Vec<u8> {
    let mut out = Vec::with_capacity(5);
    out.push(0xFE);
    out.extend_from_slice(&warnings.to_le_bytes());
    out.extend_from_slice(&status.to_le_bytes());
    out
}

/// Terminator in the framing a client negotiated.
pub fn terminator(deprecate_eof: bool, status: u16, warnings: u16) -> Vec<u8> {
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
