//! A client's way in: the greeting, TLS, authentication (`auth`, `login`), the RSA key of
//! caching_sha2_password; the accept loop that starts sessions is `session::accept`.

pub mod auth;
pub mod login;
pub mod rsa_key;

/// The `password_hash` forms of `password`: `*` + hex SHA1(SHA1(pw)) (mysql_native_password)
/// and `0x` + hex of a caching_sha2_password string with a random salt (the hex form keeps
/// the salt's bytes TOML-safe).
pub fn password_hashes(password: &str) -> (String, String) {
    use crate::password::{native, sha2crypt};
    use rand::Rng;
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02X}")).collect::<String>();
    let native = format!("*{}", hex(&native::stored_of(password)));
    let mut rng = rand::rng();
    let salt: Vec<u8> = (0..20)
        .map(|_| rng.sample(rand::distr::Alphanumeric))
        .collect();
    let sha2 = sha2crypt::Sha2Crypt::new(password.as_bytes(), &salt, 5000);
    (native, format!("0x{}", hex(&sha2.to_bytes())))
}
