//! The README's main job until the `mcstore` CLI exists: open (or create) a pool — by default
//! `/dev/shm/mcstore.pool` — show how it recovered, then do real work on it: count this run with a
//! compare-and-swap loop, write this run's keys in atomic batches, read every one back and verify
//! it, scan them in order, and close cleanly. Run it twice: the second run finds the first's data.
//!
//! `cargo run --release --example quickstart [POOL] [KEYS]`

use std::process::ExitCode;
use std::time::Instant;

use mcstore::{Batch, Db, Options};

fn run(path: &str, keys: u64) -> Result<(), Box<dyn std::error::Error>> {
    let opened = Instant::now();
    let db = Db::open_or_create(path, Options::default().size_bytes(64 << 20))?;
    println!("pool {path}: opened in {:.1?}", opened.elapsed());
    println!("{}", db.recovery_report());

    // This run's number, with a compare-and-swap loop (safe against concurrent runners).
    let run = loop {
        let current = db.get("meta:runs")?;
        let next = current.as_deref().map_or(0, parse_u64) + 1;
        let swapped =
            db.compare_and_swap("meta:runs", current.as_deref(), Some(next.to_string()))?;
        if swapped.is_ok() {
            break next;
        }
    };
    println!("run {run}: {} keys already in the pool", db.len());

    // Write this run's keys in atomic batches of 100.
    let started = Instant::now();
    for chunk in (0..keys).collect::<Vec<_>>().chunks(100) {
        let mut batch = Batch::default();
        for &i in chunk {
            batch = batch.put(key(run, i), value(run, i));
        }
        db.apply_batch(batch)?;
    }
    let write_time = started.elapsed();

    // Read every key back and verify it.
    let started = Instant::now();
    let mut buf = Vec::new();
    for i in 0..keys {
        if !db.get_into(key(run, i), &mut buf)? || buf != value(run, i).as_bytes() {
            return Err(format!("run {run}: key {i} did not read back as written").into());
        }
    }
    let read_time = started.elapsed();

    // Scan this run's keys in order, forwards and backwards.
    let prefix = format!("run:{run:06}:");
    let forward = db.prefix(&prefix).count();
    let last = db.prefix(&prefix).next_back().transpose()?;
    println!(
        "run {run}: wrote {keys} keys in {write_time:.1?}, verified them in {read_time:.1?}, \
         scanned {forward} (last {:?})",
        last.map(|(k, _)| String::from_utf8_lossy(&k).into_owned())
    );

    // Earlier runs' keys are still there.
    for earlier in 1..run {
        let found = db.get(key(earlier, 0))?;
        println!("run {earlier}: first key {}", if found.is_some() { "present" } else { "absent" });
    }
    let stats = db.stats();
    println!(
        "stats: {} keys, pool {} MiB ({} mode), {} records written, index {} B/key",
        stats.keys,
        stats.pool_bytes >> 20,
        stats.mode,
        stats.records_written,
        stats.index_bytes_per_key
    );
    db.close()?;
    Ok(())
}

fn key(run: u64, i: u64) -> String {
    format!("run:{run:06}:{i:08}")
}

fn value(run: u64, i: u64) -> String {
    format!("value of key {i} written by run {run}")
}

fn parse_u64(bytes: &[u8]) -> u64 {
    std::str::from_utf8(bytes).ok().and_then(|s| s.parse().ok()).unwrap_or(0)
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "/dev/shm/mcstore.pool".into());
    let keys = args.next().and_then(|k| k.parse().ok()).unwrap_or(10_000);
    match run(&path, keys) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quickstart: {e}");
            ExitCode::FAILURE
        }
    }
}
