//! Micro workload: a large value's read and checksum, cold, the two ways the get path has had.
//! - one pass (the get path since `9c7168a`): `Medium::read_hashing`, whose copy routine hashes
//!   each 64-byte stripe from the registers it copies through;
//! - copy, then hash (the get path before): `Medium::read` of 16 KiB pieces, each hashed right
//!   after its copy, while it is in L1.
//!
//! Both read values at random places of a 256 MiB mapped pool (8 times this machine's L3), so
//! each read comes from memory as a get's does. The sides are timed in alternating batches; each
//! keeps its median batch. Ratio = one pass / copy-then-hash throughput (> 1: one pass faster).

use std::time::Instant;

use mcstore_pmem::xxh3::Xxh3Stream;
use mcstore_pmem::{Domain, ErrorRegister, Medium};

use crate::measure::{keep, median};
use crate::report::Row;

/// Value sizes read.
pub const SIZES: [usize; 4] = [4096, 16 << 10, 64 << 10, 1 << 20];
/// Bytes of the pool the reads spread over.
pub const SPAN_BYTES: u64 = 256 << 20;
/// The piece the copy-then-hash side copies, then hashes (the old get path's chunk).
const PIECE_BYTES: usize = 16 << 10;
/// Batches per side.
const BATCHES: usize = 12;
/// Bytes read per batch.
const BATCH_BYTES: usize = 64 << 20;

/// Where read `i` of `size` bytes starts: pseudo-random, 8 bytes past a line (a value follows a
/// record header and key), inside the span.
fn offset(i: u64, size: usize) -> u64 {
    let mut x = i.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 29;
    let lines = (SPAN_BYTES - size as u64 - 128) / 64;
    (x % lines) * 64 + 8
}

/// The digest of one read through `read`, which fills `dst` and feeds `stream`.
fn digest(
    medium: &dyn Medium,
    at: u64,
    dst: &mut [u8],
    one_pass: bool,
    register: &mut ErrorRegister,
) -> u64 {
    let mut stream = Xxh3Stream::new();
    if one_pass {
        medium.read_hashing(at, dst, register, Domain::User, &mut stream).expect("read in bounds");
    } else {
        for (i, piece) in dst.chunks_mut(PIECE_BYTES).enumerate() {
            let from = at + (i * PIECE_BYTES) as u64;
            medium.read(from, piece, register, Domain::User).expect("read in bounds");
            stream.update(piece);
        }
    }
    stream.digest()
}

/// Run the workload on `medium`, whose first [`SPAN_BYTES`] are written and clean.
pub fn run(medium: &dyn Medium) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut register = ErrorRegister::deferred();
    for size in SIZES {
        let mut dst = vec![0u8; size];
        // The two ways agree on what they read.
        for i in 0..4 {
            let at = offset(i, size);
            let one = digest(medium, at, &mut dst, true, &mut register);
            let two = digest(medium, at, &mut dst, false, &mut register);
            assert_eq!(one, two, "the two reads of {size} B at {at} hash differently");
        }
        let reads = (BATCH_BYTES / size) as u64;
        let mut gbps = [Vec::new(), Vec::new()];
        let mut next = 0u64;
        for batch in 0..2 * BATCHES {
            let one_pass = batch % 2 == 0;
            let start = Instant::now();
            for _ in 0..reads {
                keep(digest(medium, offset(next, size), &mut dst, one_pass, &mut register));
                next += 1;
            }
            let seconds = start.elapsed().as_secs_f64();
            gbps[usize::from(!one_pass)].push((reads as usize * size) as f64 / seconds / 1e9);
        }
        assert!(register.is_clean(), "benchmark sources must be clean");
        let [mut one, mut two] = gbps;
        let (one, two) = (median(&mut one), median(&mut two));
        rows.push(Row {
            group: "read-and-hash".into(),
            case: format!("{} KiB cold, one pass vs copy then hash", size >> 10),
            value: one,
            reference: two,
            unit: "GB/s",
            ratio: one / two,
            target: None,
        });
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every read lies inside the span, 8 bytes past a line, and the reads spread over it.
    #[test]
    fn reads_stay_in_the_span_and_spread_over_it() {
        for size in SIZES {
            let offsets: Vec<u64> = (0..10_000).map(|i| offset(i, size)).collect();
            assert!(offsets.iter().all(|&at| at % 64 == 8 && at + size as u64 <= SPAN_BYTES));
            let highest = offsets.iter().copied().max().unwrap_or(0);
            assert!(highest > SPAN_BYTES / 2, "{size} B reads stay below {highest}");
        }
    }
}
