//! The RSA key pair of caching_sha2_password's key exchange (a client without TLS encrypts
//! its password with the public key). Generated once per process on first use, never
//! written anywhere.
//!
//! The `rsa` crate's decryption is not constant-time (RUSTSEC-2023-0071, "Marvin"); an
//! attacker needs a very large number of timed decryptions, and every failed one is a failed
//! login that counts toward the per-host `listen.auth_failure_limit`. Clients that can should
//! use TLS, where no RSA decryption happens.

use rsa::pkcs8::{EncodePublicKey, LineEnding};
use rsa::{Oaep, RsaPrivateKey};
use std::sync::Arc;
use tokio::sync::OnceCell;

const BITS: usize = 2048;

struct Keys {
    private: RsaPrivateKey,
    public_pem: String,
}

static KEYS: OnceCell<Arc<Keys>> = OnceCell::const_new();

async fn keys() -> Result<Arc<Keys>, String> {
    KEYS.get_or_try_init(|| async {
        tokio::task::spawn_blocking(|| {
            let private = RsaPrivateKey::new(&mut rsa::rand_core::OsRng, BITS)
                .map_err(|e| format!("RSA key generation failed: {e}"))?;
            let public_pem = private
                .to_public_key()
                .to_public_key_pem(LineEnding::LF)
                .map_err(|e| format!("RSA public key encoding failed: {e}"))?;
            Ok(Arc::new(Keys {
                private,
                public_pem,
            }))
        })
        .await
        .map_err(|e| format!("RSA key generation task failed: {e}"))?
    })
    .await
    .cloned()
}

/// The public key in PEM (SubjectPublicKeyInfo), as MySQL sends it.
pub async fn public_pem() -> Result<String, String> {
    Ok(keys().await?.public_pem.clone())
}

/// Decrypts a client's RSA-OAEP (SHA-1) message; `None` if it is not one.
pub async fn decrypt(ciphertext: &[u8]) -> Result<Option<Vec<u8>>, String> {
    let k = keys().await?;
    Ok(k.private
        .decrypt(Oaep::new::<sha1::Sha1>(), ciphertext)
        .ok())
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn a_client_encrypted_password_decrypts() {
        let pem = super::public_pem().await.unwrap();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"), "{pem}");
        let msg = b"secret\0".to_vec();
        let enc = mysql_common::crypto::encrypt(&msg, pem.as_bytes()).unwrap();
        assert_eq!(super::decrypt(&enc).await.unwrap(), Some(msg));
        assert_eq!(super::decrypt(b"garbage").await.unwrap(), None);
    }
}
