//! The server's integration tests, one binary: an in-process server on an ephemeral port,
//! driven by the `redis` crate, raw sockets, and the real `redis-cli` / `redis-benchmark`; the
//! Halt policy in a re-executed child.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions fail the test by panicking"
)]

mod binary;
mod cli;
mod clients;
mod commands;
mod halt;
mod harness;
mod protocol;
mod store;
mod transactions;
