//! The full scan's record walk: the segments to read, in sequence order, walked in batches
//! (several segments on several threads, then accounted in order, so progress is reported as
//! the scan goes); a damaged range is offered to the repairer, and walked again if any was fixed.
//!
//! INVARIANT: every clean range's entries go to one part (the sort orders them in place); a
//! damaged range's stay apart, as its repair may replace them.

use mcstore_pmem::Medium;

use super::committed::{Job, WALK_THREADS_MAX, Walker, read_and_walk, walk_all};
use super::damage::{Damage, DamageKind};
use super::index::{IndexEntry, Part, WalkedEntries, build, estimated_keys};
use super::options::ScanOptions;
use super::recovered::SegmentStatus;
use super::segment_table::TableRow;
use super::segments::{Class, classify};
use super::tally::Tally;
use crate::error::Result;
use crate::format::{Lsn, SEGMENT_DATA_OFFSET, Superblock};

/// Segments walked (in parallel) before their results are accounted and progress is reported.
const WALK_BATCH_SEGMENTS: usize = 64;

/// The walk's state from batch to batch, then its index parts.
pub(super) struct SegmentWalk {
    /// Every clean range's entries.
    sink: parking_lot::Mutex<Part>,
    /// Each damaged range's entries.
    parts: Vec<Part>,
    /// Kept between batches, so their buffers are reused.
    walkers: Vec<Walker>,
    /// The highest LSN among the records walked.
    max_lsn: Option<Lsn>,
    /// Segments accounted so far.
    done: u32,
}

impl SegmentWalk {
    /// A walk that has read nothing yet.
    pub(super) fn new() -> Self {
        SegmentWalk {
            sink: parking_lot::Mutex::new(Part::new()),
            parts: Vec::new(),
            walkers: (0..WALK_THREADS_MAX).map(|_| Walker::new()).collect(),
            max_lsn: None,
            done: 0,
        }
    }

    /// Walk the rows `order` names, in that order, of the pool `sb` describes: each row's
    /// records counted into it, the bytes, records and damage into `tally` (damage offered to
    /// `opts.repairer` first, if given; a segment a repair reached is classified again first).
    pub(super) fn run(
        &mut self,
        medium: &dyn Medium,
        sb: &Superblock,
        opts: &ScanOptions,
        rows: &mut [TableRow],
        order: &[usize],
        tally: &mut Tally<'_>,
    ) -> Result<()> {
        let g = sb.geometry;
        let repairer = opts.repairer.as_deref();
        for batch in order.chunks(WALK_BATCH_SEGMENTS) {
            let jobs: Vec<(usize, Job)> = batch
                .iter()
                .filter_map(|&i| {
                    let TableRow { info, walk_len } = &rows[i];
                    let job = Job {
                        start: g.data_start(info.id),
                        len: (*walk_len)?,
                        seq: info.seq,
                        salvage_walk: info.status == SegmentStatus::Damaged,
                    };
                    Some((i, job))
                })
                .collect();
            let plain: Vec<Job> = jobs.iter().map(|(_, job)| *job).collect();
            let outcomes = walk_all(medium, &plain, sb, &mut self.walkers, &self.sink)?;
            for ((i, mut job), mut outcome) in jobs.into_iter().zip(outcomes) {
                let first_damage = outcome.damage.len() as u64;
                tally.found += first_damage;
                if first_damage > 0
                    && let Some(repairer) = repairer
                {
                    let mut any_fixed = false;
                    for d in &outcome.damage {
                        any_fixed |= repairer.repair(d.offset, d.len);
                    }
                    if any_fixed {
                        let lost;
                        (job, lost) = reclassify(medium, sb, opts, &mut rows[i], job)?;
                        let mut again = Part::new();
                        outcome = read_and_walk(medium, &mut Vec::new(), &job, sb, &mut again)?;
                        outcome.entries = Some(again);
                        tally.repaired += first_damage.saturating_sub(outcome.damage.len() as u64);
                        tally.found += lost.len() as u64;
                        outcome.damage.extend(lost);
                    }
                }
                tally.report.bytes_scanned += job.len;
                let records = outcome.records;
                tally.report.records += records;
                let info = &mut rows[i].info;
                info.records = records;
                self.max_lsn = self.max_lsn.max(outcome.max_lsn);
                for d in &mut outcome.damage {
                    d.segment = Some(info.id);
                }
                tally.damage.extend(outcome.damage);
                self.parts.extend(outcome.entries);
                self.done += 1;
                tally.progress(self.done);
            }
        }
        Ok(())
    }

    /// How many distinct keys the walk met, estimated (at most the entries walked): about the
    /// size of the index `into_index` builds, before it is built.
    pub(super) fn estimated_keys(&self) -> usize {
        let sink = self.sink.lock();
        estimated_keys(std::iter::once(&*sink).chain(&self.parts))
    }

    /// The index the walk's entries make (sorted, newest version per key), and the highest LSN
    /// walked.
    pub(super) fn into_index(self) -> (Vec<IndexEntry>, Option<Lsn>) {
        let (walked, max_lsn) = self.into_walked();
        (build(walked), max_lsn)
    }

    /// The walk's entries unsorted, every version of each key, and the highest LSN walked.
    pub(super) fn into_entries(self) -> (WalkedEntries, Option<Lsn>) {
        let (parts, max_lsn) = self.into_walked();
        (WalkedEntries::new(parts), max_lsn)
    }

    fn into_walked(self) -> (Vec<Part>, Option<Lsn>) {
        let SegmentWalk { sink, mut parts, walkers, max_lsn, .. } = self;
        // The walkers' buffers are freed before the sort runs.
        drop(walkers);
        parts.push(sink.into_inner());
        (parts, max_lsn)
    }
}

/// The segment of `row` classified again after a repair, and the job that walks it now. A
/// repair rewrites whole pages from another member: when those reach the segment's header and
/// tail lines, the committed length is the healed tail word's, which may be shorter than the
/// one read before (the primary's own tail word may cover a group the source member's never
/// did; that group was never acknowledged). Walking the old length would index records the
/// durable tail does not cover, and the next crash would lose what this open served. A healed
/// header or tail that no longer vouches for the segment leaves it damaged, walked only by a
/// salvage, and its damage is returned.
fn reclassify(
    medium: &dyn Medium,
    sb: &Superblock,
    opts: &ScanOptions,
    row: &mut TableRow,
    mut job: Job,
) -> Result<(Job, Vec<Damage>)> {
    let g = sb.geometry;
    let classified = classify(medium, &g, sb, row.info.id, opts)?;
    let info = &mut row.info;
    match classified.class {
        Class::InUse { seq, state, tail: Some(tail) } if seq == info.seq => {
            (info.status, info.state, info.tail) = (SegmentStatus::InUse, Some(state), tail);
            (job.len, job.salvage_walk) = (tail, false);
            row.walk_len = Some(tail);
            Ok((job, Vec::new()))
        }
        _ => {
            (info.status, info.tail) = (SegmentStatus::Damaged, 0);
            job.len = if opts.salvage { g.data_capacity() } else { 0 };
            job.salvage_walk = true;
            row.walk_len = opts.salvage.then_some(job.len);
            let mut damage = classified.damage;
            if damage.is_empty() {
                damage.push(Damage {
                    kind: DamageKind::BadTail,
                    offset: g.segment_offset(info.id),
                    len: SEGMENT_DATA_OFFSET,
                    segment: Some(info.id),
                    detail: "after a repair its header and tail no longer vouch for it".into(),
                });
            }
            Ok((job, damage))
        }
    }
}
