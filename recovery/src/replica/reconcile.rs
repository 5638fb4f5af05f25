//! Reconciling a replica to the primary at open, before writes are accepted: superblocks
//! re-encoded from the primary's when the generations differ, and every segment whose header or
//! tail line differs brought to the primary's verified committed tail (the committed bytes, then
//! the lines).
//!
//! INVARIANT: only bytes that read clean on the primary and verify (header checksum, tail check)
//! are copied; a segment the primary cannot vouch for is left alone for the scan to repair from
//! the replica; a primary superblock slot that reads clean but does not decode is healed from the
//! replica first when the replica's slot holds a newer generation. PERSIST: a member's data is fenced before its header and tail lines, so a crash
//! mid-reconcile leaves lines that still differ and the next open redoes the segment.

use mcstore_pmem::{Domain, ErrorRegister, Medium, MemberId, read_u64};

use super::set::{ReplicaSet, Result, read_superblock};
use crate::format::{
    SEGMENT_DATA_OFFSET, SEGMENT_TAIL_OFFSET, SUPERBLOCK_BYTES, SUPERBLOCK_SLOT_OFFSETS,
    SegmentHeader, SegmentId, Superblock,
};

pub use crate::sites::{RECONCILE_DATA, RECONCILE_LINES};

/// Bytes copied per read while reconciling committed data.
const CHUNK_BYTES: u64 = 1 << 20;

/// What reconciling one member did.
pub(super) struct Reconciled {
    pub(super) superblocks: bool,
    pub(super) segments: u32,
}

fn read_clean(medium: &dyn Medium, offset: u64, len: u64) -> Option<Vec<u8>> {
    let mut bytes = vec![0u8; usize::try_from(len).ok()?];
    let mut register = ErrorRegister::deferred();
    medium.read(offset, &mut bytes, &mut register, Domain::Engine).ok()?;
    register.is_clean().then_some(bytes)
}

/// The tail word held in a segment's header and tail lines.
fn tail_word(lines: &[u8]) -> u64 {
    let at = SEGMENT_TAIL_OFFSET as usize;
    lines.get(at..at + 8).and_then(|w| w.try_into().ok()).map_or(u64::MAX, u64::from_le_bytes)
}

/// Bring `member` to the primary's superblocks and committed tails. A member whose writes fail
/// is marked stale (and left alone).
pub(super) fn reconcile_member(set: &ReplicaSet, member: MemberId) -> Result<Reconciled> {
    let mut done = Reconciled { superblocks: false, segments: 0 };
    let primary = set.poolset.medium(MemberId(0)).clone();
    let target = set.poolset.medium(member).clone();
    heal_primary_slots(set, primary.as_ref(), target.as_ref());
    let outcome = reconcile_superblocks(set, primary.as_ref(), target.as_ref(), member)
        .and_then(|rewritten| {
            done.superblocks = rewritten;
            reconcile_segments(set, primary.as_ref(), target.as_ref(), member)
        })
        .map(|segments| done.segments = segments);
    if let Err(err) = outcome {
        set.poolset.mark_stale(member, format!("reconcile at open failed: {err}"));
    }
    Ok(done)
}

/// Write `bytes` at `offset` of `member`. Media refuse a store into a known-poisoned page
/// (nothing lands); such a page is healed first, whole pages from a good member (the primary
/// first) through `PoolSet::heal`, and the write re-run once. A page no member can heal keeps the
/// error, and the caller marks the member stale.
fn write_healing(
    set: &ReplicaSet,
    member: MemberId,
    target: &dyn Medium,
    offset: u64,
    bytes: &[u8],
) -> mcstore_pmem::Result<()> {
    match target.write(offset, bytes) {
        Err(mcstore_pmem::Error::Poisoned { offset: at, len }) => {
            let end = at.saturating_add(len).min(target.len());
            set.poolset.heal(member, at, end.saturating_sub(at).max(1), &|_| true)?;
            target.write(offset, bytes)
        }
        other => other,
    }
}

