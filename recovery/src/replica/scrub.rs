//! Scrubbing a replica set: read every live byte of every member through the machine-check-safe
//! copy (mask `Immediate`: stop at each poisoned unit, heal it, go on after it), heal what is
//! found from another member, quarantine what no member can supply. Also: known bad blocks at
//! open, and asynchronous (`BUS_MCEERR_AO`) notices drained from the ring and healed.
//!
//! INVARIANT: live bytes are the superblock slots, the set-state table slots, every segment's
//! header and tail lines, and each segment's committed bytes (tail from the first member whose
//! lines read clean and verify). Stale members are neither scrubbed nor used as sources.

use std::time::{Duration, Instant};

use mcstore_pmem::poolset::{HealOutcome, MemberState};
use mcstore_pmem::{Domain, ErrorRegister, Mask, Medium, MemberId, read_u64};

use super::set::{ReplicaSet, Result};
use super::table::{Quarantined, TABLE_BYTES, TABLE_SLOT_OFFSETS};
use crate::format::{
    SEGMENT_DATA_OFFSET, SUPERBLOCK_BYTES, SUPERBLOCK_SLOT_OFFSETS, SegmentHeader, SegmentId,
};

/// Bytes read per scrub read.
const CHUNK_BYTES: u64 = 256 << 10;

/// Progress of a scrub, after each live range of each member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScrubProgress {
    /// The member being scrubbed.
    pub member: MemberId,
    /// Live bytes of all members read so far.
    pub bytes_done: u64,
    /// Live bytes of all members to read.
    pub bytes_total: u64,
}

/// One poisoned unit a scrub met, and what became of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScrubFinding {
    /// Where.
    pub range: Quarantined,
    /// Healed from this member, or `None` (quarantined).
    pub healed_from: Option<MemberId>,
}

/// What a scrub found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScrubReport {
    /// Members read.
    pub members: u32,
    /// Live bytes read over all members.
    pub bytes_scanned: u64,
    /// Every poisoned unit met.
    pub findings: Vec<ScrubFinding>,
    /// Ranges that read clean but hold a record that does not verify (a store without replicas
    /// checks every committed record; nothing can heal them there): from the bad record to the
    /// segment's committed tail.
    pub corrupt: Vec<Quarantined>,
    /// Asynchronous notices drained that belong to no member of this set.
    pub unmatched_notices: u64,
    /// Wall-clock time.
    pub duration: Duration,
}

impl ScrubReport {
    /// Units healed from another member.
    pub fn repaired(&self) -> usize {
        self.findings.iter().filter(|f| f.healed_from.is_some()).count()
    }

    /// Units no member could supply (quarantined).
    pub fn unrepaired(&self) -> Vec<Quarantined> {
        self.findings.iter().filter(|f| f.healed_from.is_none()).map(|f| f.range).collect()
    }
}

impl ReplicaSet {
    /// The live ranges `(offset, len)` of the set (the same on every in-sync member).
    pub fn live_ranges(&self) -> Vec<(u64, u64)> {
        let g = self.geometry;
        let mut ranges: Vec<(u64, u64)> =
            SUPERBLOCK_SLOT_OFFSETS.iter().map(|&o| (o, SUPERBLOCK_BYTES as u64)).collect();
        ranges.extend(TABLE_SLOT_OFFSETS.iter().map(|&o| (o, TABLE_BYTES as u64)));
        let len = self.poolset.len();
        for id in (0..g.segment_count(len)).map(SegmentId) {
            ranges.push((g.segment_offset(id), SEGMENT_DATA_OFFSET));
            if let Some(tail) = self.committed_tail(id).filter(|&t| t > 0) {
                ranges.push((g.data_start(id), tail));
            }
        }
        ranges
    }

    /// Segment `id`'s committed tail, from the first in-sync member that vouches for it.
    fn committed_tail(&self, id: SegmentId) -> Option<u64> {
        let g = self.geometry;
        self.in_sync().into_iter().find_map(|member| {
            let medium = self.poolset.medium(member);
            let mut line = [0u8; 64];
            let mut register = ErrorRegister::deferred();
            medium.read(g.segment_offset(id), &mut line, &mut register, Domain::Engine).ok()?;
            let header = SegmentHeader::decode(&line).ok()??;
            let word =
                read_u64(medium.as_ref(), g.tail_offset(id), &mut register, Domain::Engine).ok()?;
            if !register.is_clean() || header.set_uuid != self.set_uuid {
                return None;
            }
            g.committed_tail(word, header.seq, &self.set_uuid).ok()
        })
    }

