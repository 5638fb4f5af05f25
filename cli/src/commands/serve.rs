//! `mcstore serve`: the Redis-protocol service (`mcstore-server`) on a pool, with the flags of
//! the `mcstore-server` binary. With no PATH the pool is `./mcstore.pool`, created if missing.
//! Runs until SIGINT or SIGTERM, then closes the store cleanly.

use std::path::PathBuf;
use std::time::Duration;

use mcstore_engine::{Db, Durability, Options};
use mcstore_server::{DurabilityArg, Server, ServerConfig, limits, server_policy};
use serde_json::json;

use crate::failure::{Failure, Outcome, Result};
use crate::output::Output;
use crate::pool::ModeArg;
use crate::size::{human_bytes, parse_size};

/// The pool `serve` uses when none is named.
pub const DEFAULT_POOL: &str = "mcstore.pool";
/// Its size when `serve` creates it.
pub const DEFAULT_POOL_BYTES: u64 = 1 << 30;

/// Serve a pool over the Redis protocol (redis-cli, redis-benchmark and Redis clients work);
/// writes are acknowledged after the commit barrier. Stops on SIGINT/SIGTERM.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The pool file (default: ./mcstore.pool, created if missing).
    pub path: Option<PathBuf>,
    /// Create the pool with this size if it does not exist (default for ./mcstore.pool: 1GiB;
    /// for a named PATH a missing pool is an error unless this is given).
    #[arg(long, value_parser = parse_size)]
    pub create_size: Option<u64>,
    /// Address to listen on (port 0: any free port, printed at start).
    #[arg(long, default_value = "127.0.0.1:6379")]
    pub bind: String,
    /// When a write is durable relative to its reply: immediate (like appendfsync always),
    /// eventual (like everysec), none (at WAITAOF, close, or later).
    #[arg(long, value_enum, default_value_t = DurabilityArg::Immediate)]
    pub durability: DurabilityArg,
    /// Require this password (AUTH / HELLO … AUTH default `<password>`).
    #[arg(long)]
    pub requirepass: Option<String>,
    /// A replica file (repeat for several).
    #[arg(long = "replica", value_name = "PATH")]
    pub replicas: Vec<PathBuf>,
    /// On lost bytes no replica could repair, halt the process instead of failing the command.
    #[arg(long)]
    pub halt_on_media: bool,
    /// Most clients connected at once.
    #[arg(long, default_value_t = limits::CLIENTS_MAX_DEFAULT)]
    pub max_clients: usize,
    /// Largest request (one command and its arguments), in bytes (size suffixes allowed).
    #[arg(long, value_parser = parse_size, default_value = "64M")]
    pub max_request_bytes: u64,
    /// Close connections idle this many seconds (0: never).
    #[arg(long, default_value_t = 0)]
    pub idle_timeout_secs: u64,
    /// Run point reads on a blocking-pool thread instead of the reactor thread (default:
    /// inline; see docs/server.md).
    #[arg(long)]
    pub offload_reads: bool,
    /// Worker threads engine calls run on; 0: tokio's spawn_blocking pool instead.
    #[arg(long, default_value_t = limits::WORKERS_DEFAULT)]
    pub workers: usize,
    /// How to map the pool file.
    #[arg(long, value_enum, default_value_t = ModeArg::Auto)]
    pub mode: ModeArg,
}

fn open(args: &ServeArgs, path: &PathBuf) -> Result<Db> {
    let mut options = Options::default()
        .durability(args.durability.into())
        .policy(server_policy(args.halt_on_media))
        .mode(args.mode.into());
    if !args.replicas.is_empty() {
        options = options.replicas(args.replicas.iter().cloned());
    }
    let create_size = args.create_size.or(args.path.is_none().then_some(DEFAULT_POOL_BYTES));
    let opened = match create_size {
        Some(size) => Db::open_or_create(path, options.size_bytes(size)),
        None => Db::open(path, options),
    };
    opened.map_err(|e| Failure::pool(path, e))
}

/// Run `serve`.
pub fn run(args: &ServeArgs, output: &Output) -> Result {
    let path = args.path.clone().unwrap_or_else(|| PathBuf::from(DEFAULT_POOL));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new("starting the runtime", e))?;
    if !path.exists() && (args.create_size.is_some() || args.path.is_none()) {
        let size = args.create_size.unwrap_or(DEFAULT_POOL_BYTES);
        output.note(&format!("mcstore serve: creating {} ({})", path.display(), human_bytes(size)));
    }
    let db = open(args, &path)?;
    let stats = db.stats();
    // Built from `new` so fields the server adds later keep their defaults.
    let mut config = ServerConfig::new(args.bind.clone());
    config.requirepass = args.requirepass.clone();
    config.max_clients = args.max_clients;
    config.max_request_bytes = usize::try_from(args.max_request_bytes).unwrap_or(usize::MAX);
    config.idle_timeout =
        (args.idle_timeout_secs > 0).then(|| Duration::from_secs(args.idle_timeout_secs));
    config.halt_on_media = args.halt_on_media;
    config.inline_reads = !args.offload_reads;
    config.blocking_workers = (args.workers > 0).then_some(args.workers);
    let served = runtime.block_on(async {
        let server = Server::bind(db, config).await?;
        let addr = server.local_addr()?;
        let where_ = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
        let document = json!({
            "path": where_,
            "mode": stats.mode,
            "pool_bytes": stats.pool_bytes,
            "keys": stats.keys,
            "bind": addr.to_string(),
            "durability": format!("{:?}", Durability::from(args.durability)),
        });
        output.emit(&document, || {
            format!(
                "mcstore serve: {} (mode {}, {}, {} keys) on {addr}, durability {:?}",
                where_.display(),
                stats.mode,
                human_bytes(stats.pool_bytes),
                stats.keys,
                Durability::from(args.durability),
            )
        });
        server.run(mcstore_server::shutdown_signal("mcstore serve")).await
    });
    served.map_err(|e| Failure::new("serve", e))?;
    eprintln!("mcstore serve: store closed cleanly");
    Ok(Outcome::Ok)
}