/// Heal each superblock slot of the primary that reads clean but does not decode, when
/// `target`'s copy of that slot decodes to a newer generation than any the primary holds. Such a
/// slot lost its bytes (poison cleared without its data, a stray store) or tore in an update the
/// replica received whole; either way the primary's older slot must not become the reference
/// (it would roll back `highest_segment_seq`, and the scan would then reject segments issued
/// after it as never issued, with no good copy left once the replica was rewritten from it).
/// The heal goes through `PoolSet::heal` (whole pages, re-encoded for the primary, re-read and
/// verified); a slot it cannot heal is left as it was.
fn heal_primary_slots(set: &ReplicaSet, primary: &dyn Medium, target: &dyn Medium) {
    let newest = read_superblock(primary).map_or(0, |sb| sb.generation);
    for (slot, &offset) in SUPERBLOCK_SLOT_OFFSETS.iter().enumerate() {
        let len = SUPERBLOCK_BYTES as u64;
        // A poisoned slot is the scan's to repair; a slot that decodes is the reference.
        let Some(mine) = read_clean(primary, offset, len) else { continue };
        if Superblock::decode(&mine, slot).is_ok() {
            continue;
        }
        let newer = |bytes: &[u8]| {
            Superblock::decode(bytes, slot)
                .is_ok_and(|sb| sb.set_uuid == set.set_uuid && sb.generation > newest)
        };
        if read_clean(target, offset, len).is_some_and(|theirs| newer(&theirs)) {
            // Not healed (no source verifies, the repair failed): the reference stays the
            // primary's valid slot, as before.
            let _ = set.poolset.heal(MemberId(0), offset, len, &newer);
        }
    }
}

fn reconcile_superblocks(
    set: &ReplicaSet,
    primary: &dyn Medium,
    target: &dyn Medium,
    member: MemberId,
) -> mcstore_pmem::Result<bool> {
    let Some(newest) = read_superblock(primary) else { return Ok(false) };
    if read_superblock(target).is_some_and(|sb| sb.generation == newest.generation) {
        return Ok(false);
    }
    for (slot, &offset) in SUPERBLOCK_SLOT_OFFSETS.iter().enumerate() {
        let Some(bytes) = read_clean(primary, offset, SUPERBLOCK_BYTES as u64) else { continue };
        let Ok(sb) = Superblock::decode(&bytes, slot) else { continue };
        let mine = set.identities.for_member(member, &sb)?.encode();
        write_healing(set, member, target, offset, &mine)?;
        target.flush(offset, mine.len() as u64)?;
    }
    // PERSIST: both slots durable before the segments are reconciled.
    target.fence(RECONCILE_LINES)?;
    Ok(true)
}

fn reconcile_segments(
    set: &ReplicaSet,
    primary: &dyn Medium,
    target: &dyn Medium,
    member: MemberId,
) -> mcstore_pmem::Result<u32> {
    let g = set.geometry;
    let mut reconciled = 0;
    for id in (0..g.segment_count(primary.len())).map(SegmentId) {
        let at = g.segment_offset(id);
        let Some(lines) = read_clean(primary, at, SEGMENT_DATA_OFFSET) else { continue };
        if read_clean(target, at, SEGMENT_DATA_OFFSET).is_some_and(|theirs| theirs == lines) {
            continue;
        }
        let tail = match SegmentHeader::decode(&lines) {
            // A free segment: its tail word must be zero too. A tail word in a segment with no
            // header is damage (the scan reports it and heals it from this replica); copying it
            // would leave no good copy.
            Ok(None) if tail_word(&lines) == 0 => 0,
            Ok(None) => continue,
            Ok(Some(header)) if header.set_uuid == set.set_uuid => {
                let mut register = ErrorRegister::deferred();
                let word = read_u64(primary, g.tail_offset(id), &mut register, Domain::Engine)?;
                match g.committed_tail(word, header.seq, &set.set_uuid) {
                    Ok(tail) => tail,
                    Err(_) => continue,
                }
            }
            _ => continue,
        };
        let start = g.data_start(id);
        let mut copied = 0;
        let mut clean = true;
        while copied < tail {
            let len = (tail - copied).min(CHUNK_BYTES);
            let Some(bytes) = read_clean(primary, start + copied, len) else {
                clean = false;
                break;
            };
            write_healing(set, member, target, start + copied, &bytes)?;
            target.flush(start + copied, len)?;
            copied += len;
        }
        if !clean {
            continue;
        }
        // PERSIST: committed bytes durable (RECONCILE_DATA) before the lines that commit them.
        target.fence(RECONCILE_DATA)?;
        write_healing(set, member, target, at, &lines)?;
        target.flush(at, SEGMENT_DATA_OFFSET)?;
        target.fence(RECONCILE_LINES)?;
        reconciled += 1;
    }
    Ok(reconciled)
}

