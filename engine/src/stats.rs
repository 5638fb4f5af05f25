//! `Stats`: a snapshot of what the store holds and how it runs, and the counters behind it.
//!
//! INVARIANT: counters only grow; a snapshot reads each with `Relaxed` ordering (figures, not
//! synchronisation).

use std::sync::atomic::{AtomicU64, Ordering};

use crate::options::Durability;

/// A snapshot of the store's state.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Live keys.
    pub keys: usize,
    /// Pool size in bytes.
    pub pool_bytes: u64,
    /// The size the pool may grow to.
    pub max_pool_bytes: u64,
    /// Segment size in bytes.
    pub segment_size_bytes: u64,
    /// Segments in the pool.
    pub segments_total: u32,
    /// Segments never used.
    pub segments_free: u32,
    /// Bytes used in the open segment's data area.
    pub open_segment_tail_bytes: u64,
    /// The next log sequence number.
    pub next_lsn: u64,
    /// The mapping mode (`dax`, `msync`, `forced-pmem`), or `custom` for a medium given to
    /// `create_on`/`open_on`.
    pub mode: &'static str,
    /// Durability of this handle's writes as asked for (every level runs as `Immediate` today).
    pub durability: Durability,
    /// Whether the store is read-only.
    pub read_only: bool,
    /// Whether the store is in the sticky failed state.
    pub failed: bool,
    /// Approximate DRAM bytes of the index.
    pub index_bytes: usize,
    /// `index_bytes / keys` (0 when empty).
    pub index_bytes_per_key: usize,
    /// Records appended since open.
    pub records_written: u64,
    /// Lookups (`get`, `get_into`, `contains_key`, iterator items) since open.
    pub reads: u64,
    /// Reads that met poison or did not verify since open.
    pub read_faults: u64,
    /// Segment rolls since open.
    pub segment_rolls: u64,
}

/// Counters kept by an open store.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub records_written: AtomicU64,
    pub reads: AtomicU64,
    pub read_faults: AtomicU64,
}

impl Counters {
    /// Add `n` to `counter`.
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Read `counter`.
    pub(crate) fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
