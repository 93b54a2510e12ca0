//! Huddle's load generator: many protocol v1 clients against running servers, measuring
//! what the benchmarks need — connect rate, delivered messages/s, latency
//! percentiles (HdrHistogram), lost and duplicated messages by offset, and the server's
//! CPU and memory from `/proc`.
//!
//! The `loadgen` binary is a thin command line over [`run`], [`verify()`] and the plot;
//! `cargo xtask bench` starts servers and drives it; `tests/smoke.rs` runs a small
//! scenario against the real `huddle` binary in CI.
//!
//! # Layout
//! - [`scenario`]: the run's shape (clients → servers, source addresses, rooms,
//!   senders, pacing) as functions of the client index, the hard caps, the stamped text.
//! - `conn`: one client connection as one task (set-up, reading, sending on schedule),
//!   over a WebSocket or (`--transport sse`) the SSE fallback.
//! - [`event_stream`]: the SSE stream's bytes: the response head, the chunked coding,
//!   the `text/event-stream` format, each parsed in pieces as the socket gives them.
//! - [`measure`]: counters, the latency histogram, the offset tracker for loss and
//!   duplicates.
//! - [`procstat`]: RSS, CPU time and the open-files limit from `/proc`.
//! - `runner`: the phases of a run, each with a deadline, and the report assembled.
//! - [`report`]: the JSON line and the human summary.
//! - [`verify`]: reading history back after a crash to check every ack.
//! - [`plot`]: the `fanout` SVG chart and the layout of `results.jsonl`.
//! - [`signins`]: sign-ins per second (login over HTTP, `hello {token}`, guest `hello`).
//! - [`alerts`]: alerts per second into the inboxes of a big room (`@nick` mentions, or
//!   members at level `all`), each checked by `seq`; `guest` is the signed-in guest
//!   connection it and `pushes` use.
//! - [`pushes`]: Web Pushes per second from the notifications API into a local push
//!   service (`push_service`) that decrypts every one.
//! - [`floor`]: `loadgen floor`, a minimal broadcast server speaking the clients' part
//!   of the protocol, the floor `cargo xtask bench` measures Huddle against.
//! - [`history`](mod@history): `history` page latency in a room whose messages carry
//!   reactions and edits (or plain ones), every page checked once.

pub mod alerts;
mod conn;
pub mod event_stream;
pub mod floor;
mod guest;
pub mod history;
pub mod measure;
pub mod plot;
pub mod procstat;
mod push_service;
pub mod pushes;
pub mod report;
mod runner;
pub mod scenario;
pub mod signins;
pub mod verify;

pub use conn::AckRecord;
pub use report::Report;
pub use runner::{run, Options, Outcome, RunError};
pub use scenario::{Load, Scenario, Transport};
pub use verify::{verify, Verdict};
