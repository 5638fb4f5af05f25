//! Writes that belong to the format: pool creation, superblock updates, segment
//! (re)initialisation, record persistence and tail publication. The engine calls these; each
//! fence names its site from `crate::sites`.
//!
//! INVARIANT: a segment's tail word is 0 and durable before its header changes; a segment
//! sequence is durable in the superblock (`highest_segment_seq`) before any header carries it;
//! a superblock update writes the slot that does not hold the newest generation.

use mcstore_pmem::{FenceSite, Medium};

use crate::error::Result;
use crate::format::{
    FORMAT_VERSION, Features, Geometry, Lsn, MAGIC, MemberState, SEGMENT_DATA_OFFSET,
    SEGMENT_HEADER_BYTES, SUPERBLOCK_BYTES, SUPERBLOCK_SLOT_OFFSETS, SegmentHeader, SegmentId,
    SegmentState, Superblock, TailWords, Uuid,
};
use crate::limits::{SEGMENT_BYTES_DEFAULT, SUPERBLOCK_AREA_BYTES};
use crate::sites;

/// What a new pool (or replica member) is created with.
#[derive(Clone, Debug)]
pub struct CreateParams {
    /// Segment size (a power of two, 64 KiB ..= 1 GiB).
    pub segment_size_bytes: u64,
    /// This member's uuid.
    pub pool_uuid: Uuid,
    /// The replica set's uuid (the same for every member of a set).
    pub set_uuid: Uuid,
    /// This member's index (0 = primary).
    pub member_index: u32,
    /// This member's initial state.
    pub member_state: MemberState,
    /// What creates the pool, stored (≤ 64 bytes) for `info`.
    pub created_by: String,
    /// The creating process.
    pub opener_pid: u32,
}

impl Default for CreateParams {
    fn default() -> Self {
        Self {
            segment_size_bytes: SEGMENT_BYTES_DEFAULT,
            pool_uuid: Uuid::random(),
            set_uuid: Uuid::random(),
            member_index: 0,
            member_state: MemberState::InSync,
            created_by: concat!("mcstore ", env!("CARGO_PKG_VERSION")).to_owned(),
            opener_pid: std::process::id(),
        }
    }
}

/// Format `medium` as an empty pool: zero every segment's header and tail lines (fence
/// `POOL_CREATE_CLEAR`), then write generation 0 to slot A, its magic last
/// (`write_first_slot`), and 1 to slot B (each fenced `SUPERBLOCK_WRITE`). No segment is
/// initialised. The returned superblock (generation 1) says `clean_shutdown` (there is nothing
/// to recover) and `highest_segment_seq` 0.
pub fn create(medium: &dyn Medium, params: &CreateParams) -> Result<Superblock> {
    let geometry = Geometry::for_pool(medium.len(), params.segment_size_bytes)?;
    let count = geometry.segment_count(medium.len());
    // PERSIST: stale headers of an earlier pool in this file must be gone before a superblock
    // makes the file a pool, or they would be scanned as foreign segments.
    clear_segment_lines(
        medium,
        &geometry,
        SegmentId(0),
        SegmentId(count),
        sites::POOL_CREATE_CLEAR,
    )?;
    let mut sb = Superblock {
        format_version: FORMAT_VERSION,
        generation: 0,
        features: Features::default(),
        pool_uuid: params.pool_uuid,
        set_uuid: params.set_uuid,
        member_index: params.member_index,
        member_state: params.member_state,
        geometry,
        highest_segment_seq: 0,
        next_lsn_floor: Lsn(1),
        clean_shutdown: true,
        opener_pid: params.opener_pid,
        created_unix_secs: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        created_by: params.created_by.clone(),
        segment_count: count,
        unsafe_shutdown_count: None,
    };
    write_first_slot(medium, &sb)?;
    write_superblock(medium, &mut sb)?;
    Ok(sb)
}

