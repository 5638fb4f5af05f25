//! An in-process server on an ephemeral port, on its own runtime thread, stopped on drop.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use mcstore_engine::{Db, Options};
use mcstore_pmem::{Medium, SimMedium};
use mcstore_server::{Server, ServerConfig, ServerError};

/// Options for test pools: small segments, no background threads.
pub fn test_options() -> Options {
    Options::default().segment_size_bytes(256 << 10).background(false)
}

/// A fresh store on a `SimMedium` of 16 MiB, and the medium.
pub fn sim_db() -> (Arc<SimMedium>, Db) {
    sim_db_with(test_options())
}

/// A fresh store with `options` on a `SimMedium` of 16 MiB, and the medium.
pub fn sim_db_with(options: Options) -> (Arc<SimMedium>, Db) {
    let sim = Arc::new(SimMedium::new(16 << 20));
    let medium: Arc<dyn Medium> = sim.clone();
    let db = Db::create_on(medium, options).expect("create a store on a SimMedium");
    (sim, db)
}

/// A running server.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<(), ServerError>>>,
}

impl TestServer {
    /// Serve `db` with `config` (its `bind` is replaced by an ephemeral port on 127.0.0.1).
    pub fn start_with(db: Db, mut config: ServerConfig) -> TestServer {
        config.bind = "127.0.0.1:0".to_string();
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let server = Server::bind(db, config).await?;
                addr_tx.send(server.local_addr()?).expect("send the address");
                server
                    .run(async {
                        let _ = stopped.await;
                    })
                    .await
            })
        });
        let addr = addr_rx.recv_timeout(Duration::from_secs(30)).expect("server started");
        TestServer { addr, stop: Some(stop), thread: Some(thread) }
    }

    /// Serve `db` with the default configuration.
    pub fn start(db: Db) -> TestServer {
        Self::start_with(db, ServerConfig::default())
    }

    /// A `redis` crate URL for this server.
    pub fn url(&self) -> String {
        format!("redis://{}/", self.addr)
    }

    /// A new synchronous `redis` connection.
    pub fn client(&self) -> redis::Connection {
        redis::Client::open(self.url()).unwrap().get_connection().unwrap()
    }

    /// A raw socket to the server.
    pub fn raw(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        stream
    }

    /// Stop the server (graceful: the store is closed); what `run` returned.
    pub fn stop(mut self) -> Result<(), ServerError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), ServerError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take() {
            Some(thread) => thread.join().expect("server thread"),
            None => Ok(()),
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// Send `request` on `stream` and read until `expected` bytes arrived or the peer closed.
pub fn exchange(stream: &mut TcpStream, request: &[u8], expected: usize) -> Vec<u8> {
    stream.write_all(request).unwrap();
    read_at_least(stream, expected)
}

/// Send `request` and read until what arrived ends with `suffix` (or the peer closed).
pub fn exchange_until(stream: &mut TcpStream, request: &[u8], suffix: &[u8]) -> Vec<u8> {
    stream.write_all(request).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !got.ends_with(suffix) {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got
}

/// Read until `expected` bytes arrived or the peer closed.
pub fn read_at_least(stream: &mut TcpStream, expected: usize) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.len() < expected {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got
}

/// Read until the peer closes (or the read timeout); everything read.
pub fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    read_at_least(stream, usize::MAX)
}

/// The server error code of a failed `redis` call.
pub fn code(error: &redis::RedisError) -> String {
    error.code().unwrap_or("?").to_string()
}
