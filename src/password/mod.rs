//! Password hashes and challenge answers (mysql_native_password, caching_sha2_password's
//! SHA-256 crypt, MariaDB's ed25519): pure functions, used by client logins, backend logins and validation.

pub mod ed25519;
pub mod native;
pub mod sha2crypt;