/// Write the new pool's first superblock (slot A) with its magic last: the rest of the slot,
/// flush, fence `SUPERBLOCK_WRITE`; then the magic as one failure-atomic word, flush, fence
/// `SUPERBLOCK_WRITE`. So a crash during creation leaves either no magic in any slot (a pool
/// never created, [`never_created`]) or a whole slot A, never a torn first superblock.
fn write_first_slot(medium: &dyn Medium, sb: &Superblock) -> Result<()> {
    let offset = SUPERBLOCK_SLOT_OFFSETS[sb.slot()];
    let bytes = sb.encode();
    let (magic, rest) = bytes.split_at(MAGIC.len());
    // PERSIST: the body is durable at the first SUPERBLOCK_WRITE, before the magic that makes
    // the slot a superblock is stored.
    medium.write(offset + MAGIC.len() as u64, rest)?;
    medium.flush(offset + MAGIC.len() as u64, rest.len() as u64)?;
    medium.fence(sites::SUPERBLOCK_WRITE)?;
    let mut word = [0u8; 8];
    word.copy_from_slice(magic);
    medium.store_u64(offset, u64::from_le_bytes(word))?;
    medium.flush(offset, 8)?;
    medium.fence(sites::SUPERBLOCK_WRITE)?;
    Ok(())
}

/// Whether `area` (the first [`SUPERBLOCK_AREA_BYTES`] of a medium) is what a creation that
/// never finished leaves: no slot carries the magic, and every byte is zero but the body of
/// slot A. Such a medium holds nothing and may be formatted again; any other medium without
/// a superblock is not a pool (or a damaged one) and must be left alone.
pub fn never_created(area: &[u8]) -> bool {
    let slot_a = SUPERBLOCK_SLOT_OFFSETS[0] as usize;
    let body = slot_a + MAGIC.len()..slot_a + SUPERBLOCK_BYTES;
    area.len() == SUPERBLOCK_AREA_BYTES as usize
        && area.iter().enumerate().all(|(i, &byte)| byte == 0 || body.contains(&i))
}

/// Write `sb` with the next generation into the other slot, flush, fence `SUPERBLOCK_WRITE`.
/// On failure the generation is restored, so a retry writes the same (possibly torn) slot
/// again and never the one holding the newest valid copy.
pub fn write_superblock(medium: &dyn Medium, sb: &mut Superblock) -> Result<()> {
    sb.generation += 1;
    sb.format_version = FORMAT_VERSION;
    let result = write_slot(medium, sb);
    if result.is_err() {
        sb.generation -= 1;
    }
    result
}

fn write_slot(medium: &dyn Medium, sb: &Superblock) -> Result<()> {
    let offset = SUPERBLOCK_SLOT_OFFSETS[sb.slot()];
    let bytes = sb.encode();
    // PERSIST: the other slot keeps the previous generation until this one is fenced.
    medium.write(offset, &bytes)?;
    medium.flush(offset, bytes.len() as u64)?;
    medium.fence(sites::SUPERBLOCK_WRITE)?;
    Ok(())
}

/// Issue the next segment sequence and initialise segment `id` with it: the superblock records
/// the sequence first (`SUPERBLOCK_WRITE`), then [`init_segment`]. Returns the sequence.
pub fn open_segment(medium: &dyn Medium, sb: &mut Superblock, id: SegmentId) -> Result<u64> {
    let seq = sb.highest_segment_seq + 1;
    sb.highest_segment_seq = seq;
    if let Err(e) = write_superblock(medium, sb) {
        sb.highest_segment_seq = seq - 1;
        return Err(e);
    }
    let geometry = sb.geometry;
    init_segment(medium, &geometry, id, seq, &sb.set_uuid)?;
    Ok(seq)
}

/// (Re)initialise segment `id` as an open segment of sequence `seq` (≥ 1, already recorded in
/// the superblock's `highest_segment_seq`). See [`init_segment_as`] for the order.
pub fn init_segment(
    medium: &dyn Medium,
    g: &Geometry,
    id: SegmentId,
    seq: u64,
    set_uuid: &Uuid,
) -> Result<()> {
    init_segment_as(
        medium,
        g,
        &SegmentHeader { set_uuid: *set_uuid, id, seq, state: SegmentState::Open },
    )
}

