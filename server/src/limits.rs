//! Limits of the server, in one place (documented in `docs/server.md`). Client bytes are hostile:
//! every length a client declares is checked against these before anything is allocated for it,
//! and input beyond them is a protocol error that closes the connection, never a panic.

use std::time::Duration;

/// Default cap on one request (a whole command with its arguments), in bytes.
pub const REQUEST_BYTES_MAX_DEFAULT: usize = 64 << 20;
/// Most arguments one command may carry (Redis accepts up to 2^31; real clients send far fewer).
pub const ARGS_MAX: usize = 1 << 20;
/// Longest inline command line and longest `*`/`$` header line, in bytes (as in Redis).
pub const INLINE_BYTES_MAX: usize = 64 << 10;
/// Arguments pre-allocated for a command whatever count it declares (the vector grows as real
/// arguments arrive, so a declared count alone never allocates).
pub const ARGS_PREALLOCATED_MAX: usize = 64;
/// Default cap on connected clients.
pub const CLIENTS_MAX_DEFAULT: usize = 10_000;
/// Commands executed per blocking call: a longer pipeline is split so replies start flowing.
pub const PIPELINE_COMMANDS_MAX: usize = 1024;
/// Bytes read from a socket per read call.
pub const READ_CHUNK_BYTES: usize = 64 << 10;
/// Reply bytes buffered before they are written out within one pipelined batch.
pub const REPLY_FLUSH_BYTES: usize = 1 << 20;
/// Scan cursors the server remembers; the oldest is forgotten first (its SCAN then fails with
/// `ERR invalid cursor`, and the client restarts from 0).
pub const SCAN_CURSORS_MAX: usize = 65_536;
/// Keys a SCAN examines per call when the client gives no COUNT (as in Redis).
pub const SCAN_COUNT_DEFAULT: usize = 10;
/// Largest COUNT a SCAN honours in one call.
pub const SCAN_COUNT_MAX: usize = 100_000;
/// Attempts a read-modify-write command (INCR, APPEND, SET NX ...) makes against concurrent
/// writers before it gives up with an error.
pub const RMW_ATTEMPTS_MAX: u32 = 1000;
/// How long a graceful shutdown waits for connections to finish their current command.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// How long a connection closed for a protocol error keeps reading (and discarding) the
/// client's input so the error reply is not lost to a connection reset.
pub const LINGER: Duration = Duration::from_secs(2);
/// Most bytes discarded while lingering.
pub const LINGER_BYTES_MAX: usize = 16 << 20;
/// Worker threads engine calls run on by default (`ServerConfig::blocking_workers`): measured
/// 1.3-1.6x the SET rate of `spawn_blocking` on 2 cores with 50 clients (`docs/server.md`).
/// More than the cores, so writers waiting in one group commit and a slow KEYS do not stall
/// the others.
pub const WORKERS_DEFAULT: usize = 16;
