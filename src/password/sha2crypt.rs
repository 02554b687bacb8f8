//! caching_sha2_password's stored form: `$A$<rounds/1000 as 3 hex digits>$<20-byte salt><43
//! characters of SHA-256 crypt>` (Drepper's SHA-crypt with MySQL's longer salt), as in
//! `mysql.user.authentication_string` of MySQL 8. Verifying needs the plaintext password,
//! which the client sends only on caching_sha2_password's full authentication.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const ITOA64: &[u8; 64] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const SALT_LEN: usize = 20;
const DIGEST_LEN: usize = 43;

/// A parsed `$A$...` string.
#[derive(Clone, PartialEq, Eq)]
pub struct Sha2Crypt {
    rounds: u32,
    salt: Vec<u8>,
    digest: Vec<u8>,
}

impl std::fmt::Debug for Sha2Crypt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sha2Crypt(rounds {})", self.rounds) // never the digest
    }
}

impl Sha2Crypt {
    /// Parses the stored form (raw bytes, or `0x` + hex of them as MySQL prints it with
    /// `print_identified_with_as_hex`).
    pub fn parse(stored: &[u8]) -> Option<Sha2Crypt> {
        let raw;
        let s = match stored.strip_prefix(b"0x") {
            Some(hex) => {
                raw = decode_hex(hex)?;
                &raw[..]
            }
            None => stored,
        };
        let rest = s.strip_prefix(b"$A$")?;
        let count = std::str::from_utf8(rest.get(..3)?).ok()?;
        let rounds = u32::from_str_radix(count, 16).ok()?.checked_mul(1000)?;
        let rest = rest.get(3..)?.strip_prefix(b"$")?;
        if rest.len() != SALT_LEN + DIGEST_LEN || rounds == 0 {
            return None;
        }
        Some(Sha2Crypt {
            rounds,
            salt: rest[..SALT_LEN].to_vec(),
            digest: rest[SALT_LEN..].to_vec(),
        })
    }

    /// The stored form of `password` with `salt` (20 bytes) and `rounds` (multiple of 1000).
    pub fn new(password: &[u8], salt: &[u8], rounds: u32) -> Sha2Crypt {
        Sha2Crypt {
            rounds,
            salt: salt.to_vec(),
            digest: sha256_crypt(password, salt, rounds),
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("$A${:03X}$", self.rounds / 1000).into_bytes();
        out.extend_from_slice(&self.salt);
        out.extend_from_slice(&self.digest);
        out
    }

    /// Whether `password` is the one this was made from (constant-time compare).
    pub fn verify(&self, password: &[u8]) -> bool {
        let d = sha256_crypt(password, &self.salt, self.rounds);
        d.ct_eq(&self.digest).into()
    }
}

fn decode_hex(hex: &[u8]) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    hex.chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).ok()?, 16).ok())
        .collect()
}

/// `len` bytes of `block` repeated.
fn stretch(block: &[u8], len: usize) -> Vec<u8> {
    block.iter().copied().cycle().take(len).collect()
}

/// Drepper's SHA-256 crypt, the 43-character encoded digest (no salt length limit).
pub fn sha256_crypt(password: &[u8], salt: &[u8], rounds: u32) -> Vec<u8> {
    let b = Sha256::new()
        .chain_update(password)
        .chain_update(salt)
        .chain_update(password)
        .finalize();
    let mut a = Sha256::new().chain_update(password).chain_update(salt);
    a.update(stretch(&b, password.len()));
    let mut n = password.len();
    while n > 0 {
        if n & 1 == 1 {
            a.update(b);
        } else {
            a.update(password);
        }
        n >>= 1;
    }
    let mut a = a.finalize();
    let mut dp = Sha256::new();
    for _ in 0..password.len() {
        dp.update(password);
    }
    let p = stretch(&dp.finalize(), password.len());
    let mut ds = Sha256::new();
    for _ in 0..16 + a[0] as usize {
        ds.update(salt);
    }
    let s = stretch(&ds.finalize(), salt.len());
    for i in 0..rounds {
        let mut c = Sha256::new();
        if i & 1 == 1 {
            c.update(&p);
        } else {
            c.update(a);
        }
        if i % 3 != 0 {
            c.update(&s);
        }
        if i % 7 != 0 {
            c.update(&p);
        }
        if i & 1 == 1 {
            c.update(a);
        } else {
            c.update(&p);
        }
        a = c.finalize();
    }
    encode(&a)
}

fn encode(a: &[u8]) -> Vec<u8> {
    const ORDER: [(usize, usize, usize); 10] = [
        (0, 10, 20),
        (21, 1, 11),
        (12, 22, 2),
        (3, 13, 23),
        (24, 4, 14),
        (15, 25, 5),
        (6, 16, 26),
        (27, 7, 17),
        (18, 28, 8),
        (9, 19, 29),
    ];
    let mut out = Vec::with_capacity(DIGEST_LEN);
    let mut put = |w: u32, n: usize| {
        let mut w = w;
        for _ in 0..n {
            out.push(ITOA64[(w & 0x3f) as usize]);
            w >>= 6;
        }
    };
    for (x, y, z) in ORDER {
        put((a[x] as u32) << 16 | (a[y] as u32) << 8 | a[z] as u32, 4);
    }
    put((a[31] as u32) << 8 | a[30] as u32, 3);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drepper_vectors() {
        // from "Unix crypt using SHA-256 and SHA-512" (Drepper), salts of at most 16
        assert_eq!(
            sha256_crypt(b"Hello world!", b"saltstring", 5000),
            b"5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5"
        );
        assert_eq!(
            sha256_crypt(b"Hello world!", b"saltstringsaltst", 10000),
            b"3xv.VbSHBb41AL9AvLeujZkZRBAwqFMz2.opqey6IcA"
        );
        assert_eq!(
            sha256_crypt(b"This is just a test", b"toolongsaltstrin", 5000),
            b"Un/5jzAHMgOGZ5.mWJpuVolil07guHPvOW8mGRcvxa5"
        );
    }

    #[test]
    fn stored_form_round_trips_and_verifies() {
        let c = Sha2Crypt::new(b"s3cret", b"abcdefghij0123456789", 5000);
        let stored = c.to_bytes();
        assert_eq!(&stored[..7], b"$A$005$");
        assert_eq!(stored.len(), 70);
        let parsed = Sha2Crypt::parse(&stored).unwrap();
        assert!(parsed.verify(b"s3cret"));
        assert!(!parsed.verify(b"s3cret "));
        let hex: String = stored.iter().map(|b| format!("{b:02X}")).collect();
        assert_eq!(
            Sha2Crypt::parse(format!("0x{hex}").as_bytes()),
            Some(parsed)
        );
        assert!(Sha2Crypt::parse(b"$A$005$short").is_none());
        assert!(Sha2Crypt::parse(b"*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19").is_none());
        assert!(!format!("{c:?}").contains("$A$"));
    }
}