/// (Re)initialise a segment with `header`. Defined order: (1) tail word := 0, flush, fence
/// `SEGMENT_TAIL_CLEAR`; (2) header, flush, fence `SEGMENT_HEADER`. A crash between them leaves
/// the old header over an empty tail; a crash inside (2) a torn header over an empty tail, which
/// recovery reads as a free segment. Records of the old sequence never validate under the new
/// one (their checksums bind the sequence).
pub fn init_segment_as(medium: &dyn Medium, g: &Geometry, header: &SegmentHeader) -> Result<()> {
    assert!(header.seq >= 1, "segment sequence 0 is reserved");
    assert!(
        header.id.0 < g.segment_count(medium.len()),
        "segment {} beyond the pool's {} segments",
        header.id,
        g.segment_count(medium.len())
    );
    let tail = g.tail_offset(header.id);
    // PERSIST: step 1, ordered by SEGMENT_TAIL_CLEAR before the header store below.
    medium.store_u64(tail, 0)?;
    medium.flush(tail, 8)?;
    medium.fence(sites::SEGMENT_TAIL_CLEAR)?;
    let at = g.segment_offset(header.id);
    let bytes = header.encode();
    // PERSIST: step 2, durable at SEGMENT_HEADER; only then may records be appended.
    medium.write(at, &bytes)?;
    medium.flush(at, bytes.len() as u64)?;
    medium.fence(sites::SEGMENT_HEADER)?;
    Ok(())
}

/// Flush what recovery adopted from the visible bytes of segments `in_use`: each one's header
/// and tail word. No fence: the caller's next fence (at open, the in-use superblock write,
/// `SUPERBLOCK_WRITE`) makes them durable before anything is appended.
///
/// Why: after a flush failed in this process, the medium may show stores that were never
/// flushed (a new segment's header, a tail word). A reopen in the same process reads them as
/// committed; records persisted over a header that never was would be damage once the process
/// ends (a tail word in a segment with no header). A crash never shows them, so only the
/// failure path needs this; lines already durable make it a no-op.
pub fn flush_adopted(
    medium: &dyn Medium,
    g: &Geometry,
    in_use: impl IntoIterator<Item = SegmentId>,
) -> Result<()> {
    for id in in_use {
        // PERSIST: ordered before any append by the caller's next fence.
        medium.flush(g.segment_offset(id), SEGMENT_HEADER_BYTES)?;
        medium.flush(g.tail_offset(id), 8)?;
    }
    Ok(())
}

/// Store encoded records at pool offset `offset`, flush them, fence `RECORD_PERSIST`. They are
/// not committed until [`publish_tail`] covers them.
pub fn persist_records(medium: &dyn Medium, offset: u64, bytes: &[u8]) -> Result<()> {
    // PERSIST: records durable (RECORD_PERSIST) before the tail store that commits them.
    medium.write(offset, bytes)?;
    medium.flush(offset, bytes.len() as u64)?;
    medium.fence(sites::RECORD_PERSIST)?;
    Ok(())
}

/// Flush `len` bytes at `offset` that writers already stored (group commit: each writer
/// copies its own records; the leader flushes the whole group) and fence `RECORD_PERSIST`.
pub fn flush_records(medium: &dyn Medium, offset: u64, len: u64) -> Result<()> {
    // PERSIST: the group's records durable (RECORD_PERSIST) before the tail that commits them.
    medium.flush(offset, len)?;
    medium.fence(sites::RECORD_PERSIST)?;
    Ok(())
}

