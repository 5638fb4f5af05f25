//! `mcstore create`: format a new pool file (and its replicas) and close it cleanly.

use std::path::PathBuf;

use mcstore_engine::{Db, Options};
use serde_json::json;

use crate::failure::{Failure, Outcome, Result};
use crate::output::Output;
use crate::pool::ModeArg;
use crate::size::{human_bytes, parse_size};

/// Create a new pool file (refuses an existing file).
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    /// The pool file to create.
    pub path: PathBuf,
    /// Pool size (bytes; K, M, G, T suffixes, binary: 64MiB, 1G). The file is sparse.
    #[arg(long, value_parser = parse_size, default_value = "1GiB")]
    pub size: u64,
    /// Segment size, a power of two (the unit of allocation and compaction).
    #[arg(long, value_parser = parse_size, default_value = "2MiB")]
    pub segment_size: u64,
    /// A replica file, written in lockstep with the pool (repeat for several).
    #[arg(long = "replica", value_name = "PATH")]
    pub replicas: Vec<PathBuf>,
    /// How to map the pool file.
    #[arg(long, value_enum, default_value_t = ModeArg::Auto)]
    pub mode: ModeArg,
}

/// Run `create`.
pub fn run(args: &CreateArgs, output: &Output) -> Result {
    let mut options = Options::default()
        .size_bytes(args.size)
        .segment_size_bytes(args.segment_size)
        .mode(args.mode.into())
        .background(false);
    if !args.replicas.is_empty() {
        options = options.replicas(args.replicas.clone());
    }
    let db = Db::create(&args.path, options).map_err(|e| Failure::pool(&args.path, e))?;
    let stats = db.stats();
    db.close().map_err(|e| Failure::new("closing the new pool", e))?;
    let document = json!({
        "path": args.path,
        "pool_bytes": stats.pool_bytes,
        "segment_size_bytes": stats.segment_size_bytes,
        "segments_total": stats.segments_total,
        "mode": stats.mode,
        "replicas": args.replicas,
    });
    output.emit(&document, || {
        format!(
            "created {} ({}, {} segments of {}, mode {}{})",
            args.path.display(),
            human_bytes(stats.pool_bytes),
            stats.segments_total,
            human_bytes(stats.segment_size_bytes),
            stats.mode,
            if args.replicas.is_empty() {
                String::new()
            } else {
                format!(", {} replica(s)", args.replicas.len())
            }
        )
    });
    Ok(Outcome::Ok)
}