    fn in_sync(&self) -> Vec<MemberId> {
        self.poolset
            .members()
            .iter()
            .filter(|m| m.state == MemberState::InSync)
            .map(|m| m.id)
            .collect()
    }

    /// Heal `range` of its member from another member; `Some(source)` when healed.
    fn heal_range(&self, range: Quarantined) -> Option<MemberId> {
        match self.poolset.heal(range.member, range.offset, range.len, &|_| true) {
            Ok(HealOutcome::Healed { from, .. }) => Some(from),
            _ => None,
        }
    }

    /// Read every live byte of every in-sync member, heal each poisoned unit from another
    /// member, and quarantine (persisted) what no member can supply. `progress` is called after
    /// each read (at most 256 KiB).
    pub fn scrub(&self, progress: &dyn Fn(ScrubProgress)) -> Result<ScrubReport> {
        self.scrub_until(progress, &|| false)
    }

    /// [`Self::scrub`], stopping early (with what was found so far) once `stop` says so.
    pub(super) fn scrub_until(
        &self,
        progress: &dyn Fn(ScrubProgress),
        stop: &dyn Fn() -> bool,
    ) -> Result<ScrubReport> {
        let started = Instant::now();
        let ranges = self.live_ranges();
        let members = self.in_sync();
        let per_member: u64 = ranges.iter().map(|r| r.1).sum();
        let mut report = ScrubReport { members: members.len() as u32, ..ScrubReport::default() };
        let bytes_total = per_member * members.len() as u64;
        'members: for &member in &members {
            let medium = self.poolset.medium(member).clone();
            for &(offset, len) in &ranges {
                if stop() {
                    break 'members;
                }
                let tick = |report: &ScrubReport| {
                    progress(ScrubProgress {
                        member,
                        bytes_done: report.bytes_scanned,
                        bytes_total,
                    })
                };
                self.scrub_range(medium.as_ref(), (member, offset, len), &mut report, &tick, stop)?;
            }
        }
        self.finish(&mut report, started)?;
        Ok(report)
    }

    fn scrub_range(
        &self,
        medium: &dyn Medium,
        (member, offset, len): (MemberId, u64, u64),
        report: &mut ScrubReport,
        tick: &dyn Fn(&ScrubReport),
        stop: &dyn Fn() -> bool,
    ) -> Result<()> {
        let end = (offset + len).min(medium.len());
        let mut pos = offset;
        let mut buf = vec![0u8; CHUNK_BYTES as usize];
        while pos < end && !stop() {
            let chunk_end = (pos + CHUNK_BYTES).min(end);
            let dst = &mut buf[..(chunk_end - pos) as usize];
            let mut register = ErrorRegister::new(Mask::Immediate);
            medium.read(pos, dst, &mut register, Domain::Engine)?;
            match register.first().copied() {
                None => {
                    report.bytes_scanned += chunk_end - pos;
                    pos = chunk_end;
                }
                Some(fault) => {
                    let range = Quarantined { member, offset: fault.offset, len: fault.len.max(1) };
                    let healed_from = self.heal_range(range);
                    report.findings.push(ScrubFinding { range, healed_from });
                    report.bytes_scanned += fault.end().min(end).saturating_sub(pos);
                    pos = fault.end().max(pos + 1);
                }
            }
            tick(report);
        }
        Ok(())
    }

    /// Quarantine what was not healed, persist it, and stamp the duration.
    fn finish(&self, report: &mut ScrubReport, started: Instant) -> Result<()> {
        let lost = report.unrepaired();
        if !lost.is_empty() {
            self.quarantine(&lost)?;
        }
        report.duration = started.elapsed();
        Ok(())
    }

    /// Drain the asynchronous poison notices (`BUS_MCEERR_AO`), heal each unit that lies in a
    /// member of this set, quarantine what cannot be healed. Call from the thread that opted in
    /// with `mcstore_pmem::mcsafe::enable_early_notices`.
    pub fn scrub_notices(&self) -> Result<ScrubReport> {
        let started = Instant::now();
        let notices = self.poolset.drain_notices();
        let mut report = ScrubReport {
            unmatched_notices: notices.unmatched.len() as u64,
            ..ScrubReport::default()
        };
        for notice in notices.ranges {
            if self.poolset.state(notice.member) == MemberState::Stale {
                continue;
            }
            let range =
                Quarantined { member: notice.member, offset: notice.offset, len: notice.len };
            let healed_from = self.heal_range(range);
            report.bytes_scanned += notice.len;
            report.findings.push(ScrubFinding { range, healed_from });
        }
        self.finish(&mut report, started)?;
        Ok(report)
    }

    /// Repair every member's known bad blocks (its bad-block list at open) from another member;
    /// quarantine (persisted) those no member can supply. Returns `(repaired, quarantined)`.
    pub(super) fn repair_bad_blocks(&self) -> Result<(Vec<Quarantined>, Vec<Quarantined>)> {
        let (mut repaired, mut lost) = (Vec::new(), Vec::new());
        for member in self.in_sync() {
            let medium = self.poolset.medium(member);
            // Ranges beyond the member's end apply when it grows; nothing lives there yet.
            for (offset, len) in medium.bad_blocks().into_iter().filter(|r| r.0 < medium.len()) {
                let len = len.min(medium.len() - offset);
                let range = Quarantined { member, offset, len };
                match self.heal_range(range) {
                    Some(_) => repaired.push(range),
                    None => lost.push(range),
                }
            }
        }
        if !lost.is_empty() {
            self.quarantine(&lost)?;
        }
        Ok((repaired, lost))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use mcstore_pmem::{BadBlocks, MapOptions, MappedMedium, ModeRequest};
    use parking_lot::Mutex;

    use super::*;
    use crate::replica::set::tests::{LEN, dyns, fill, given, params, read, sims};

    /// Held by tests that drain the process's notice ring (or run a scrubber that does).
    pub(crate) static RING_LOCK: Mutex<()> = Mutex::new(());
    use crate::replica::{OpenSetOptions, ReplicaSet};

    #[test]
    fn scrub_finds_and_repairs_poison_in_every_member() {
        let sims = sims(3);
        let set = ReplicaSet::create(dyns(&sims), &params(), OpenSetOptions::default()).unwrap();
        let offsets = fill(&set, 6);
        let image = sims[0].visible_image();
        sims[0].inject_poison(offsets[1], 1).unwrap();
        sims[1].inject_poison(offsets[4], 100).unwrap();
        sims[2].inject_poison(0, 1).unwrap(); // superblock slot A of a replica
        sims[2].inject_poison(TABLE_SLOT_OFFSETS[1] + 64, 1).unwrap();
        let seen = Mutex::new(Vec::new());
        let report = set.scrub(&|p| seen.lock().push(p)).unwrap();
        assert_eq!(report.members, 3);
        let mut found: Vec<(MemberId, bool)> =
            report.findings.iter().map(|f| (f.range.member, f.healed_from.is_some())).collect();
        found.sort();
        assert_eq!(found.len(), report.repaired());
        assert!(found.len() >= 4, "{found:?}");
        for member in [0, 1, 2] {
            assert!(found.iter().any(|f| f.0 == MemberId(member)), "member {member}: {found:?}");
        }
        assert!(report.unrepaired().is_empty());
        for sim in &sims {
            assert!(sim.poisoned_ranges().is_empty());
        }
        // Data pages hold the original bytes again; the replica's superblock is its own.
        assert_eq!(sims[0].visible_image()[65536..], image[65536..]);
        assert_eq!(sims[1].visible_image()[65536..], image[65536..]);
        let slot_a = read(sims[2].as_ref(), 0, SUPERBLOCK_BYTES).0;
        let sb = crate::format::Superblock::decode(&slot_a, 0).unwrap();
        assert_eq!(sb.member_index, 2);
        let seen = seen.lock();
        let last = seen.last().unwrap();
        assert_eq!(last.bytes_done, last.bytes_total);
        assert_eq!(report.bytes_scanned, last.bytes_total);
    }

    #[test]
    fn what_no_member_holds_is_quarantined_and_persisted() {
        let sims = sims(2);
        let set = ReplicaSet::create(dyns(&sims), &params(), OpenSetOptions::default()).unwrap();
        let offsets = fill(&set, 3);
        for sim in &sims {
            sim.inject_poison(offsets[2], 1).unwrap();
        }
        let report = set.scrub(&|_| {}).unwrap();
        let lost = report.unrepaired();
        assert_eq!(lost.len(), 2, "one unit on each member: {lost:?}");
        assert_eq!(set.quarantined(), lost);
        // The pool set reports the quarantine as bad blocks (what the store's allocator skips).
        let as_bad: Vec<(u64, u64)> = lost.iter().map(|q| (q.offset, q.len)).collect();
        assert_eq!(set.poolset().bad_blocks(), as_bad);
        drop(set);
        let (set, _) = ReplicaSet::open(given(&sims), OpenSetOptions::default()).unwrap();
        assert_eq!(set.quarantined(), lost);
        assert_eq!(set.poolset().bad_blocks(), as_bad, "after reopen too");
    }

    fn mapped_members(dir: &std::path::Path) -> Vec<Arc<MappedMedium>> {
        (0..2u8)
            .map(|i| {
                let options = MapOptions::new().mode(ModeRequest::ForcedPmem).member(MemberId(i));
                let path = dir.join(format!("member-{i}"));
                let medium = if path.exists() {
                    MappedMedium::open(&path, &options)
                } else {
                    MappedMedium::create(&path, LEN, &options)
                };
                Arc::new(medium.unwrap())
            })
            .collect()
    }

    fn as_dyn(members: &[Arc<MappedMedium>]) -> Vec<Arc<dyn Medium>> {
        members.iter().map(|m| m.clone() as Arc<dyn Medium>).collect()
    }

    #[test]
    fn bad_blocks_known_at_open_are_repaired_before_use() {
        let dir = tempfile::tempdir_in("/dev/shm").unwrap();
        let members = mapped_members(dir.path());
        let set =
            ReplicaSet::create(as_dyn(&members), &params(), OpenSetOptions::default()).unwrap();
        let offsets = fill(&set, 6);
        let page = offsets[3] / 4096 * 4096;
        let good = read(members[1].as_ref(), page, 4096).0;
        drop(set);
        // Real poison destroys the page; the sidecar lists it (as the kernel's list would).
        members[0].inject_poison(page, 4096).unwrap();
        let sidecar = BadBlocks::sidecar_path(members[0].path());
        BadBlocks::add(&sidecar, (page, 4096)).unwrap();
        drop(members);
        let members = mapped_members(dir.path());
        assert_eq!(members[0].known_bad(), vec![(page, 4096)]);
        let (set, report) = ReplicaSet::open(
            as_dyn(&members).into_iter().map(Some).collect(),
            OpenSetOptions::default(),
        )
        .unwrap();
        assert_eq!(report.bad_blocks_repaired.len(), 1);
        assert!(report.quarantined.is_empty());
        assert_eq!(read(members[0].as_ref(), page, 4096), (good, true));
        assert!(members[0].known_bad().is_empty());
        assert!(BadBlocks::load(&sidecar).unwrap().ranges().is_empty());
        assert!(set.recover(crate::scan::ScanOptions::default()).unwrap().damage.is_empty());
    }

    /// A `BUS_MCEERR_AO` notice (self-sent with `rt_tgsigqueueinfo`, as the kernel would) for a
    /// poisoned page of the primary leads to a heal of exactly that page.
    #[test]
    fn an_action_optional_notice_leads_to_a_scrub_of_its_range() {
        let _ring = RING_LOCK.lock();
        let dir = tempfile::tempdir_in("/dev/shm").unwrap();
        let members = mapped_members(dir.path());
        let set =
            ReplicaSet::create(as_dyn(&members), &params(), OpenSetOptions::default()).unwrap();
        let offsets = fill(&set, 6);
        let page = offsets[4] / 4096 * 4096;
        let good = read(members[1].as_ref(), page, 4096).0;
        mcstore_pmem::mcsafe::enable_early_notices().unwrap();
        members[0].inject_poison(page, 4096).unwrap();
        members[0].inject_async_notice(page + 100, 12).unwrap();
        let report = set.scrub_notices().unwrap();
        assert_eq!(report.findings.len(), 1, "{report:?}");
        let finding = &report.findings[0];
        assert_eq!(finding.range, Quarantined { member: MemberId(0), offset: page, len: 4096 });
        assert_eq!(finding.healed_from, Some(MemberId(1)));
        assert_eq!(read(members[0].as_ref(), page, 4096), (good, true));
        assert_eq!(set.scrub_notices().unwrap().findings.len(), 0, "the ring was drained");
    }
}