/// Publish `tail` (bytes used in the data area, 8-aligned, ≤ capacity) as segment `id`'s
/// committed tail: one `store_u64` of the checked word (`words`: the segment's sequence and
/// set), flush, fence `TAIL_PUBLISH`.
pub fn publish_tail(
    medium: &dyn Medium,
    g: &Geometry,
    id: SegmentId,
    words: &TailWords,
    tail: u64,
) -> Result<()> {
    assert!(tail <= g.data_capacity(), "tail {tail} beyond capacity {}", g.data_capacity());
    let at = g.tail_offset(id);
    // PERSIST: the single failure-atomic store that commits every record below `tail`.
    medium.store_u64(at, words.encode(tail))?;
    medium.flush(at, 8)?;
    medium.fence(sites::TAIL_PUBLISH)?;
    Ok(())
}

/// Reclaim segment `id` for reuse: its tail word := 0, flush, fence `SEGMENT_RECLAIM`. Its
/// header stays; recovery reads it as an empty segment. Reuse goes through [`open_segment`].
pub fn reclaim_segment(medium: &dyn Medium, g: &Geometry, id: SegmentId) -> Result<()> {
    let at = g.tail_offset(id);
    // PERSIST: the segment's records stop being committed at SEGMENT_RECLAIM.
    medium.store_u64(at, 0)?;
    medium.flush(at, 8)?;
    medium.fence(sites::SEGMENT_RECLAIM)?;
    Ok(())
}

/// Grow the pool's recorded size: zero the header and tail lines of segments `[first, end)`
/// (fence `GROW_SEGMENTS`), then record `end` as the segment count in the superblock (fence
/// `SUPERBLOCK_WRITE`). A crash between leaves zeroed segments the superblock does not count:
/// recovery reports them free and does not read them; the next writable open records them.
pub fn record_growth(
    medium: &dyn Medium,
    sb: &mut Superblock,
    first: SegmentId,
    end: SegmentId,
) -> Result<()> {
    let geometry = sb.geometry;
    clear_segment_lines(medium, &geometry, first, end, sites::GROW_SEGMENTS)?;
    let before = sb.segment_count;
    sb.segment_count = sb.segment_count.max(end.0);
    if let Err(e) = write_superblock(medium, sb) {
        sb.segment_count = before;
        return Err(e);
    }
    Ok(())
}

