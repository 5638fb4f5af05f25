//! `mcstore bench`: a quick, self-contained put/get/scan measurement of this machine through
//! the engine (one thread, 16-byte keys, 100-byte values). The full comparison with peer
//! engines is the `mcstore-bench` crate (BENCHMARKS.md).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use mcstore_engine::{Db, Mode, Options};
use serde_json::{Value, json};

use crate::failure::{Failure, Outcome, Result};
use crate::output::Output;

/// Keys the put phase cycles over (then overwrites), and the get and scan phases read.
const KEYS_MAX: u64 = 200_000;
/// Value bytes.
const VALUE_BYTES: usize = 100;
/// Items per scan.
const SCAN_ITEMS: usize = 10;

/// Measure put, get and scan on this machine (ops/s, p50/p99 latency). A quick check only: the
/// full comparison with other engines is `mcstore-bench` (see BENCHMARKS.md).
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Seconds for each of the three phases.
    #[arg(long, default_value_t = 2.0)]
    pub seconds: f64,
    /// A pool to create for the run (must not exist; removed after). Default: a temporary
    /// pool in /dev/shm mapped ForcedPmem.
    pub path: Option<PathBuf>,
}

/// Latencies of one phase, in nanoseconds.
struct Phase {
    name: &'static str,
    ops: u64,
    elapsed: Duration,
    latencies_ns: Vec<u64>,
}

impl Phase {
    fn json(&mut self) -> Value {
        self.latencies_ns.sort_unstable();
        json!({
            "ops": self.ops,
            "seconds": self.elapsed.as_secs_f64(),
            "ops_per_sec": self.ops_per_sec(),
            "p50_ns": percentile(&self.latencies_ns, 0.50),
            "p99_ns": percentile(&self.latencies_ns, 0.99),
        })
    }

    fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The `q` quantile of sorted `values` (0 when empty).
fn percentile(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let at = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

fn key(i: u64) -> [u8; 16] {
    let mut key = *b"bench:0000000000";
    let digits = format!("{:010}", i % 10_000_000_000);
    key[6..].copy_from_slice(digits.as_bytes());
    key
}

/// Run `op` until `budget` has passed; one latency sample per operation.
fn measure(
    name: &'static str,
    budget: Duration,
    output: &Output,
    mut op: impl FnMut(u64) -> mcstore_engine::Result<()>,
) -> Result<Phase> {
    let spinner = output.spinner(name);
    let mut latencies_ns = Vec::with_capacity(1 << 20);
    let started = Instant::now();
    let mut i = 0u64;
    while started.elapsed() < budget {
        let t = Instant::now();
        op(i).map_err(|e| Failure::new(format!("bench {name}"), e))?;
        latencies_ns.push(t.elapsed().as_nanos() as u64);
        i += 1;
        if i.is_multiple_of(4096) {
            spinner.set_position(i);
        }
    }
    spinner.finish_and_clear();
    Ok(Phase { name, ops: i, elapsed: started.elapsed(), latencies_ns })
}

/// Run `bench`.
pub fn run(args: &BenchArgs, output: &Output) -> Result {
    if !(args.seconds > 0.0 && args.seconds <= 3600.0) {
        return Err(Failure(format!("--seconds {} is not in (0, 3600]", args.seconds)));
    }
    let budget = Duration::from_secs_f64(args.seconds);
    let (dir, path, mode) = match &args.path {
        Some(path) => (None, path.clone(), Mode::Auto),
        None => {
            let dir = tempfile::Builder::new()
                .prefix("mcstore-bench")
                .tempdir_in("/dev/shm")
                .map_err(|e| Failure::new("creating a temporary directory in /dev/shm", e))?;
            let path = dir.path().join("bench.pool");
            (Some(dir), path, Mode::ForcedPmem)
        }
    };
    let options = Options::default().size_bytes(256 << 20).max_size_bytes(4 << 30).mode(mode);
    let db = Db::create(&path, options).map_err(|e| Failure::pool(&path, e))?;
    let ran = phases(&db, budget, output);
    let stats = db.stats();
    let closed = db.close();
    if args.path.is_some() {
        let _ = std::fs::remove_file(&path);
    }
    drop(dir);
    let mut phases = ran?;
    closed.map_err(|e| Failure::new("closing the bench pool", e))?;
    let mut document = json!({
        "path": path,
        "mode": stats.mode,
        "key_bytes": 16,
        "value_bytes": VALUE_BYTES,
        "scan_items": SCAN_ITEMS,
        "note": "quick single-thread check; the full comparison is mcstore-bench (BENCHMARKS.md)",
    });
    for phase in &mut phases {
        document[phase.name] = phase.json();
    }
    output.emit(&document, || {
        let mut text = format!(
            "mcstore bench: mode {}, 16 B keys, {VALUE_BYTES} B values, one thread",
            stats.mode
        );
        for phase in &phases {
            let v = &document[phase.name];
            text.push_str(&format!(
                "\n  {:<5} {:>12.0} ops/s   p50 {:>7} ns   p99 {:>7} ns",
                phase.name,
                phase.ops_per_sec(),
                v["p50_ns"],
                v["p99_ns"]
            ));
        }
        text.push_str("\n(the full comparison with other engines: mcstore-bench, BENCHMARKS.md)");
        text
    });
    Ok(Outcome::Ok)
}

fn phases(db: &Db, budget: Duration, output: &Output) -> Result<Vec<Phase>> {
    let value = [0x5au8; VALUE_BYTES];
    let put = measure("put", budget, output, |i| db.put(key(i % KEYS_MAX), value))?;
    let written = put.ops.clamp(1, KEYS_MAX);
    let mut buf = Vec::with_capacity(VALUE_BYTES);
    let get = measure("get", budget, output, |i| {
        // A multiplicative hash spreads the reads over the written keys.
        let k = key(i.wrapping_mul(0x9E37_79B9_7F4A_7C15) % written);
        db.get_into(k, &mut buf).map(|_| ())
    })?;
    let scan = measure("scan", budget, output, |i| {
        let start = key(i.wrapping_mul(0x9E37_79B9_7F4A_7C15) % written);
        for item in db.range(start..).take(SCAN_ITEMS) {
            item?;
        }
        Ok(())
    })?;
    Ok(vec![put, get, scan])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_keys() {
        let sorted: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&sorted, 0.5), 51);
        assert_eq!(percentile(&sorted, 0.99), 99);
        assert_eq!(percentile(&[], 0.5), 0);
        assert_eq!(&key(42), b"bench:0000000042");
        assert!(key(1) < key(2));
    }
}
