//! The server's integration tests, in one test binary: one link instead of one per file.
//! Each module holds one area; `support` starts real servers on 127.0.0.1 and speaks the
//! protocol as JSON values.
//!
//! Tests that need a tool beyond Rust (Chromium and chromedriver, redis-server, nginx)
//! are `#[ignore]`d with the reason: a plain `cargo test` lists them as ignored, and
//! `cargo xtask test` checks the tools and runs them with `--include-ignored`, where a
//! missing tool fails the test.

mod support;

mod accounts;
mod admission;
mod amplification;
mod api;
mod browser;
mod conversation;
mod delivery;
mod faults;
mod http_limits;
mod lifecycle;
mod limits;
mod members;
mod notifications;
mod ops;
mod people;
mod protocol;
mod readme;
mod redis_cluster;
mod redis_store;
mod retention;
mod sse;
mod tls;
