//! The server's integration tests, one binary: an in-process server on an ephemeral port,
//! driven by the `redis` crate, raw sockets, and the real `redis-cli` / `redis-benchmark`.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions fail the test by panicking"
)]

mod binary;
mod cli;
mod commands;
mod harness;
mod protocol;
mod store;
mod transactions;
