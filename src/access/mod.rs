//! Who may log in and how often: accounts read from the backend (`[auth] users =
//! "backend"`), failed logins per client host, open sessions per user. State shared by the
//! login path (`frontend`) and the rest of the proxy.

pub mod accounts;
pub mod throttle;
pub mod user_limit;
