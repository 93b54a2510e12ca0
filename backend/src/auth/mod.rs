//! The rules of proving who you are: password hashing and strength (`password`),
//! account tokens (`tokens`), verifying JWTs minted by a host application (`jwt`), and
//! slowing down password guessing (`throttle`).
//!
//! Everything here is synchronous and free of I/O: the callers own the storage (the
//! directory keeps password hashes and token hashes) and the transport. What leaves this
//! module for a client is always one undifferentiated "not signed in"; the error types
//! carry the detail for the server's log only.
//!
//! The argon2 work in `password` takes tens of milliseconds of CPU: callers on the async
//! runtime run it on a blocking thread (`tokio::task::spawn_blocking`).

pub(crate) mod jwt;
pub(crate) mod password;
pub(crate) mod throttle;
pub(crate) mod tokens;
