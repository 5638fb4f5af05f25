//! `mcstore badblocks`: show or edit a pool's `.badblocks` sidecar (docs/badblocks.md) through
//! the pmem crate's `BadBlocks`, which rewrites it atomically.

use std::path::PathBuf;

use mcstore_pmem::BadBlocks;
use serde_json::json;

use crate::failure::{Failure, Outcome, Result};
use crate::output::Output;
use crate::size::parse_size;

/// Show or edit the list of known-bad byte ranges of a pool (applied as poison at the next
/// open; the running store does not watch the file).
#[derive(Debug, clap::Args)]
pub struct BadBlocksArgs {
    /// The pool file (the sidecar is PATH.badblocks).
    pub path: PathBuf,
    #[command(subcommand)]
    pub action: Option<Action>,
}

/// What to do with the list (default: list).
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Action {
    /// Print the listed ranges, sorted and coalesced.
    List,
    /// Add a range (bytes from the start of the pool file; size suffixes allowed).
    Add {
        /// Start of the range.
        #[arg(value_parser = parse_size)]
        offset: u64,
        /// Its length (at least 1).
        #[arg(value_parser = parse_size)]
        len: u64,
    },
    /// Remove every listed range.
    Clear,
}

/// Run `badblocks`.
pub fn run(args: &BadBlocksArgs, output: &Output) -> Result {
    if !args.path.is_file() {
        return Err(Failure(format!("{}: not found", args.path.display())));
    }
    let sidecar = BadBlocks::sidecar_path(&args.path);
    let load = || BadBlocks::load(&sidecar).map_err(|e| Failure::new(sidecar.display(), e));
    match args.action.clone().unwrap_or(Action::List) {
        Action::List => {}
        Action::Add { offset, len } => {
            if len == 0 {
                return Err(Failure("badblocks add: the length must be at least 1".into()));
            }
            BadBlocks::add(&sidecar, (offset, len))
                .map_err(|e| Failure::new(sidecar.display(), e))?;
        }
        Action::Clear => {
            for range in load()?.ranges() {
                BadBlocks::remove(&sidecar, range)
                    .map_err(|e| Failure::new(sidecar.display(), e))?;
            }
        }
    }
    let ranges = load()?.ranges();
    let document = json!({
        "path": args.path,
        "sidecar": sidecar,
        "ranges": ranges.iter().map(|&(o, l)| json!({"offset": o, "len": l})).collect::<Vec<_>>(),
    });
    output.emit(&document, || {
        let mut text = format!("{}: {} bad range(s)", sidecar.display(), ranges.len());
        for (offset, len) in &ranges {
            text.push_str(&format!("\n  {offset} {len}"));
        }
        text
    });
    Ok(Outcome::Ok)
}
