//! mysql_native_password arithmetic for accounts known only by their stored hash
//! (`*` + hex of SHA1(SHA1(password)), as in `mysql.user`).
//!
//! The client answers a nonce with `SHA1(pw) XOR SHA1(nonce + SHA1(SHA1(pw)))`. Whoever holds
//! SHA1(SHA1(pw)) can recover SHA1(pw) from that answer, check it, and use it to answer
//! another server's nonce: that is how Sluice logs in to backends as such a user. SHA1(pw) is
//! kept in memory for the session only, never stored or logged.

use sha1::{Digest, Sha1};

pub type Hash = [u8; 20];

fn sha1(parts: &[&[u8]]) -> Hash {
    let mut h = Sha1::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

/// Parses `*<40 hex>` (the mysql_native_password `authentication_string`).
pub fn parse_stored(s: &str) -> Option<Hash> {
    let hex = s.strip_prefix('*')?;
    if hex.len() != 40 {
        return None;
    }
    let mut out = [0u8; 20];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// The stored form of a password: SHA1(SHA1(pw)).
pub fn stored_of(password: &str) -> Hash {
    sha1(&[&sha1(&[password.as_bytes()])])
}

/// Checks a client's answer to `nonce` against the stored SHA1(SHA1(pw)); returns SHA1(pw).
pub fn recover(answer: &[u8], nonce: &[u8], stored: &Hash) -> Option<Hash> {
    if answer.len() != 20 {
        return None;
    }
    let mask = sha1(&[nonce, stored]);
    let mut h1 = [0u8; 20];
    for i in 0..20 {
        h1[i] = answer[i] ^ mask[i];
    }
    use subtle::ConstantTimeEq;
    bool::from(sha1(&[&h1]).ct_eq(stored)).then_some(h1)
}

/// The answer to `nonce` from SHA1(pw).
pub fn answer(nonce: &[u8], h1: &Hash) -> Vec<u8> {
    let mask = sha1(&[nonce, &sha1(&[h1])]);
    h1.iter().zip(mask).map(|(a, b)| a ^ b).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use mysql_common::auth::plugins::mysql_native_password::scramble_native;

    #[test]
    fn recovers_and_reanswers_like_the_real_scramble() {
        let nonce = b"abcdefghij0123456789";
        let client = scramble_native(nonce, b"s3cret").unwrap();
        let stored = stored_of("s3cret");
        let h1 = recover(&client, nonce, &stored).expect("right password");
        let other = b"ZYXWVUTSRQ9876543210";
        assert_eq!(
            answer(other, &h1),
            scramble_native(other, b"s3cret").unwrap()
        );
        let wrong = scramble_native(nonce, b"guess").unwrap();
        assert!(recover(&wrong, nonce, &stored).is_none());
        // the well-known stored form of "password"
        let p = parse_stored("*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19").unwrap();
        assert_eq!(p, stored_of("password"));
        assert!(parse_stored("2470C0").is_none());
    }
}
