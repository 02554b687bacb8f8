//! COM_STMT_EXECUTE packet surgery: statement-id remapping and parameter-type replay.
//!
//! Clients send parameter types only when they (re)bind; the backend connection that serves
//! a later execution may never have seen them, so Sluice remembers the types and always sends
//! them.

const HEADER: usize = 10; // command, statement id (4), flags (1), iteration count (4)

/// Parsed view of where the parameter block of an execute packet lives.
#[derive(Debug, PartialEq, Eq)]
pub struct ExecuteLayout {
    pub flags: u8,
    /// Offset of the new-params-bound flag byte (None when the statement has no parameters).
    pub bound_flag_at: Option<usize>,
    /// Parameter types sent in this packet, if any.
    pub types: Option<(usize, usize)>,
}

pub fn statement_id(payload: &[u8]) -> Option<u32> {
    Some(u32::from_le_bytes(payload.get(1..5)?.try_into().ok()?))
}

pub fn layout(payload: &[u8], num_params: u16) -> Option<ExecuteLayout> {
    if payload.len() < HEADER {
        return None;
    }
    let flags = payload[5];
    if num_params == 0 {
        return Some(ExecuteLayout {
            flags,
            bound_flag_at: None,
            types: None,
        });
    }
    let at = HEADER + (num_params as usize).div_ceil(8);
    let bound = *payload.get(at)?;
    let types = if bound == 1 {
        let end = at + 1 + 2 * num_params as usize;
        if payload.len() < end {
            return None;
        }
        Some((at + 1, end))
    } else {
        None
    };
    Some(ExecuteLayout {
        flags,
        bound_flag_at: Some(at),
        types,
    })
}

/// Rewrites `payload` for the backend into `out`: its statement id, and the parameter types
/// (inserted from `types` when the client did not send them). The types the packet carried
/// replace `types` (in place: no allocation per execution once they are known). `None` if
/// the packet is malformed.
pub fn rewrite(
    payload: &[u8],
    num_params: u16,
    backend_id: u32,
    types: &mut Option<Vec<u8>>,
    out: &mut Vec<u8>,
) -> Option<()> {
    let l = layout(payload, num_params)?;
    out.clear();
    out.extend_from_slice(&payload[..1]);
    out.extend_from_slice(&backend_id.to_le_bytes());
    match (l.bound_flag_at, l.types) {
        (Some(_), Some((s, e))) => {
            out.extend_from_slice(&payload[5..]);
            let (sent, known) = (&payload[s..e], types.get_or_insert_with(Vec::new));
            if known[..] != *sent {
                known.clear();
                known.extend_from_slice(sent);
            }
        }
        (Some(at), None) => {
            let known = types.as_deref()?;
            out.extend_from_slice(&payload[5..at]);
            out.push(1);
            out.extend_from_slice(known);
            out.extend_from_slice(&payload[at + 1..]);
        }
        (None, _) => out.extend_from_slice(&payload[5..]),
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exec(id: u32, params: &[u8]) -> Vec<u8> {
        let mut p = vec![0x17];
        p.extend_from_slice(&id.to_le_bytes());
        p.push(0);
        p.extend_from_slice(&1u32.to_le_bytes());
        p.extend_from_slice(params);
        p
    }

    #[test]
    fn remaps_id_and_keeps_types() {
        // one param: null bitmap 0, bound 1, type LONGLONG (8,0), value 8 bytes
        let p = exec(7, &[0, 1, 8, 0, 5, 0, 0, 0, 0, 0, 0, 0]);
        let mut out = Vec::new();
        let mut types = None;
        assert_eq!(rewrite(&p, 1, 99, &mut types, &mut out), Some(()));
        assert_eq!(types, Some(vec![8, 0]));
        assert_eq!(statement_id(&out), Some(99));
        assert_eq!(&out[5..], &p[5..]);
        // a rebind with other types replaces them (in the same buffer)
        let p = exec(7, &[0, 1, 3, 0, 5, 0, 0, 0]);
        let before = types.as_ref().unwrap().as_ptr();
        assert_eq!(rewrite(&p, 1, 99, &mut types, &mut out), Some(()));
        assert_eq!(types, Some(vec![3, 0]));
        assert_eq!(types.as_ref().unwrap().as_ptr(), before);
    }

    #[test]
    fn inserts_remembered_types() {
        let p = exec(7, &[0, 0, 5, 0, 0, 0, 0, 0, 0, 0]);
        let mut out = Vec::new();
        let mut types = Some(vec![8, 0]);
        assert_eq!(rewrite(&p, 1, 3, &mut types, &mut out), Some(()));
        assert_eq!(out, exec(3, &[0, 1, 8, 0, 5, 0, 0, 0, 0, 0, 0, 0]));
    }

    #[test]
    fn unbound_without_known_types_is_malformed() {
        let p = exec(7, &[0, 0]);
        assert_eq!(rewrite(&p, 1, 3, &mut None, &mut Vec::new()), None);
        assert_eq!(rewrite(&p[..4], 0, 3, &mut None, &mut Vec::new()), None);
    }
}
