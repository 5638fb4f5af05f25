//! `mcstore dump`: stream every record (or those under a prefix) to stdout in key order, in
//! constant memory (the engine's iterator reads in chunks). `--salvage` exports what survives
//! from a damaged pool without writing to it.

use std::io::{BufWriter, Write};

use mcstore_engine::{Db, Error};

use crate::codec::{Format, write_record};
use crate::failure::{Failure, Outcome, Result};
use crate::output::Output;
use crate::pool::PoolArgs;

/// Export records to stdout (`jsonl`: `{"key":"<base64>","value":"<base64>"}` per line, read
/// back by `load`; `resp`: SET commands for `redis-cli --pipe`).
#[derive(Debug, clap::Args)]
pub struct DumpArgs {
    #[command(flatten)]
    pub pool: PoolArgs,
    /// Only keys starting with this prefix (UTF-8 text).
    #[arg(long)]
    pub prefix: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Jsonl)]
    pub format: Format,
    /// Export what survives from a damaged pool: open read-only with `Options::salvage`
    /// (records in damaged ranges are dropped; an older version of a key may reappear) and
    /// skip values that cannot be read. Exit 2 when anything was dropped or skipped.
    #[arg(long)]
    pub salvage: bool,
}

/// Run `dump`.
pub fn run(args: &DumpArgs, output: &Output) -> Result {
    let db = if args.salvage {
        let options = args.pool.options(output).read_only(true).salvage(true);
        Db::open(&args.pool.path, options).map_err(|e| Failure::pool(&args.pool.path, e))?
    } else {
        args.pool.open_read_only(output)?
    };
    let dropped = if db.recovery_report().salvaged { db.recovery_report().damage.len() } else { 0 };
    let iter = match &args.prefix {
        Some(prefix) => db.prefix(prefix.as_bytes()),
        None => db.iter(),
    };
    let bar = output.bar(db.len() as u64, "dumping", false);
    let mut out = BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let (mut records, mut skipped) = (0u64, 0u64);
    for item in iter {
        let (key, value) = match item {
            Ok(record) => record,
            Err(error @ (Error::Media { .. } | Error::Corrupt { .. })) if args.salvage => {
                output.note(&format!("skipped: {error}"));
                skipped += 1;
                continue;
            }
            Err(error) => return Err(Failure::new("reading the pool", error)),
        };
        write_record(&mut out, args.format, &key, &value)
            .map_err(|e| Failure::new("writing the dump", e))?;
        records += 1;
        bar.inc(1);
    }
    out.flush().map_err(|e| Failure::new("writing the dump", e))?;
    bar.finish_and_clear();
    output.note(&format!("dumped {records} record(s)"));
    if dropped == 0 && skipped == 0 {
        return Ok(Outcome::Ok);
    }
    output.note(&format!(
        "salvage: {dropped} damaged range(s) dropped at open, {skipped} unreadable value(s) skipped"
    ));
    Ok(Outcome::Damage)
}
