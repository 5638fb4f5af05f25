//! The engine workloads W1–W10 of issue \[6\]. Each runs every selected engine in a fresh
//! directory under the bench directory, removes it afterwards, and returns figures; an engine
//! that fails yields "not available" figures carrying its error, never numbers.

pub mod large;
pub mod reads;
pub mod recovery;
pub mod replicas;
pub mod space;
pub mod writes;
pub mod ycsb;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::keys::{Key, ValuePool, key};
use crate::kv::{Engine, Kv, KvResult};
use crate::measure::{OpStats, op_loop};
use crate::results::{Figure, Unit};

/// Value bytes unless a workload says otherwise.
pub const VALUE_BYTES: usize = 100;
/// Puts per batch in W2 and W3 (and in every load phase).
pub const BATCH: usize = 1000;

/// What every workload needs to know about the run.
#[derive(Debug)]
pub struct Ctx {
    /// Scratch root (default /dev/shm/mcstore-bench-PID).
    pub dir: PathBuf,
    /// Multiplier of the record counts.
    pub scale: f64,
    /// Wall-clock budget of one timed loop.
    pub budget: Duration,
    /// Engines to run.
    pub engines: Vec<Engine>,
    /// Writer thread counts for W1.
    pub w1_threads: Vec<usize>,
    /// Records in W3's bulk load.
    pub load_records: u64,
    /// Keys W4 and W5 read.
    pub get_keys: u64,
    /// Source of every value.
    pub values: ValuePool,
}

impl Ctx {
    /// `n` multiplied by the scale, at least `floor`.
    pub fn scaled(&self, n: u64, floor: u64) -> u64 {
        ((n as f64 * self.scale) as u64).max(floor)
    }

    /// Run `f` on a fresh store of `engine` in `<dir>/<tag>-<engine>`; the directory is removed
    /// afterwards. If the engine cannot be opened, every case in `cases` is reported unavailable.
    pub fn with_engine(
        &self,
        workload: &'static str,
        tag: &str,
        engine: Engine,
        data_bytes: u64,
        cases: &[(String, Unit)],
        f: impl FnOnce(&dyn Kv) -> Vec<Figure>,
    ) -> Vec<Figure> {
        let dir = self.dir.join(format!("{tag}-{}", engine.name()));
        let _ = std::fs::remove_dir_all(&dir);
        let figures = match std::fs::create_dir_all(&dir)
            .map_err(|e| format!("{}: {e}", dir.display()))
            .and_then(|()| engine.open(&dir, data_bytes))
        {
            Ok(kv) => {
                progress(workload, engine.name(), "start");
                let figures = f(kv.as_ref());
                drop(kv);
                figures
            }
            Err(e) => cases
                .iter()
                .map(|(case, unit)| Figure::unavailable(workload, case, engine.name(), *unit, &e))
                .collect(),
        };
        let _ = std::fs::remove_dir_all(&dir);
        figures
    }
}

/// A progress line on stderr (stdout carries the tables).
pub fn progress(workload: &str, engine: &str, what: &str) {
    eprintln!("[{workload}] {engine}: {what}");
}

/// A figure from an operation loop's outcome: its throughput, or unavailable with the error.
pub fn ops_figure(
    workload: &'static str,
    case: &str,
    engine: &str,
    r: KvResult<OpStats>,
) -> Figure {
    match r {
        Ok(stats) => Figure::from_ops(workload, case, engine, &stats),
        Err(e) => Figure::unavailable(workload, case, engine, Unit::OpsPerSec, &e),
    }
}

/// Like `ops_figure`, counting `per_op` records per operation (batches, scans).
pub fn records_figure(
    workload: &'static str,
    case: &str,
    engine: &str,
    per_op: u64,
    r: KvResult<OpStats>,
) -> Figure {
    match r {
        Ok(stats) => {
            let rate = stats.ops_per_sec() * per_op as f64;
            Figure {
                p50_ns: Some(stats.p50_ns),
                p99_ns: Some(stats.p99_ns),
                ..Figure::new(workload, case, engine, rate, Unit::RecordsPerSec)
            }
        }
        Err(e) => Figure::unavailable(workload, case, engine, Unit::RecordsPerSec, &e),
    }
}

/// Insert items `first..first + count` (key `key(i)`, value `value_bytes` long) in batches.
pub fn load(
    kv: &dyn Kv,
    values: &ValuePool,
    first: u64,
    count: u64,
    value_bytes: usize,
) -> KvResult<Duration> {
    let start = Instant::now();
    let mut pairs: Vec<(Key, &[u8])> = Vec::with_capacity(BATCH);
    let mut i = first;
    while i < first + count {
        pairs.clear();
        let end = (i + BATCH as u64).min(first + count);
        pairs.extend((i..end).map(|j| (key(j), values.value(j, value_bytes))));
        kv.put_batch(&pairs)?;
        i = end;
    }
    Ok(start.elapsed())
}

/// Run `make_op(thread)`'s operation `op(i)` on `threads` threads at once, each for up to
/// `max_ops` operations or the budget. Combined: total operations over the slowest thread's time;
/// p50 the mean of the threads' medians, p99 the worst thread's.
pub fn parallel_loops<Op: FnMut(u64) -> KvResult<()>>(
    threads: usize,
    budget: Duration,
    max_ops: u64,
    make_op: impl Fn(usize) -> Op + Sync,
) -> KvResult<OpStats> {
    let per_thread: Vec<KvResult<OpStats>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let make_op = &make_op;
                s.spawn(move || op_loop(budget, max_ops, make_op(t)))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("a benchmark thread panicked".to_string())))
            .collect()
    });
    let stats: Vec<OpStats> = per_thread.into_iter().collect::<KvResult<_>>()?;
    Ok(OpStats {
        ops: stats.iter().map(|s| s.ops).sum(),
        seconds: stats.iter().map(|s| s.seconds).fold(0.0, f64::max),
        p50_ns: stats.iter().map(|s| s.p50_ns).sum::<f64>() / stats.len().max(1) as f64,
        p99_ns: stats.iter().map(|s| s.p99_ns).fold(0.0, f64::max),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_loops_adds_the_threads_operations() {
        let s = parallel_loops(2, Duration::from_secs(60), 500, |_| |_| Ok(())).unwrap();
        assert_eq!(s.ops, 1000);
        let e = parallel_loops(2, Duration::from_secs(60), 500, |t| {
            move |i| if t == 1 && i == 3 { Err("stop".to_string()) } else { Ok(()) }
        });
        assert_eq!(e, Err("stop".to_string()));
    }
}
