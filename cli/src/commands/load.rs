//! `mcstore load`: import a `jsonl` dump into an existing pool in batches (each batch one
//! atomic commit), streaming the input line by line.
//!
//! INVARIANT: a batch stays well inside one segment (a quarter of it), so it never fails as
//! too large; a record too big for that is written on its own.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;

use mcstore_engine::{Batch, Db};
use serde_json::json;

use crate::codec::read_record;
use crate::failure::{Failure, Outcome, Result};
use crate::output::Output;
use crate::pool::PoolArgs;

/// Operations per batch at most.
const BATCH_OPS_MAX: usize = 1024;
/// Per-record bytes counted beyond key and value (the record header, padding).
const RECORD_OVERHEAD_BYTES: u64 = 64;

/// Import a `jsonl` dump (from `mcstore dump`) into an existing pool.
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    #[command(flatten)]
    pub pool: PoolArgs,
    /// The dump to read; `-` or absent: stdin.
    pub input: Option<PathBuf>,
}

/// Run `load`.
pub fn run(args: &LoadArgs, output: &Output) -> Result {
    let (reader, total): (Box<dyn Read>, Option<u64>) = match &args.input {
        Some(path) if path.as_os_str() != "-" => {
            let file = File::open(path).map_err(|e| Failure::new(path.display(), e))?;
            let len = file.metadata().ok().map(|m| m.len());
            (Box::new(file), len)
        }
        _ => (Box::new(std::io::stdin().lock()), None),
    };
    let db = args
        .pool
        .open_writable(args.pool.options(output))
        .map_err(|e| Failure::pool(&args.pool.path, e))?;
    let bar = match total {
        Some(total) => output.bar(total, "loading", true),
        None => output.spinner("loading (bytes)"),
    };
    let loaded = load(&db, BufReader::with_capacity(1 << 16, reader), &|bytes| bar.inc(bytes));
    bar.finish_and_clear();
    let (records, batches) = loaded?;
    db.close().map_err(|e| Failure::new("closing the pool", e))?;
    let document = json!({ "path": args.pool.path, "records": records, "batches": batches });
    output.emit(&document, || {
        format!(
            "loaded {records} record(s) in {batches} batch(es) into {}",
            args.pool.path.display()
        )
    });
    Ok(Outcome::Ok)
}

/// Read `input` line by line and write its records in batches; `(records, batches)`.
fn load(db: &Db, mut input: impl BufRead, progress: &dyn Fn(u64)) -> Result<(u64, u64)> {
    let batch_bytes_max = (db.stats().segment_size_bytes / 4).max(4096);
    let mut batch = Batch::default();
    let mut batch_bytes = 0u64;
    let (mut records, mut batches) = (0u64, 0u64);
    let mut line = String::new();
    let mut number = 0u64;
    let commit = |batch: &mut Batch, batch_bytes: &mut u64, batches: &mut u64| -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        db.apply_batch(std::mem::take(batch)).map_err(|e| Failure::new("writing a batch", e))?;
        *batch_bytes = 0;
        *batches += 1;
        Ok(())
    };
    loop {
        line.clear();
        let read = input.read_line(&mut line).map_err(|e| Failure::new("reading the input", e))?;
        if read == 0 {
            break;
        }
        number += 1;
        progress(read as u64);
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        let (key, value) = read_record(text)
            .map_err(|reason| Failure(format!("input line {number}: {reason}")))?;
        let bytes = (key.len() + value.len()) as u64 + RECORD_OVERHEAD_BYTES;
        if bytes > batch_bytes_max {
            commit(&mut batch, &mut batch_bytes, &mut batches)?;
            db.put(&key, &value).map_err(|e| Failure(format!("input line {number}: {e}")))?;
            batches += 1;
        } else {
            if batch_bytes + bytes > batch_bytes_max || batch.len() >= BATCH_OPS_MAX {
                commit(&mut batch, &mut batch_bytes, &mut batches)?;
            }
            batch.push_put(&key, &value);
            batch_bytes += bytes;
        }
        records += 1;
    }
    commit(&mut batch, &mut batch_bytes, &mut batches)?;
    Ok((records, batches))
}
