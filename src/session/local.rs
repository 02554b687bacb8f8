//! Statements Sluice answers itself so that what a client sees stays consistent:
//! `SELECT CONNECTION_ID()` returns the id of the client's handshake (the one `KILL` takes),
//! not the id of whichever pooled backend connection would run it; `SHOW STATUS LIKE
//! 'Ssl%'` describes the client's own TLS session, not the backend connection's.

use super::{Fatal, Session};
use crate::protocol::{lenenc, reply};
use mysql_common::constants::CapabilityFlags;

/// The column name of `SELECT CONNECTION_ID() [[AS] alias][;]`, else `None`.
pub(super) fn connection_id_column(sql: &[u8]) -> Option<&[u8]> {
    let s = sql.trim_ascii();
    let s = s.strip_suffix(b";").unwrap_or(s).trim_ascii_end();
    let rest = strip_word(s, b"select")?;
    let after_fn = strip_word(rest, b"connection_id")?;
    let after_open = after_fn.trim_ascii_start().strip_prefix(b"(")?;
    let after_close = after_open.trim_ascii_start().strip_prefix(b")")?;
    let expr = rest[..rest.len() - after_close.len()].trim_ascii();
    let alias = after_close.trim_ascii();
    if alias.is_empty() {
        return Some(expr);
    }
    let alias = strip_word(alias, b"as").unwrap_or(alias).trim_ascii_start();
    let alias = alias
        .strip_prefix(b"`")
        .and_then(|a| a.strip_suffix(b"`"))
        .unwrap_or(alias);
    let plain = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_' || *b == b'$';
    (!alias.is_empty() && alias.iter().all(plain)).then_some(alias)
}

/// The pattern of `SHOW [SESSION | LOCAL] STATUS LIKE 'Ssl...'[;]` (or `'Compression...'`),
/// else `None`: the client asks about its own connection's TLS session or compression,
/// which only Sluice knows (the backend's leg is another).
pub(super) fn ssl_status_like(sql: &[u8]) -> Option<&[u8]> {
    let s = sql.trim_ascii();
    let s = s.strip_suffix(b";").unwrap_or(s).trim_ascii_end();
    let mut rest = strip_word(s, b"show")?;
    rest = strip_word(rest, b"session")
        .or_else(|| strip_word(rest, b"local"))
        .unwrap_or(rest);
    let rest = strip_word(strip_word(rest, b"status")?, b"like")?.trim_ascii();
    let pattern = rest.strip_prefix(b"'")?.strip_suffix(b"'")?;
    let starts = |w: &[u8]| {
        pattern
            .get(..w.len())
            .is_some_and(|h| h.eq_ignore_ascii_case(w))
    };
    ((starts(b"ssl") || starts(b"compression")) && !pattern.contains(&b'\'')).then_some(pattern)
}

/// SQL `LIKE` (`%`, `_`, `\` escapes), ASCII case-insensitive.
pub(super) fn like(text: &[u8], pattern: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'%', rest)) => (0..=text.len()).any(|i| like(&text[i..], rest)),
        Some((b'_', rest)) => !text.is_empty() && like(&text[1..], rest),
        Some((b'\\', rest)) if !rest.is_empty() => {
            text.first()
                .is_some_and(|c| c.eq_ignore_ascii_case(&rest[0]))
                && like(&text[1..], &rest[1..])
        }
        Some((p, rest)) => {
            text.first().is_some_and(|c| c.eq_ignore_ascii_case(p)) && like(&text[1..], rest)
        }
    }
}

/// `s` without its leading keyword `w` (case-insensitive, followed by a non-word byte).
fn strip_word<'a>(s: &'a [u8], w: &[u8]) -> Option<&'a [u8]> {
    let s = s.trim_ascii_start();
    let head = s.get(..w.len())?;
    if !head.eq_ignore_ascii_case(w) {
        return None;
    }
    let rest = &s[w.len()..];
    match rest.first() {
        Some(b) if b.is_ascii_alphanumeric() || *b == b'_' => None,
        _ => Some(rest),
    }
}

/// A BIGINT UNSIGNED NOT NULL column definition.
fn bigint_column(name: &[u8], extended_metadata: bool) -> Vec<u8> {
    // 63 = binary, MYSQL_TYPE_LONGLONG; NOT NULL, UNSIGNED, BINARY
    column_def(name, extended_metadata, (63, 21, 0x08, 0x01 | 0x20 | 0x80))
}

/// A column definition (protocol 41) of a result set Sluice makes itself: `(charset,
/// length, type, flags)`, with an empty MariaDB extended-metadata block when the client
/// negotiated one.
pub(super) fn column_def(
    name: &[u8],
    extended_metadata: bool,
    (charset, length, ty, flags): (u16, u32, u8, u16),
) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + name.len());
    lenenc::write_str(&mut out, b"def");
    for part in [&b""[..], b"", b""] {
        lenenc::write_str(&mut out, part);
    }
    lenenc::write_str(&mut out, name);
    lenenc::write_str(&mut out, b"");
    if extended_metadata {
        lenenc::write_str(&mut out, b"");
    }
    out.push(0x0c);
    out.extend_from_slice(&charset.to_le_bytes());
    out.extend_from_slice(&length.to_le_bytes());
    out.push(ty);
    out.extend_from_slice(&flags.to_le_bytes());
    out.extend_from_slice(&[0, 0, 0]);
    out
}

