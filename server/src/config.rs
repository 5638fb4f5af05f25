//! `ServerConfig`: where the server listens, who may talk to it, and its limits.
//!
//! INVARIANT: plain data; `Server::bind` validates it once.

use std::time::Duration;

use crate::limits::{CLIENTS_MAX_DEFAULT, REQUEST_BYTES_MAX_DEFAULT, WORKERS_DEFAULT};

/// How the server runs. `ServerConfig::default()` listens on 127.0.0.1:6379 without a password.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Address to listen on (`host:port`; port 0 picks a free one, see `Server::local_addr`).
    pub bind: String,
    /// The password `AUTH` / `HELLO … AUTH` must give (`requirepass`); `None`: no password.
    pub requirepass: Option<String>,
    /// Most clients connected at once; a client beyond is told `ERR max number of clients
    /// reached` and disconnected.
    pub max_clients: usize,
    /// Largest request (one command with its arguments) a client may send, in bytes; a larger
    /// one is a protocol error that closes the connection.
    pub max_request_bytes: usize,
    /// Close a connection idle this long (`None`: never).
    pub idle_timeout: Option<Duration>,
    /// Whether the store halts the process on media errors (`--halt-on-media`); reported by
    /// `INFO persistence`. The policy itself is set when the store is opened (`server_policy`).
    pub halt_on_media: bool,
    /// Run batches of point reads (GET, MGET, EXISTS, STRLEN ...) on the reactor thread instead
    /// of a blocking-pool thread: reads are lock-free and take microseconds; only a read that
    /// repairs from a replica does I/O. Writes always run off the reactor. Default: true
    /// (measured in `docs/server.md`).
    pub inline_reads: bool,
    /// Run engine calls on a fixed pool of this many threads (default `WORKERS_DEFAULT`);
    /// `None`: tokio's `spawn_blocking` pool instead (slower, measured in `docs/server.md`).
    pub blocking_workers: Option<usize>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:6379".to_string(),
            requirepass: None,
            max_clients: CLIENTS_MAX_DEFAULT,
            max_request_bytes: REQUEST_BYTES_MAX_DEFAULT,
            idle_timeout: None,
            halt_on_media: false,
            inline_reads: true,
            blocking_workers: Some(WORKERS_DEFAULT),
        }
    }
}

impl ServerConfig {
    /// The default configuration listening on `bind`.
    pub fn new(bind: impl Into<String>) -> Self {
        Self { bind: bind.into(), ..Self::default() }
    }
}

/// The store policy the server opens with: the library's default (retry a replica, then fail
/// the operation with `-MEDIA …`, latch on engine damage), or with `halt_on_media` the Halt
/// fallback for both domains (the halt report goes to standard error, then the process aborts).
pub fn server_policy(halt_on_media: bool) -> mcstore_engine::Policy {
    use mcstore_engine::{EngineFallback, Policy, UserFallback};
    if halt_on_media {
        Policy::default().user(true, UserFallback::Halt).engine(true, EngineFallback::Halt)
    } else {
        Policy::default()
    }
}
