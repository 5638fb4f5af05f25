//! `mcstore dump`: stream every record (or those under a prefix) to stdout in key order, in
//! constant memory (the engine's iterator reads in chunks).

use std::io::{BufWriter, Write};

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
}

/// Run `dump`.
pub fn run(args: &DumpArgs, output: &Output) -> Result {
    let db = args.pool.open_read_only(output)?;
    let iter = match &args.prefix {
        Some(prefix) => db.prefix(prefix.as_bytes()),
        None => db.iter(),
    };
    let bar = output.bar(db.len() as u64, "dumping", false);
    let mut out = BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let mut records = 0u64;
    for item in iter {
        let (key, value) = item.map_err(|e| Failure::new("reading the pool", e))?;
        write_record(&mut out, args.format, &key, &value)
            .map_err(|e| Failure::new("writing the dump", e))?;
        records += 1;
        bar.inc(1);
    }
    out.flush().map_err(|e| Failure::new("writing the dump", e))?;
    bar.finish_and_clear();
    output.note(&format!("dumped {records} record(s)"));
    Ok(Outcome::Ok)
}
