//! The `mcstore-server` binary: open (or create) a pool and serve it over the Redis protocol
//! until SIGINT or SIGTERM, then close the store cleanly and say so.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use mcstore_engine::{Db, Durability, Options};
use mcstore_server::{DurabilityArg, ServerConfig, limits, parse_size, server_policy};

/// Serve an mcstore pool over the Redis protocol (redis-cli, redis-benchmark and Redis client
/// libraries work unchanged). Writes are acknowledged after the store's commit barrier.
#[derive(Debug, Parser)]
#[command(name = "mcstore-server", version)]
struct Cli {
    /// The pool file to serve.
    #[arg(long)]
    pool: PathBuf,
    /// Create the pool with this size if it does not exist (bytes; K, M, G suffixes allowed).
    /// Without it, a missing pool is an error.
    #[arg(long, value_parser = parse_size)]
    create_size: Option<u64>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:6379")]
    bind: String,
    /// When a write is durable relative to its reply: immediate (like appendfsync always),
    /// eventual (like everysec: within the flush interval), none (at WAITAOF, close, or later).
    #[arg(long, value_enum, default_value_t = DurabilityArg::Immediate)]
    durability: DurabilityArg,
    /// Require this password (AUTH / HELLO … AUTH default <password>).
    #[arg(long)]
    requirepass: Option<String>,
    /// A replica file (repeat for several): written in lockstep, read when the primary's bytes
    /// are lost.
    #[arg(long = "replica")]
    replicas: Vec<PathBuf>,
    /// On lost bytes no replica could repair, halt the process (print the report, abort)
    /// instead of failing the one command with -MEDIA.
    #[arg(long)]
    halt_on_media: bool,
    /// Most clients connected at once.
    #[arg(long, default_value_t = limits::CLIENTS_MAX_DEFAULT)]
    max_clients: usize,
    /// Largest request (one command and its arguments), in bytes (K, M, G suffixes allowed).
    #[arg(long, value_parser = parse_size, default_value = "64M")]
    max_request_bytes: u64,
    /// Run point reads on a blocking-pool thread too (by default they run on the reactor).
    #[arg(long)]
    offload_reads: bool,
    /// Worker threads engine calls run on; 0: tokio's spawn_blocking pool instead.
    #[arg(long, default_value_t = limits::WORKERS_DEFAULT)]
    workers: usize,
    /// Close connections idle this many seconds (0: never).
    #[arg(long, default_value_t = 0)]
    idle_timeout_secs: u64,
}

fn open(cli: &Cli) -> Result<Db, mcstore_engine::Error> {
    let mut options = Options::default()
        .durability(cli.durability.into())
        .policy(server_policy(cli.halt_on_media));
    if !cli.replicas.is_empty() {
        options = options.replicas(cli.replicas.iter().cloned());
    }
    match cli.create_size {
        Some(size) => Db::open_or_create(&cli.pool, options.size_bytes(size)),
        None => Db::open(&cli.pool, options),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let db = match open(&cli) {
        Ok(db) => db,
        Err(error) => {
            eprintln!("mcstore-server: cannot open {}: {error}", cli.pool.display());
            return ExitCode::FAILURE;
        }
    };
    let config = ServerConfig {
        bind: cli.bind.clone(),
        requirepass: cli.requirepass.clone(),
        max_clients: cli.max_clients,
        max_request_bytes: usize::try_from(cli.max_request_bytes).unwrap_or(usize::MAX),
        idle_timeout: (cli.idle_timeout_secs > 0)
            .then(|| Duration::from_secs(cli.idle_timeout_secs)),
        halt_on_media: cli.halt_on_media,
        inline_reads: !cli.offload_reads,
        blocking_workers: (cli.workers > 0).then_some(cli.workers),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("mcstore-server: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let served = runtime.block_on(async {
        let server = mcstore_server::Server::bind(db, config).await?;
        let addr = server.local_addr()?;
        eprintln!(
            "mcstore-server: serving {} on {addr} (durability {:?})",
            cli.pool.display(),
            Durability::from(cli.durability)
        );
        server.run(mcstore_server::shutdown_signal("mcstore-server")).await
    });
    match served {
        Ok(()) => {
            eprintln!("mcstore-server: store closed cleanly");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("mcstore-server: {error}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_parses() {
        let cli = Cli::try_parse_from([
            "mcstore-server",
            "--pool",
            "/dev/shm/p",
            "--create-size",
            "64M",
            "--durability",
            "eventual",
            "--replica",
            "/a",
            "--replica",
            "/b",
            "--halt-on-media",
        ])
        .unwrap();
        assert_eq!(cli.create_size, Some(64 << 20));
        assert_eq!(cli.replicas.len(), 2);
        assert!(cli.halt_on_media);
        assert_eq!(Durability::from(cli.durability), Durability::Eventual);
    }

    /// The sizes are the library's strict parser (shared with `mcstore serve`).
    #[test]
    fn malformed_sizes_are_refused() {
        for bad in ["5iB", "1 G", "1.5G"] {
            let parsed =
                Cli::try_parse_from(["mcstore-server", "--pool", "/p", "--create-size", bad]);
            assert!(parsed.is_err(), "{bad:?} parsed");
        }
    }
}
