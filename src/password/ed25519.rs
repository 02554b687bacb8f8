//! MariaDB's `ed25519` authentication: the account stores the Ed25519 public key of a key
//! pair derived from the password (SHA-512 of the password is the expanded secret key), as
//! unpadded base64 (43 characters); the client signs the server's 32-byte nonce with it
//! (`client_ed25519`). Standard Ed25519 otherwise, so `ed25519-dalek` computes both.

use base64::Engine;
use ed25519_dalek::hazmat::{raw_sign, ExpandedSecretKey};
use ed25519_dalek::VerifyingKey;
use sha2::{Digest, Sha512};

/// The stored form of an account: its public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey(pub [u8; 32]);

fn expanded(password: &[u8]) -> ExpandedSecretKey {
    let hash: [u8; 64] = Sha512::digest(password).into();
    ExpandedSecretKey::from_bytes(&hash)
}

impl PublicKey {
    /// The public key of `password`.
    pub fn of(password: &[u8]) -> PublicKey {
        PublicKey(VerifyingKey::from(&expanded(password)).to_bytes())
    }

    /// `mysql.user.authentication_string` of an ed25519 account (base64, padded or not).
    pub fn parse(stored: &str) -> Option<PublicKey> {
        let engine = base64::engine::general_purpose::STANDARD_NO_PAD;
        let bytes = engine.decode(stored.trim_end_matches('=')).ok()?;
        Some(PublicKey(bytes.try_into().ok()?))
    }

    /// Whether `password` is this account's password.
    pub fn matches(&self, password: &[u8]) -> bool {
        PublicKey::of(password) == *self
    }
}

/// The `client_ed25519` answer to `nonce`: its signature with the key of `password`.
pub fn sign(password: &[u8], nonce: &[u8]) -> [u8; 64] {
    let esk = expanded(password);
    let vk = VerifyingKey::from(&esk);
    raw_sign::<Sha512>(&esk, nonce, &vk).to_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Stored forms computed by MariaDB 10.11 (`CREATE USER ... IDENTIFIED VIA ed25519 USING
    /// PASSWORD('...')`, then `mysql.user.authentication_string`).
    #[test]
    fn public_keys_as_the_server_computes_them() {
        for (password, stored) in KNOWN {
            let pk = PublicKey::parse(stored).unwrap();
            assert!(pk.matches(password.as_bytes()), "{password}");
            assert!(!pk.matches(b"other"));
        }
        assert!(PublicKey::parse("not base64!").is_none());
        assert!(PublicKey::parse("AAAA").is_none(), "too short");
    }

    #[test]
    fn signatures_verify_under_the_public_key() {
        use ed25519_dalek::Verifier;
        let nonce = [7u8; 32];
        let sig = sign(b"secret", &nonce);
        let vk = VerifyingKey::from_bytes(&PublicKey::of(b"secret").0).unwrap();
        assert!(vk
            .verify(&nonce, &ed25519_dalek::Signature::from_bytes(&sig))
            .is_ok());
        assert!(vk
            .verify(&[8u8; 32], &ed25519_dalek::Signature::from_bytes(&sig))
            .is_err());
    }

    const KNOWN: [(&str, &str); 2] = [("secret", SECRET), ("p'a\"ss w0rd", QUOTED)];
    const SECRET: &str = "ZIgUREUg5PVgQ6LskhXmO+eZLS0nC8be6HPjYWR4YJY";
    const QUOTED: &str = "EZmLJVuGzY6fL5EExKPC0r9/UQxPvz08QpV0BS5/QCc";
}
