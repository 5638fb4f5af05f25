//! Timing primitives: batches of calls timed with a monotonic clock, medians over batches.
//!
//! Every figure is a median over batches, so one preempted batch on a noisy 2-vCPU VM does not
//! move it; ratios are always taken between figures measured in the same run.

use std::hint::black_box;
use std::time::Instant;

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
}
