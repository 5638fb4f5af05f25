//! mcstore-server: one `mcstore_engine::Db` served over the Redis protocol (RESP2, RESP3 after
//! `HELLO 3`) on tokio, so `redis-cli`, `redis-benchmark` and Redis client libraries work
//! unchanged. `serve(db, config, shutdown)` or `Server::bind(db, config).await?.run(shutdown)`;
//! the `mcstore-server` binary wraps them. What is supported, the error replies, durability and
//! limits: `docs/server.md`.
#![forbid(unsafe_code)]

pub mod args;
pub mod clients;
pub mod commands;
pub mod config;
pub mod cursor;
pub mod errors;
pub mod glob;
pub mod limits;
pub mod reply;
pub mod resp;
pub mod server;
pub mod session;
pub mod shared;
pub mod store;
pub mod workers;

pub use args::{DurabilityArg, parse_size};
pub use config::{ServerConfig, server_policy};
pub use errors::ServerError;
pub use reply::Reply;
pub use server::{Server, serve, shutdown_signal};
