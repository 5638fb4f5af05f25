//! `Stats`: a snapshot of what the store holds and how it runs, and the counters behind it.
//!
//! INVARIANT: counters only grow; a snapshot reads each with `Relaxed` ordering (figures, not
//! synchronisation). Space amplification = pool bytes in use (the used data of every segment
//! that holds records) / encoded bytes of the live records (`docs/concurrency.md`).

use std::sync::atomic::{AtomicU64, Ordering};

use mcstore_recovery::format::MemberState;

use crate::db::Inner;
use crate::options::Durability;

/// A snapshot of the store's state.
#[derive(Clone, Debug, PartialEq)]
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
    /// Segments holding no records (never used or reclaimed).
    pub segments_free: u32,
    /// Segments the allocator will never write again because they overlap a range the medium
    /// reports bad (a replica set's quarantine, unrepaired bad blocks); 0 for a read-only store.
    pub segments_quarantined: u32,
    /// Bytes used in the open segment's data area.
    pub open_segment_tail_bytes: u64,
    /// The next log sequence number.
    pub next_lsn: u64,
    /// The mapping mode (`dax`, `msync`, `forced-pmem`), or `custom` for a medium given to
    /// `create_on`/`open_on`.
    pub mode: &'static str,
    /// Durability of the handle `stats()` was called on.
    pub durability: Durability,
    /// Whether the store is read-only.
    pub read_only: bool,
    /// Whether the store is in the sticky failed state.
    pub failed: bool,
    /// Whether this store was opened with `Options::salvage` and the open dropped damage
    /// (`recovery_report()` lists what was dropped, reclaimed and pinned).
    pub salvaged: bool,
    /// Approximate DRAM bytes of the index (its point table's successor included while one is
    /// allocated, from the table's preparation at half full until its growth's end).
    pub index_bytes: usize,
    /// `index_bytes / keys` (0 when empty).
    pub index_bytes_per_key: usize,
    /// Records appended since open (compaction's copies not included).
    pub records_written: u64,
    /// Lookups (`get`, `get_into`, `contains_key`, iterator items, transaction reads).
    pub reads: u64,
    /// Reads that met poison or did not verify since open.
    pub read_faults: u64,
    /// Segment rolls since open.
    pub segment_rolls: u64,
    /// Group commits since open (each one pair of fences).
    pub commit_groups: u64,
    /// Mean writers per group commit (0 when none).
    pub commit_group_mean: f64,
    /// Largest group commit.
    pub commit_group_max: u64,
    /// Encoded bytes of the live records (what a perfectly compacted log would hold).
    pub live_bytes: u64,
    /// Data bytes used in segments that hold records (live, dead and tombstones).
    pub used_bytes: u64,
    /// `used_bytes / live_bytes` (1.0 when nothing is live).
    pub space_amplification: f64,
    /// Compaction passes that cleaned at least one segment.
    pub compactions: u64,
    /// Segments reclaimed by compaction.
    pub segments_reclaimed: u64,
    /// Records compaction copied forward.
    pub records_moved: u64,
    /// Bytes compaction copied forward.
    pub bytes_moved: u64,
    /// Records compaction could not read (poison or a bad checksum); their segments are kept.
    pub compaction_unreadable: u64,
    /// Transactions committed.
    pub transactions: u64,
    /// Transaction attempts that met a conflicting write and ran again.
    pub transaction_retries: u64,
    /// Members of the replica set (the primary included; 1 without replicas).
    pub replica_members: usize,
    /// Members not in sync (stale or resilvering): the set runs degraded when above 0.
    pub replicas_not_in_sync: usize,
    /// Reads retried from a replica (the commit barrier's middle choice).
    pub replica_retries: u64,
    /// Ranges rewritten from a good member (reads, recovery, scrub, bad blocks).
    pub replica_repairs: u64,
    /// Bytes those repairs rewrote (whole pages).
    pub bytes_repaired: u64,
}

/// Counters kept by an open store.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub records_written: AtomicU64,
    pub reads: AtomicU64,
    pub read_faults: AtomicU64,
    pub compactions: AtomicU64,
    pub segments_reclaimed: AtomicU64,
    pub records_moved: AtomicU64,
    pub bytes_moved: AtomicU64,
    pub compaction_unreadable: AtomicU64,
    pub transactions: AtomicU64,
    pub transaction_retries: AtomicU64,
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

impl Stats {
    /// Take a snapshot of `inner` for a handle of `durability`.
    pub(crate) fn collect(inner: &Inner, durability: Durability) -> Stats {
        let keys = inner.index.len();
        let index_bytes = inner.index.approx_bytes();
        let pool_bytes = inner.medium.len();
        let st = inner.commit.lock();
        let (segments_free, quarantined, tail, next_lsn, rolls, max_pool_bytes) =
            match st.writer.as_ref() {
                Some(w) => (
                    u32::try_from(w.free_segments()).unwrap_or(u32::MAX),
                    u32::try_from(w.quarantined_segments().len()).unwrap_or(u32::MAX),
                    w.open_segment().map_or(0, |s| s.tail),
                    w.next_lsn(),
                    w.rolls(),
                    w.max_len(),
                ),
                None => (0, 0, 0, 0, 0, pool_bytes),
            };
        let (live_bytes, used_bytes) = (st.space.live_total(), st.space.used_total());
        drop(st);
        let c = &inner.counters;
        let g = &inner.commit.counters;
        let repairs = inner.replicas.as_ref().map(|s| s.poolset().stats()).unwrap_or_default();
        let groups = Counters::get(&g.groups);
        Stats {
            keys,
            salvaged: inner.report.salvaged,
            pool_bytes,
            max_pool_bytes,
            segment_size_bytes: inner.geometry.segment_size_bytes,
            segments_total: inner.geometry.segment_count(pool_bytes),
            segments_free,
            segments_quarantined: quarantined,
            open_segment_tail_bytes: tail,
            next_lsn,
            mode: inner.mode,
            durability,
            read_only: inner.options.read_only,
            failed: inner.latch.is_tripped(),
            index_bytes,
            index_bytes_per_key: index_bytes.checked_div(keys).unwrap_or(0),
            records_written: Counters::get(&c.records_written),
            reads: Counters::get(&c.reads),
            read_faults: Counters::get(&c.read_faults),
            segment_rolls: rolls,
            commit_groups: groups,
            commit_group_mean: if groups == 0 {
                0.0
            } else {
                Counters::get(&g.slots) as f64 / groups as f64
            },
            commit_group_max: Counters::get(&g.max_slots),
            live_bytes,
            used_bytes,
            space_amplification: if live_bytes == 0 {
                1.0
            } else {
                used_bytes as f64 / live_bytes as f64
            },
            compactions: Counters::get(&c.compactions),
            segments_reclaimed: Counters::get(&c.segments_reclaimed),
            records_moved: Counters::get(&c.records_moved),
            bytes_moved: Counters::get(&c.bytes_moved),
            compaction_unreadable: Counters::get(&c.compaction_unreadable),
            transactions: Counters::get(&c.transactions),
            transaction_retries: Counters::get(&c.transaction_retries),
            replica_members: inner.replicas.as_ref().map_or(1, |s| s.poolset().member_count()),
            replicas_not_in_sync: inner
                .replicas
                .as_ref()
                .map_or(0, |s| s.states().iter().filter(|st| **st != MemberState::InSync).count()),
            replica_retries: repairs.retries,
            replica_repairs: repairs.repairs,
            bytes_repaired: repairs.bytes_repaired,
        }
    }
}
