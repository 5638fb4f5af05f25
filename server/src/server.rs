//! `Server`: the listener, one task per connection, and the graceful shutdown.
//!
//! A connection reads what the client sent, parses every complete command (pipelining), runs
//! the batch in ONE blocking call off the reactor (engine calls may block: every write waits
//! for its commit barrier, a read may repair from a replica), then writes the replies in order.
//! INVARIANT: a reply is written only after the engine returned for its command, so an
//! acknowledged write has passed the commit barrier (durable for the store's durability). At
//! shutdown the listener stops, every connection finishes the batch it is running, and the
//! store is closed cleanly once no connection holds it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::{Buf, BytesMut};
use mcstore_engine::Db;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::clients::Client;
use crate::commands::Kind;
use crate::config::ServerConfig;
use crate::errors::ServerError;
use crate::limits::{
    INLINE_BYTES_MAX, LINGER, LINGER_BYTES_MAX, PIPELINE_COMMANDS_MAX, READ_CHUNK_BYTES,
    SHUTDOWN_GRACE,
};
use crate::reply::Reply;
use crate::resp::{Args, Parser};
use crate::session::Session;
use crate::shared::Shared;

/// A bound server, ready to `run`.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
}

impl Server {
    /// Listen on `config.bind` and serve `db` (writes use the handle's durability).
    pub async fn bind(db: Db, config: ServerConfig) -> Result<Server, ServerError> {
        let listener = TcpListener::bind(&config.bind)
            .await
            .map_err(|error| ServerError::io(format!("binding {}", config.bind), error))?;
        let port = listener.local_addr().map_or(0, |addr| addr.port());
        let workers = match config.blocking_workers {
            Some(count) => Some(
                crate::workers::Workers::start(count)
                    .map_err(|error| ServerError::io("starting the worker threads", error))?,
            ),
            None => None,
        };
        Ok(Server { listener, shared: Arc::new(Shared::new(db, config, port, workers)) })
    }

    /// The address the server listens on (the port chosen when `bind` asked for port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, ServerError> {
        self.listener.local_addr().map_err(|error| ServerError::io("local address", error))
    }

    /// Serve until `shutdown` completes; then stop accepting, let every connection finish the
    /// commands it is running (up to `SHUTDOWN_GRACE`), and close the store (clean shutdown).
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
        let Server { listener, shared } = self;
        let (stop, stopped) = watch::channel(false);
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let shared = Arc::clone(&shared);
                        connections.spawn(connection(shared, stream, peer, stopped.clone()));
                    }
                    // Out of descriptors or a reset before accept: keep serving the others.
                    Err(error) => eprintln!("mcstore-server: accept failed: {error}"),
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        drop(listener);
        let _ = stop.send(true);
        let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
            while connections.join_next().await.is_some() {}
        });
        if drained.await.is_err() {
            connections.abort_all();
            while connections.join_next().await.is_some() {}
        }
        let shared = Arc::into_inner(shared);
        match shared {
            Some(shared) => shared.db.close().map_err(ServerError::Close),
            // A blocking call of an aborted connection still holds the store: it is closed
            // when that call ends and drops the last handle.
            None => Ok(()),
        }
    }
}

/// Serve `db` on `config.bind` until `shutdown` completes, then close the store.
pub async fn serve(
    db: Db,
    config: ServerConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    Server::bind(db, config).await?.run(shutdown).await
}

/// Decrements the connected-clients count when a connection ends, however it ends.
struct Connected(Arc<Shared>);

