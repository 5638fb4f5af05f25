//! W8: recovery after a crash. A child process (this binary, `w8-writer`) creates a pool, writes
//! N records in durable batches and exits without dropping the store — no clean shutdown, as
//! after a crash. The parent then times `Db::open`, which scans and verifies the whole log.
//!
//! Figures: GB of log scanned per second (the report's `bytes_scanned` over the wall time of
//! `open`) and records per second; the note gives when the first ordered read returned (the
//! key order of a large store is finished in the background after `open`).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use mcstore::Db;

use crate::case;
use crate::keys::ValuePool;
use crate::kv::mcstore::{McStore, POOL_FILE, options};
use crate::results::{Figure, Unit};
use crate::workloads::{Ctx, VALUE_BYTES, load, progress};

/// The hidden subcommand the parent runs as the crashing writer.
pub const WRITER_COMMAND: &str = "w8-writer";

/// Bytes of pool to allow per record.
const BYTES_PER_RECORD: u64 = 160;

/// The child's body: create `dir/mcstore.pool`, load `records`, exit without a clean shutdown.
pub fn writer_child(dir: &Path, records: u64) -> Result<(), String> {
    let store = McStore::create(dir, records * BYTES_PER_RECORD)?;
    let values = ValuePool::new(VALUE_BYTES);
    load(&store, &values, 0, records, VALUE_BYTES)?;
    // No drop: the process ends with the pool open and its clean-shutdown flag unset.
    std::mem::forget(store);
    Ok(())
}

/// W8 (mcstore only).
pub fn w8(ctx: &Ctx) -> Vec<Figure> {
    let records = ctx.scaled(10_000_000, 100_000);
    let fail = |why: &str| {
        vec![
            Figure::unavailable("W8", case::W8_GBPS, "mcstore", Unit::GbPerSec, why),
            Figure::unavailable("W8", case::W8_RECORDS, "mcstore", Unit::RecordsPerSec, why),
        ]
    };
    let dir = ctx.dir.join("w8-mcstore");
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        return fail(&e.to_string());
    }
    progress("W8", "mcstore", &format!("child writes {records} records"));
    let figures = match std::env::current_exe().map_err(|e| e.to_string()).and_then(|exe| {
        Command::new(exe)
            .arg(WRITER_COMMAND)
            .arg(&dir)
            .arg(records.to_string())
            .status()
            .map_err(|e| e.to_string())
    }) {
        Ok(status) if status.success() => time_open(&dir, records).unwrap_or_else(|e| fail(&e)),
        Ok(status) => fail(&format!("writer child failed: {status}")),
        Err(e) => fail(&format!("writer child did not start: {e}")),
    };
    let _ = std::fs::remove_dir_all(&dir);
    figures
}

/// User plus system CPU seconds of this process, all threads (Linux `/proc/self/stat`, in
/// clock ticks of 1/100 s).
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i)?.parse::<f64>().ok();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    Some((ticks(11)? + ticks(12)?) / 100.0)
}

fn time_open(dir: &Path, records: u64) -> Result<Vec<Figure>, String> {
    progress("W8", "mcstore", "recovering");
    let cpu_before = process_cpu_seconds();
    let start = Instant::now();
    let db = Db::open(dir.join(POOL_FILE), options(records * BYTES_PER_RECORD))
        .map_err(|e| format!("open after crash: {e}"))?;
    let seconds = start.elapsed().as_secs_f64();
    let cpu = process_cpu_seconds().zip(cpu_before).map(|(after, before)| after - before);
    // A large key order is built in the background after `open` returns: the first ordered
    // read waits for it.
    let first_ordered = db.iter().next().transpose().map_err(|e| format!("first read: {e}"))?;
    if first_ordered.is_none() {
        return Err("the recovered store iterates nothing".into());
    }
    let ordered_seconds = start.elapsed().as_secs_f64();
    let report = db.recovery_report().clone();
    if report.clean_shutdown {
        return Err("the writer child shut down cleanly: not a crash".into());
    }
    if report.records < records || db.len() as u64 != records {
        return Err(format!(
            "recovered {} records ({} keys), wrote {records}",
            report.records,
            db.len()
        ));
    }
    // CPU time beside wall time: on a loaded machine the wall time of `open` is mostly waiting.
    let cpu = cpu.map_or_else(|| "n/a".to_string(), |s| format!("{s:.2} s"));
    let note = format!(
        "{records} records, {:.1} MB scanned, scan {:.3} s of open {seconds:.3} s (open CPU {cpu}, all threads); first ordered read after {ordered_seconds:.3} s",
        report.bytes_scanned as f64 / 1e6,
        report.duration.as_secs_f64()
    );
    Ok(vec![
        Figure::new(
            "W8",
            case::W8_GBPS,
            "mcstore",
            report.bytes_scanned as f64 / seconds / 1e9,
            Unit::GbPerSec,
        )
        .with_note(note),
        Figure::new(
            "W8",
            case::W8_RECORDS,
            "mcstore",
            records as f64 / seconds,
            Unit::RecordsPerSec,
        ),
    ])
}
