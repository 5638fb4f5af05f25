//! Timing primitives: batches of calls timed with a monotonic clock, medians over batches, and
//! the per-operation loop of the engine workloads (throughput plus sampled latency).
//!
//! Micro figures are medians over batches, so one preempted batch on a noisy 2-vCPU VM does not
//! move them; ratios are always taken between figures measured in the same run. Engine loops time
//! every `SAMPLE_EVERY`th operation alone, so the clock costs little of the throughput.

use std::hint::black_box;
use std::time::{Duration, Instant};

/// One operation in this many is timed on its own for the latency percentiles.
pub const SAMPLE_EVERY: u64 = 16;

/// Throughput and latency of one run of an operation loop.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OpStats {
    /// Operations completed.
    pub ops: u64,
    /// Wall-clock seconds for all of them.
    pub seconds: f64,
    /// Median latency of the sampled operations, ns.
    pub p50_ns: f64,
    /// 99th percentile latency of the sampled operations, ns.
    pub p99_ns: f64,
}

impl OpStats {
    /// Operations per second.
    pub fn ops_per_sec(&self) -> f64 {
        if self.seconds > 0.0 { self.ops as f64 / self.seconds } else { 0.0 }
    }
}

/// Run `op(i)` for `i = 0, 1, …` until `max_ops` operations or `budget` has passed (checked every
/// 64 operations, and never before one operation has run). Stops at the first error.
pub fn op_loop<E>(
    budget: Duration,
    max_ops: u64,
    mut op: impl FnMut(u64) -> Result<(), E>,
) -> Result<OpStats, E> {
    let mut samples: Vec<u64> = Vec::with_capacity((max_ops / SAMPLE_EVERY).min(1 << 20) as usize);
    let start = Instant::now();
    let mut i = 0u64;
    while i < max_ops {
        if i.is_multiple_of(SAMPLE_EVERY) {
            let t = Instant::now();
            op(i)?;
            samples.push(t.elapsed().as_nanos() as u64);
        } else {
            op(i)?;
        }
        i += 1;
        if i.is_multiple_of(64) && start.elapsed() >= budget {
            break;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    samples.sort_unstable();
    Ok(OpStats {
        ops: i,
        seconds,
        p50_ns: percentile(&samples, 0.50),
        p99_ns: percentile(&samples, 0.99),
    })
}

/// The `q` quantile (0..=1) of sorted `samples`, nearest rank; zero for none.
pub fn percentile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64
}

/// Nanoseconds per call: median over `batches` batches of `calls` calls each.
pub fn ns_per_call(batches: usize, calls: usize, mut f: impl FnMut()) -> f64 {
    // Warm up caches, page tables and branch predictors.
    for _ in 0..calls.min(1000) {
        f();
    }
    let mut samples: Vec<f64> = (0..batches)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..calls {
                f();
            }
            start.elapsed().as_nanos() as f64 / calls as f64
        })
        .collect();
    median(&mut samples)
}

/// The median of `samples` (sorted in place). Zero for an empty slice.
pub fn median(samples: &mut [f64]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

/// Calls per batch so a batch of `bytes`-sized operations lasts roughly a few hundred µs.
pub fn calls_for(bytes: usize) -> usize {
    (64 * 1024 * 1024 / bytes.max(64)).clamp(8, 20_000)
}

/// Keep `v` alive and opaque to the optimiser.
pub fn keep<T>(v: T) -> T {
    black_box(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 3.0, 2.0]), 3.0);
        assert_eq!(median(&mut []), 0.0);
    }

    #[test]
    fn percentile_is_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn op_loop_stops_at_max_ops_and_at_errors() {
        let s = op_loop::<()>(Duration::from_secs(60), 1000, |_| Ok(())).unwrap();
        assert_eq!(s.ops, 1000);
        assert!(s.p99_ns >= s.p50_ns);
        let mut seen = 0;
        let r = op_loop(Duration::from_secs(60), 1000, |i| {
            seen += 1;
            if i == 5 { Err("boom") } else { Ok(()) }
        });
        assert_eq!(r, Err("boom"));
        assert_eq!(seen, 6);
        let quick = op_loop::<()>(Duration::ZERO, u64::MAX, |_| Ok(())).unwrap();
        assert_eq!(quick.ops, 64, "a spent budget stops at the first check");
    }
}