impl Session {
    /// `SHOW STATUS LIKE 'Ssl...'`: the client's own TLS session (empty values over plain
    /// TCP, as a server shows them).
    pub(super) async fn ssl_status(&mut self, pattern: &[u8]) -> Result<(), Fatal> {
        let rows = self
            .own_status()
            .into_iter()
            .filter(|(name, _)| like(name.as_bytes(), pattern))
            .map(|(n, v)| (n.to_string(), v))
            .collect();
        self.send_text_table([b"Variable_name", b"Value"], rows)
            .await
    }

    /// The client's own `Compression`, `Ssl_cipher` and `Ssl_version` (see `ssl_status`).
    fn own_status(&self) -> [(&'static str, String); 3] {
        let tls = self.tls.clone().unwrap_or_default();
        let compressed = self
            .login
            .capabilities
            .contains(CapabilityFlags::CLIENT_COMPRESS);
        let compression = if compressed { "ON" } else { "OFF" }.to_string();
        [
            ("Compression", compression),
            ("Ssl_cipher", tls.cipher),
            ("Ssl_version", tls.version),
        ]
    }

    /// A read of `information_schema.SESSION_STATUS` (mentioned at `at` in `sql`): each
    /// mention becomes the backend connection's status with the client's own compression
    /// and TLS values in place of the backend leg's, and the read runs where diagnostics do.
    pub(super) async fn session_status_view(
        &mut self,
        sql: &[u8],
        at: &[(std::ops::Range<usize>, bool)],
        intent: &crate::router::Intent,
    ) -> Result<(), Fatal> {
        let own = self.own_status();
        let mut table = String::from(
            "(SELECT VARIABLE_NAME, VARIABLE_VALUE FROM information_schema.SESSION_STATUS \
             WHERE VARIABLE_NAME NOT IN ('COMPRESSION', 'SSL_CIPHER', 'SSL_VERSION')",
        );
        for (name, value) in &own {
            table.push_str(" UNION ALL SELECT '");
            table.push_str(&name.to_ascii_uppercase());
            table.push_str("', ");
            super::processlist_view::text(&mut table, value);
        }
        table.push(')');
        let text = super::processlist_view::replace(sql, at, &table, "SESSION_STATUS");
        let route = self.plain_route(intent);
        self.run_rewritten(text, route, intent).await
    }

    /// Sends a one-row, one-column result set with an unsigned integer.
    pub(super) async fn send_single_int(&mut self, name: &[u8], v: u64) -> Result<(), Fatal> {
        let status = self.state.status;
        let mut row = Vec::new();
        lenenc::write_str(&mut row, v.to_string().as_bytes());
        let w = &mut self.client_w;
        w.write_packet(&mut self.seq, &[1]).await?;
        let column = bigint_column(name, self.flavour.extended_metadata);
        w.write_packet(&mut self.seq, &column).await?;
        if !self.deprecate_eof {
            w.write_packet(&mut self.seq, &reply::eof(status, 0))
                .await?;
        }
        w.write_packet(&mut self.seq, &row).await?;
        let end = reply::terminator(self.deprecate_eof, status, 0);
        w.write_packet(&mut self.seq, &end).await?;
        w.flush().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::connection_id_column as col;

    #[test]
    fn recognises_only_the_plain_shapes() {
        assert_eq!(
            col(b"SELECT CONNECTION_ID()"),
            Some(&b"CONNECTION_ID()"[..])
        );
        assert_eq!(
            col(b" select connection_id ( ) ;"),
            Some(&b"connection_id ( )"[..])
        );
        assert_eq!(col(b"SELECT CONNECTION_ID() AS id"), Some(&b"id"[..]));
        assert_eq!(col(b"select connection_id() as cid;"), Some(&b"cid"[..]));
        assert_eq!(col(b"SELECT CONNECTION_ID() `x y`"), None);
        assert_eq!(col(b"SELECT CONNECTION_ID() cid"), Some(&b"cid"[..]));
        assert_eq!(col(b"SELECT CONNECTION_ID(), 1"), None);
        assert_eq!(col(b"SELECT CONNECTION_ID() + 1"), None);
        assert_eq!(col(b"SELECT CONNECTION_IDS()"), None);
        assert_eq!(col(b"SELECTCONNECTION_ID()"), None);
    }

    #[test]
    fn the_connections_own_status_is_recognised() {
        use super::ssl_status_like as own;
        assert_eq!(
            own(b"SHOW STATUS LIKE 'Ssl_cipher'"),
            Some(&b"Ssl_cipher"[..])
        );
        assert_eq!(
            own(b"show session status like 'compression';"),
            Some(&b"compression"[..])
        );
        assert_eq!(own(b"SHOW STATUS LIKE 'Com_select'"), None);
        assert_eq!(own(b"SHOW STATUS LIKE 'Compression' OR 1"), None);
    }
}
