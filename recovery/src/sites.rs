//! THE static registry of persist points: every `Medium::fence` in mcstore names one of these.
//!
//! Crash harnesses count reaches and crash at each site, and fail when a site in [`ALL`] was never
//! crashed at. A new fence gets a constant here (with what it orders) and an entry in [`ALL`].

use mcstore_pmem::FenceSite;

/// Records of one append — with group commit, of every writer in the group — are durable
/// (flushed) before their tail is published.
pub const RECORD_PERSIST: FenceSite = FenceSite("record.persist");
/// The committed-tail word of a segment is durable: the append (every writer of the group) is
/// acknowledged after this.
pub const TAIL_PUBLISH: FenceSite = FenceSite("tail.publish");
/// Re-initialising a segment, step 1: its tail word is cleared (0) before the header changes.
pub const SEGMENT_TAIL_CLEAR: FenceSite = FenceSite("segment.tail_clear");
/// Re-initialising a segment, step 2: the new header (set uuid, id, sequence, state) is durable.
pub const SEGMENT_HEADER: FenceSite = FenceSite("segment.header");
/// A superblock slot (generation g in slot g % 2) is durable.
pub const SUPERBLOCK_WRITE: FenceSite = FenceSite("superblock.write");
/// Pool creation: every segment's header and tail lines are zero before any superblock exists.
pub const POOL_CREATE_CLEAR: FenceSite = FenceSite("pool.create_clear");
/// Segment reclamation: a cleaned segment's tail is cleared before it is reused. (Compaction's
/// copies are a batch through the group commit: `RECORD_PERSIST`, `TAIL_PUBLISH`.)
pub const SEGMENT_RECLAIM: FenceSite = FenceSite("segment.reclaim");
/// Growth: the new segments' header and tail lines are zero before the superblock records
/// their count (`SUPERBLOCK_WRITE`, `pool::record_growth`).
pub const GROW_SEGMENTS: FenceSite = FenceSite("grow.segments");
/// Replica reconcile at open, step 1: the primary's committed bytes (up to its verified tail)
/// are durable on the member before the header and tail lines that commit them are written.
pub const RECONCILE_DATA: FenceSite = FenceSite("replica.reconcile_data");
/// Replica reconcile at open, step 2: the primary's segment header and tail lines (or its
/// superblock) are durable on the member.
pub const RECONCILE_LINES: FenceSite = FenceSite("replica.reconcile_lines");
/// The member table: the next generation is durable in the other slot (the previous
/// generation stays readable in its own slot until then).
pub const TABLE_WRITE: FenceSite = FenceSite("replica.table_write");
/// SimMedium's repair write (`Medium::repair`): the rewritten bytes are durable before the
/// caller re-reads them. Defined by the device layer; listed here so the registry is whole.
pub const PMEM_REPAIR: FenceSite = mcstore_pmem::sim::REPAIR_SITE;

/// Every persist point, in the order a write path meets them.
pub const ALL: &[FenceSite] = &[
    RECORD_PERSIST,
    TAIL_PUBLISH,
    SEGMENT_TAIL_CLEAR,
    SEGMENT_HEADER,
    SUPERBLOCK_WRITE,
    POOL_CREATE_CLEAR,
    SEGMENT_RECLAIM,
    GROW_SEGMENTS,
    RECONCILE_DATA,
    RECONCILE_LINES,
    TABLE_WRITE,
    PMEM_REPAIR,
];

/// The registered site called `name`, if any.
pub fn by_name(name: &str) -> Option<FenceSite> {
    ALL.iter().copied().find(|site| site.0 == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_found() {
        let mut names: Vec<&str> = ALL.iter().map(|s| s.0).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
        assert_eq!(by_name("tail.publish"), Some(TAIL_PUBLISH));
        assert_eq!(by_name("nope"), None);
    }
}