impl Drop for Connected {
    fn drop(&mut self) {
        self.0.clients_connected.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn connection(
    shared: Arc<Shared>,
    mut stream: TcpStream,
    peer: SocketAddr,
    mut stopped: watch::Receiver<bool>,
) {
    shared.connections_received.fetch_add(1, Ordering::Relaxed);
    let connected = shared.clients_connected.fetch_add(1, Ordering::Relaxed) + 1;
    let _connected = Connected(Arc::clone(&shared));
    if connected > shared.config.max_clients {
        shared.connections_rejected.fetch_add(1, Ordering::Relaxed);
        let _ = stream.write_all(b"-ERR max number of clients reached\r\n").await;
        return;
    }
    let _ = stream.set_nodelay(true);
    let mut session = Some(Session::new(&shared, peer.to_string()));
    let client = session.as_ref().map(|s| Arc::clone(s.registration.client()));
    let mut parser = Parser::new(shared.config.max_request_bytes);
    let mut input = BytesMut::with_capacity(READ_CHUNK_BYTES);
    // Bytes buffered beyond this without a complete command: the request is too large.
    let buffered_max = shared.config.max_request_bytes.saturating_add(2 * INLINE_BYTES_MAX);
    loop {
        // A client killed while it was running commands or reading is closed before it runs
        // anything more.
        if client.as_ref().is_some_and(|client| client.is_killed()) {
            return;
        }
        let mut commands: Vec<Args> = Vec::new();
        let mut failure = None;
        while commands.len() < PIPELINE_COMMANDS_MAX {
            match parser.parse(&input) {
                Ok((args, used)) => {
                    input.advance(used);
                    match args {
                        Some(args) if args.is_empty() => {}
                        Some(args) => commands.push(args),
                        None => break,
                    }
                }
                Err(error) => {
                    failure = Some(error);
                    break;
                }
            }
        }
        if failure.is_none() && input.len() > buffered_max {
            failure = Some(crate::resp::ProtocolError("request exceeds the size limit".into()));
        }
        if !commands.is_empty() {
            let Some(current) = session.take() else { return };
            let inline = shared.config.inline_reads
                && current.multi.is_none()
                && commands.iter().all(runs_inline);
            let (current, replies) = if inline {
                run_batch(&shared, current, commands)
            } else {
                let job_shared = Arc::clone(&shared);
                let job = move || run_batch(&job_shared, current, commands);
                let ran = match &shared.workers {
                    Some(workers) => workers.run(job).await,
                    None => tokio::task::spawn_blocking(job).await.ok(),
                };
                let Some(ran) = ran else { return };
                ran
            };
            let closing = current.closing;
            session = Some(current);
            if stream.write_all(&replies).await.is_err() || closing {
                return;
            }
            if failure.is_none() && commands_waiting(&input, &parser) {
                continue;
            }
        }
        if let Some(error) = failure {
            let mut out = Vec::new();
            Reply::err(error.to_string()).encode(2, &mut out);
            if stream.write_all(&out).await.is_ok() {
                linger(&mut stream).await;
            }
            return;
        }
        if *stopped.borrow() {
            return;
        }
        input.reserve(READ_CHUNK_BYTES);
        let idle = shared.config.idle_timeout;
        tokio::select! {
            read = read_some(&mut stream, &mut input, idle) => match read {
                Some(n) if n > 0 => {}
                _ => return,
            },
            _ = stopped.changed() => return,
            () = killed(client.as_deref()) => return,
        }
    }
}

/// Close after an error reply without losing it: a close with unread input resets the
/// connection, and the reset may destroy the reply before the client reads it. So: send FIN,
/// then read and discard (bounded in time and bytes) until the client closes too.
async fn linger(stream: &mut TcpStream) {
    let _ = stream.shutdown().await;
    let mut sink = vec![0u8; READ_CHUNK_BYTES];
    let mut left = LINGER_BYTES_MAX;
    let drain = async {
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
}

/// Whether the buffer may hold another command to run without reading (a pipeline longer than
/// one batch).
fn commands_waiting(input: &BytesMut, parser: &Parser) -> bool {
    !input.is_empty() && !parser.is_mid_command()
}

/// Read into `input`; `None` on error or idle timeout, `Some(0)` at end of stream.
async fn read_some(
    stream: &mut TcpStream,
    input: &mut BytesMut,
    idle: Option<std::time::Duration>,
) -> Option<usize> {
    match idle {
        None => stream.read_buf(input).await.ok(),
        Some(limit) => tokio::time::timeout(limit, stream.read_buf(input)).await.ok()?.ok(),
    }
}

/// Whether a command may run on the reactor thread: a lock-free point read or a server command
/// that touches no engine state that blocks (GET, MGET, EXISTS, STRLEN, TYPE, PING, INFO ...).
/// Writes, whole-keyspace walks and transactions always run off the reactor.
fn runs_inline(args: &Args) -> bool {
    let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
    // A multi-key MGET is a read-only transaction: its commit waits for pending writes.
    if name == "mget" && args.len() > 2 {
        return false;
    }
    crate::commands::lookup(&name).is_some_and(|spec| {
        matches!(spec.kind, Kind::String | Kind::Server) && spec.flags.contains(&"readonly")
            || matches!(spec.name, "ping" | "echo" | "time")
    })
}

/// Run a batch of commands in order; the session back and the replies, encoded.
fn run_batch(shared: &Shared, mut session: Session, commands: Vec<Args>) -> (Session, Vec<u8>) {
    let mut out = Vec::new();
    let mut last = Vec::new();
    for args in commands {
        if let Some(name) = args.first() {
            last.clone_from(name);
        }
        let reply = session.execute(shared, args);
        reply.encode(session.resp, &mut out);
        if session.closing {
            break;
        }
    }
    session.publish(&last);
    (session, out)
}

/// Resolves when `client` is killed (CLIENT KILL); never without a client.
async fn killed(client: Option<&Client>) {
    match client {
        Some(client) => client.killed().await,
        None => std::future::pending().await,
    }
}

/// Resolves at the first SIGINT (Ctrl-C) or SIGTERM, after printing `"{who}: signal received,
/// shutting down"` on stderr: the shutdown future the binaries (`mcstore-server`, `mcstore
/// serve`) hand to [`Server::run`].
pub async fn shutdown_signal(who: &str) {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut stream) => {
                stream.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
    eprintln!("{who}: signal received, shutting down");
}
