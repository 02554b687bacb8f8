//! Length-encoded integers and strings, and a tiny cursor for parsing payloads.

/// Reads a length-encoded integer at `buf[*pos..]`, advancing `pos`. `None` when truncated
/// or when the first byte is not a valid length prefix (0xFB NULL, 0xFF).
pub fn read_int(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let first = *buf.get(*pos)?;
    let (len, start) = match first {
        0..=0xFA => {
            *pos += 1;
            return Some(first as u64);
        }
        0xFC => (2, *pos + 1),
        0xFD => (3, *pos + 1),
        0xFE => (8, *pos + 1),
        _ => return None,
    };
    let bytes = buf.get(start..start + len)?;
    let mut v = 0u64;
    for (i, b) in bytes.iter().enumerate() {
        v |= (*b as u64) << (8 * i);
    }
    *pos = start + len;
    Some(v)
}

/// Reads a length-encoded string; `Some(None)` for SQL NULL (0xFB).
pub fn read_str<'a>(buf: &'a [u8], pos: &mut usize) -> Option<Option<&'a [u8]>> {
    if *buf.get(*pos)? == 0xFB {
        *pos += 1;
        return Some(None);
    }
    let len = read_int(buf, pos)? as usize;
    let s = buf.get(*pos..pos.checked_add(len)?)?;
    *pos += len;
    Some(Some(s))
}

pub fn write_int(out: &mut Vec<u8>, v: u64) {
    match v {
        0..=0xFA => out.push(v as u8),
        0xFB..=0xFFFF => {
            out.push(0xFC);
            out.extend_from_slice(&(v as u16).to_le_bytes());
        }
        0x1_0000..=0xFF_FFFF => {
            out.push(0xFD);
            out.extend_from_slice(&(v as u32).to_le_bytes()[..3]);
        }
        _ => {
            out.push(0xFE);
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
}

pub fn write_str(out: &mut Vec<u8>, s: &[u8]) {
    write_int(out, s.len() as u64);
    out.extend_from_slice(s);
}

pub fn u16_at(buf: &[u8], pos: usize) -> Option<u16> {
    Some(u16::from_le_bytes(buf.get(pos..pos + 2)?.try_into().ok()?))
}

pub fn u32_at(buf: &[u8], pos: usize) -> Option<u32> {
    Some(u32::from_le_bytes(buf.get(pos..pos + 4)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_roundtrip() {
        for v in [
            0u64,
            1,
            250,
            251,
            0xFFFF,
            0x1_0000,
            0xFF_FFFF,
            0x100_0000,
            u64::MAX,
        ] {
            let mut out = Vec::new();
            write_int(&mut out, v);
            let mut pos = 0;
            assert_eq!(read_int(&out, &mut pos), Some(v));
            assert_eq!(pos, out.len());
        }
    }

    #[test]
    fn truncated_and_null() {
        let mut pos = 0;
        assert_eq!(read_int(&[0xFC, 1], &mut pos), None);
        let mut pos = 0;
        assert_eq!(read_str(&[0xFB], &mut pos), Some(None));
        let mut pos = 0;
        assert_eq!(read_str(&[3, b'a'], &mut pos), None);
    }
}
