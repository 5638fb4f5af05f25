//! `Shared`: what every connection of one server holds — the store handle, the configuration,
//! the SCAN cursors, the registry of open connections and the server's counters.
//!
//! INVARIANT: counters only grow (except `clients_connected`, which counts live connections);
//! they are figures for INFO, read and written `Relaxed`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::time::Instant;

use mcstore_engine::Db;
use parking_lot::Mutex;

use crate::clients::Clients;
use crate::config::ServerConfig;
use crate::cursor::Cursors;

/// State shared by the connections of one server.
#[derive(Debug)]
pub struct Shared {
    /// The store (its durability is the handle's).
    pub db: Db,
    /// How the server runs.
    pub config: ServerConfig,
    /// Live SCAN cursors.
    pub cursors: Mutex<Cursors>,
    /// Open connections (CLIENT LIST / KILL).
    pub clients: Arc<Clients>,
    /// When the server started.
    pub started: Instant,
    /// Connections open now.
    pub clients_connected: AtomicUsize,
    /// The id the next connection gets.
    pub next_client_id: AtomicU64,
    /// Connections accepted since start.
    pub connections_received: AtomicU64,
    /// Connections refused because `max_clients` were connected.
    pub connections_rejected: AtomicU64,
    /// Commands run since start.
    pub commands_processed: AtomicU64,
    /// Error replies sent since start.
    pub error_replies: AtomicU64,
    /// TCP port the server listens on (for INFO).
    pub port: u16,
    /// The worker pool engine calls run on, when configured (else `spawn_blocking`).
    pub workers: Option<crate::workers::Workers>,
}

impl Shared {
    /// Fresh state for `db` served with `config` on `port`.
    pub fn new(
        db: Db,
        config: ServerConfig,
        port: u16,
        workers: Option<crate::workers::Workers>,
    ) -> Self {
        Self {
            db,
            config,
            cursors: Mutex::new(Cursors::default()),
            clients: Arc::default(),
            started: Instant::now(),
            clients_connected: AtomicUsize::new(0),
            next_client_id: AtomicU64::new(1),
            connections_received: AtomicU64::new(0),
            connections_rejected: AtomicU64::new(0),
            commands_processed: AtomicU64::new(0),
            error_replies: AtomicU64::new(0),
            port,
            workers,
        }
    }
}