/// Zero the header and tail lines of segments `[first, end)`, flush, fence `site` (used by
/// creation with `POOL_CREATE_CLEAR` and by growth with `GROW_SEGMENTS`).
pub fn clear_segment_lines(
    medium: &dyn Medium,
    g: &Geometry,
    first: SegmentId,
    end: SegmentId,
    site: FenceSite,
) -> Result<()> {
    const ZERO: [u8; SEGMENT_DATA_OFFSET as usize] = [0; SEGMENT_DATA_OFFSET as usize];
    for id in first.0..end.0 {
        let at = g.segment_offset(SegmentId(id));
        medium.write(at, &ZERO)?;
        medium.flush(at, SEGMENT_DATA_OFFSET)?;
    }
    medium.fence(site)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use mcstore_pmem::{CrashMode, Medium, SimMedium};

    use super::*;
    use crate::format::decode_tail;
    use crate::scan::{ScanOptions, SegmentStatus, recover};
    use crate::testing::{Appender, new_pool};

    #[test]
    fn create_writes_both_slots_and_clears_old_segments() {
        let medium = SimMedium::new(4 << 20);
        // An earlier pool's header left in segment 1 must not survive re-creation.
        medium.write((2 << 20) + 4, &[0xaa; 40]).unwrap();
        let params = CreateParams::default();
        let sb = create(&medium, &params).unwrap();
        assert_eq!(sb.generation, 1);
        assert_eq!(sb.geometry.segments_start, 2 << 20);
        assert!(medium.is_persisted(0, 8192));
        let image = medium.persistent_image();
        assert_eq!(Superblock::decode(&image[..256], 0).unwrap().generation, 0);
        assert_eq!(Superblock::decode(&image[4096..4352], 1).unwrap(), sb);
        assert!(image[2 << 20..(2 << 20) + 128].iter().all(|&b| b == 0));
    }

    #[test]
    fn a_crash_at_any_fence_of_create_leaves_a_whole_pool_or_one_never_created() {
        let area = SUPERBLOCK_AREA_BYTES as usize;
        let mut fence = 1;
        loop {
            let medium = SimMedium::new(4 << 20);
            medium.crash_at_fence(Some(fence));
            let finished = create(&medium, &CreateParams::default()).is_ok();
            for mode in [CrashMode::PerLinePrefix, CrashMode::AnySubset] {
                for image in medium.crash_images(mode, 64, fence) {
                    let slots = [0, 1].map(|slot| {
                        let at = SUPERBLOCK_SLOT_OFFSETS[slot] as usize;
                        Superblock::decode(&image[at..at + SUPERBLOCK_BYTES], slot).is_ok()
                    });
                    // Either some slot decodes (slot A is never torn), or nothing was created.
                    assert!(
                        slots.iter().any(|&ok| ok) || never_created(&image[..area]),
                        "fence {fence}: a torn pool"
                    );
                }
            }
            if finished {
                break;
            }
            fence += 1;
        }
        assert!(fence >= 4, "creation has {fence} fences");
        let mut foreign = vec![0u8; area];
        foreign[SUPERBLOCK_SLOT_OFFSETS[1] as usize] = 1;
        assert!(!never_created(&foreign));
        assert!(never_created(&vec![0u8; area]));
    }

    #[test]
    fn write_superblock_alternates_slots() {
        let (medium, mut sb) = new_pool(2);
        for expected in 2..6 {
            sb.opener_pid = expected as u32;
            write_superblock(&medium, &mut sb).unwrap();
            assert_eq!(sb.generation, expected);
            let image = medium.persistent_image();
            let off = SUPERBLOCK_SLOT_OFFSETS[sb.slot()] as usize;
            assert_eq!(Superblock::decode(&image[off..off + 256], sb.slot()).unwrap(), sb);
            let other = SUPERBLOCK_SLOT_OFFSETS[1 - sb.slot()] as usize;
            assert_eq!(
                Superblock::decode(&image[other..other + 256], 1 - sb.slot()).unwrap().generation,
                expected - 1
            );
        }
    }

    #[test]
    fn failed_superblock_write_keeps_the_generation() {
        let (medium, mut sb) = new_pool(2);
        medium.fail_nth(mcstore_pmem::sim::SimOp::Write, 1, false);
        assert!(write_superblock(&medium, &mut sb).is_err());
        assert_eq!(sb.generation, 1);
        medium.clear_failures();
        write_superblock(&medium, &mut sb).unwrap();
        assert_eq!(sb.generation, 2);
    }

    #[test]
    fn init_and_publish_follow_the_defined_order() {
        let (medium, mut sb) = new_pool(2);
        let g = sb.geometry;
        medium.reset_fences();
        let mut seg = Appender::open(&medium, &mut sb, SegmentId(1));
        assert_eq!(
            medium.fence_log(),
            vec![sites::SUPERBLOCK_WRITE, sites::SEGMENT_TAIL_CLEAR, sites::SEGMENT_HEADER]
        );
        assert_eq!(sb.highest_segment_seq, seg.seq);
        medium.reset_fences();
        seg.put(&medium, &sb, 1, "k", "v");
        assert_eq!(medium.fence_log(), vec![sites::RECORD_PERSIST, sites::TAIL_PUBLISH]);
        let mut reg = mcstore_pmem::ErrorRegister::deferred();
        let word = mcstore_pmem::read_u64(
            &medium,
            g.tail_offset(SegmentId(1)),
            &mut reg,
            mcstore_pmem::Domain::Engine,
        )
        .unwrap();
        assert_eq!(decode_tail(word, seg.seq, &sb.set_uuid), Ok(seg.tail));
    }

    /// Crash at every fence of re-initialising a used segment, in both crash modes: recovery
    /// never reports damage, and the old records are either all there or the segment is empty.
    #[test]
    fn crash_during_reinit_is_never_damage() {
        let (medium, mut sb) = new_pool(2);
        let mut seg = Appender::open(&medium, &mut sb, SegmentId(0));
        for i in 0..5 {
            seg.put(&medium, &sb, i + 1, &format!("key{i}"), "a value of some length");
        }
        let base = medium.persistent_image();
        for (with_reclaim, fences) in [(true, 4), (false, 3)] {
            for crash_at in 1..=fences {
                for mode in [CrashMode::PerLinePrefix, CrashMode::AnySubset] {
                    let run = SimMedium::from_image(base.clone(), mcstore_pmem::MemberId(0));
                    let mut sb = sb.clone();
                    run.crash_at_fence(Some(crash_at));
                    let reclaimed = if with_reclaim {
                        reclaim_segment(&run, &sb.geometry, SegmentId(0))
                    } else {
                        Ok(())
                    };
                    let _ = reclaimed.and_then(|()| open_segment(&run, &mut sb, SegmentId(0)));
                    assert!(run.is_crashed());
                    for image in run.crash_images(mode, 512, crash_at) {
                        let rec = recover(
                            &SimMedium::from_image(image, mcstore_pmem::MemberId(0)),
                            &ScanOptions::default(),
                        )
                        .unwrap();
                        assert!(
                            rec.damage.is_empty(),
                            "crash at fence {crash_at} {mode:?}: {:?}",
                            rec.damage
                        );
                        assert!(rec.entries.len() == 5 || rec.entries.is_empty());
                        assert_ne!(rec.segments[0].status, SegmentStatus::Damaged);
                    }
                }
            }
        }
    }

    /// Crash at each fence of an append (records, then tail), both crash modes: the batch is
    /// whole or absent, earlier batches are intact, and nothing is damage.
    #[test]
    fn crash_during_append_is_whole_or_absent() {
        let (medium, mut sb) = new_pool(2);
        let mut seg = Appender::open(&medium, &mut sb, SegmentId(1));
        seg.put(&medium, &sb, 1, "first", "one");
        let base = medium.persistent_image();
        for crash_at in 1..=2 {
            for mode in [CrashMode::PerLinePrefix, CrashMode::AnySubset] {
                let run = SimMedium::from_image(base.clone(), mcstore_pmem::MemberId(0));
                run.crash_at_fence(Some(crash_at));
                let mut seg = Appender { tail: seg.tail, ..seg };
                let batch: [(crate::format::RecordKind, u64, &[u8], &[u8]); 3] = [
                    (crate::format::RecordKind::Put, 2, b"second", &[2; 70]),
                    (crate::format::RecordKind::Delete, 3, b"first", b""),
                    (crate::format::RecordKind::Put, 4, b"third", &[3; 200]),
                ];
                let result = seg.try_append(&run, &sb, &batch);
                assert!(result.is_err() && run.is_crashed());
                let mut outcomes = std::collections::BTreeSet::new();
                for image in run.crash_images(mode, 1024, crash_at) {
                    let rec = recover(
                        &SimMedium::from_image(image, mcstore_pmem::MemberId(0)),
                        &ScanOptions::default(),
                    )
                    .unwrap();
                    assert!(
                        rec.damage.is_empty(),
                        "crash at fence {crash_at} {mode:?}: {:?}",
                        rec.damage
                    );
                    let keys: Vec<(Vec<u8>, u64)> =
                        rec.entries.iter().map(|e| (e.key.to_vec(), e.lsn.0)).collect();
                    assert!(
                        keys == vec![(b"first".to_vec(), 1)]
                            || keys
                                == vec![
                                    (b"first".to_vec(), 3),
                                    (b"second".to_vec(), 2),
                                    (b"third".to_vec(), 4)
                                ],
                        "partial batch: {keys:?}"
                    );
                    outcomes.insert(keys.len());
                }
                if crash_at == 2 {
                    assert_eq!(outcomes.len(), 2, "the tail store may or may not persist");
                }
            }
        }
    }
}