#[cfg(test)]
mod tests {
    use mcstore_pmem::{Domain, ErrorRegister, Medium, read_u64};

    use crate::format::{SUPERBLOCK_BYTES, SUPERBLOCK_SLOT_OFFSETS, SegmentId, Superblock};
    use crate::replica::set::read_superblock;
    use crate::replica::set::tests::{dyns, fill, given, params, read, sims};
    use crate::replica::{OpenSetOptions, ReplicaSet};
    use crate::scan::ScanOptions;

    #[test]
    fn a_tail_word_in_a_free_segment_of_the_primary_is_healed_not_copied() {
        let sims = sims(2);
        let set = ReplicaSet::create(dyns(&sims), &params(), OpenSetOptions::default()).unwrap();
        fill(&set, 3);
        let g = set.geometry();
        let free = SegmentId(2);
        assert!(g.segment_count(sims[0].len()) > 2);
        drop(set);
        // Lost bytes over a free segment's tail line of the primary (they read clean: poison
        // cleared without its data, or a stray store).
        let garbage = 0xa5a5_a5a5_a5a5_a5a5;
        sims[0].store_u64(g.tail_offset(free), garbage).unwrap();
        let word = |medium: &dyn Medium| {
            let mut register = ErrorRegister::deferred();
            let word = read_u64(medium, g.tail_offset(free), &mut register, Domain::Engine);
            assert!(register.is_clean());
            word.unwrap()
        };

        let (set, report) = ReplicaSet::open(given(&sims), OpenSetOptions::default()).unwrap();
        assert!(report.segments_reconciled.is_empty(), "{:?}", report.segments_reconciled);
        assert_eq!(word(sims[1].as_ref()), 0, "the garbage reached the replica");
        let rec = set.recover(ScanOptions::default()).unwrap();
        assert!(rec.damage.is_empty(), "{:?}", rec.damage);
        assert_eq!((rec.report.damage_found, rec.report.damage_repaired), (1, 1));
        assert_eq!(word(sims[0].as_ref()), 0, "the primary was not healed");
    }

    #[test]
    fn a_lost_newest_superblock_slot_of_the_primary_is_healed_from_the_replica() {
        let sims = sims(2);
        let set = ReplicaSet::create(dyns(&sims), &params(), OpenSetOptions::default()).unwrap();
        // Two segments opened: the newest superblock records `highest_segment_seq` 2, the
        // older slot 1.
        fill(&set, 3);
        drop(set);
        let newest = read_superblock(sims[0].as_ref()).unwrap();
        let slot = newest.slot();
        let at = SUPERBLOCK_SLOT_OFFSETS[slot];
        // Lost bytes over the newest slot's first line (they read clean: poison cleared
        // without its data).
        sims[0].write(at, &[0xa5; 64]).unwrap();
        assert!(read_superblock(sims[0].as_ref()).unwrap().generation < newest.generation);

        let (set, _) = ReplicaSet::open(given(&sims), OpenSetOptions::default()).unwrap();
        let (bytes, clean) = read(sims[0].as_ref(), at, SUPERBLOCK_BYTES);
        assert!(clean);
        let healed = Superblock::decode(&bytes, slot).unwrap();
        assert_eq!((healed.generation, healed.member_index), (newest.generation, 0));
        assert_eq!(healed.pool_uuid, newest.pool_uuid, "re-encoded for the primary");
        let rec = set.recover(ScanOptions::default()).unwrap();
        assert!(rec.damage.is_empty(), "{:?}", rec.damage);
        assert_eq!(rec.superblock.highest_segment_seq, 2);
        assert_eq!(rec.entries.len(), 5);
    }
}
