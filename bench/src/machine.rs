//! The machine's limits, measured in the same run as the workloads: the raw two-fence append of
//! one mcstore-sized record (stores, clwb per line, sfence; tail word, clwb, sfence) on a mapping
//! in the bench directory, memcpy bandwidth between buffers far larger than the last-level cache,
//! and the latency of a dependent random DRAM load (a pointer chase over 256 MiB of lines).

use std::path::Path;
use std::time::Instant;

use mcstore::recovery::format::RECORD_HEADER_BYTES;
use mcstore_pmem::raw::RawRegion;

use crate::case;
use crate::keys::{KEY_BYTES, Rng};
use crate::measure::{keep, ns_per_call};
use crate::results::{Figure, Unit};
use crate::workloads::VALUE_BYTES;

/// An mcstore record of a 16-byte key and 100-byte value, padded to 8 bytes.
pub const RECORD_BYTES: usize = (RECORD_HEADER_BYTES + KEY_BYTES + VALUE_BYTES).next_multiple_of(8);
const _: () = assert!(RECORD_BYTES == 152, "case::TWO_FENCE names 152 B");

/// Bytes of each memcpy buffer and of the pointer-chase array.
const BIG_BYTES: usize = 256 << 20;
const LINE: usize = 64;

/// All three figures.
pub fn limits(dir: &Path) -> Vec<Figure> {
    vec![two_fence(dir), memcpy(case::MEMCPY), chase()]
}

fn two_fence(dir: &Path) -> Figure {
    let path = dir.join("raw-append.pool");
    let region_bytes = 64 << 20;
    let figure = match RawRegion::create(&path, region_bytes) {
        Ok(raw) => {
            let record = vec![0xa7u8; RECORD_BYTES];
            let log_start = 4096;
            let log_bytes = 32 << 20;
            let mut at = 0usize;
            let ns = ns_per_call(15, 20_000, || {
                let offset = log_start + at % log_bytes;
                at += RECORD_BYTES;
                raw.two_fence_append(offset, &record, 0, (offset + RECORD_BYTES) as u64);
            });
            Figure::new("machine", case::TWO_FENCE, "machine", 1e9 / ns, Unit::OpsPerSec)
                .with_note(format!("{ns:.0} ns per append"))
        }
        Err(e) => Figure::unavailable(
            "machine",
            case::TWO_FENCE,
            "machine",
            Unit::OpsPerSec,
            &e.to_string(),
        ),
    };
    let _ = std::fs::remove_file(&path);
    figure
}

/// The machine's memcpy bandwidth now, as the figure `case` (the best of 5 copies).
pub fn memcpy(case: &str) -> Figure {
    let src = vec![0x3cu8; BIG_BYTES];
    let mut dst = vec![0u8; BIG_BYTES];
    dst.copy_from_slice(&src); // fault every page in before timing
    let best = (0..5)
        .map(|_| {
            let start = Instant::now();
            dst.copy_from_slice(keep(&src));
            keep(dst.as_ptr());
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    Figure::new("machine", case, "machine", BIG_BYTES as f64 / best / 1e9, Unit::GbPerSec)
}

/// The machine's bandwidth copying `size`-byte pieces from random places of a buffer far larger
/// than the last-level cache into one destination (the best of 5 rounds of `BIG_BYTES` each):
/// each piece starts with a DRAM miss, as a get of a cold value does, and the prefetchers must
/// find each piece's stream anew. Pieces start 8 bytes past a line, as a value after its record
/// header does.
pub fn memcpy_pieces(size: usize) -> Figure {
    let src = vec![0x5au8; BIG_BYTES];
    let mut dst = vec![0u8; size];
    let lines = ((BIG_BYTES - size - LINE) / LINE) as u64;
    let pieces = (BIG_BYTES / size).max(1);
    let mut rng = Rng::new(size as u64 ^ 0x9e37);
    let best = (0..5)
        .map(|_| {
            let starts: Vec<usize> =
                (0..pieces).map(|_| rng.below(lines) as usize * LINE + 8).collect();
            let start = Instant::now();
            for &at in &starts {
                dst.copy_from_slice(keep(&src[at..at + size]));
                keep(dst.as_ptr());
            }
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min);
    let bytes = (pieces * size) as f64;
    Figure::new(
        "machine",
        &case::memcpy_pieces(size),
        "machine",
        bytes / best / 1e9,
        Unit::GbPerSec,
    )
}

fn chase() -> Figure {
    let lines = BIG_BYTES / LINE;
    let words_per_line = LINE / 8;
    // One cycle through every line in random order (Sattolo's shuffle), stored in the first word
    // of each line, so each load depends on the previous one and hits a new line.
    let mut order: Vec<u32> = (0..lines as u32).collect();
    let mut rng = Rng::new(42);
    for i in (1..lines).rev() {
        let j = rng.below(i as u64) as usize;
        order.swap(i, j);
    }
    let mut next = vec![0u64; BIG_BYTES / 8];
    for i in 0..lines {
        let from = order[i] as usize;
        let to = order[(i + 1) % lines] as u64;
        next[from * words_per_line] = to;
    }
    let loads = 20_000_000u64.min(4 * lines as u64);
    let mut at = 0u64;
    let start = Instant::now();
    for _ in 0..loads {
        at = next[at as usize * words_per_line];
    }
    let ns = start.elapsed().as_nanos() as f64 / loads as f64;
    keep(at);
    Figure::new("machine", case::CHASE, "machine", ns, Unit::NsPerOp)
}
