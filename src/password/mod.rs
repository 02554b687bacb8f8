//! Password hashes and challenge answers (mysql_native_password, caching_sha2_password's
//! SHA-256 crypt): pure functions, used by client logins, backend logins and validation.

pub mod native;
pub mod sha2crypt;
