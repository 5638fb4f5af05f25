//! The full scan's record walk: the segments to read, in sequence order, walked in batches
//! (several segments on several threads, then accounted in order, so progress is reported as
//! the scan goes); a damaged range is offered to the repairer, and walked again if any was fixed.
//!
//! INVARIANT: every clean range's entries go to one part (the sort orders them in place); a
//! damaged range's stay apart, as its repair may replace them.

use mcstore_pmem::Medium;

use super::committed::{Job, WALK_THREADS_MAX, Walker, read_and_walk, walk_all};
use super::index::{IndexEntry, Part, build};
use super::options::Repairer;
use super::recovered::SegmentStatus;
use super::segment_table::TableRow;
use super::tally::Tally;
use crate::error::Result;
use crate::format::{Lsn, Superblock};

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
    /// `repairer` first, if given).
    pub(super) fn run(
        &mut self,
        medium: &dyn Medium,
        sb: &Superblock,
        repairer: Option<&dyn Repairer>,
        rows: &mut [TableRow],
        order: &[usize],
        tally: &mut Tally<'_>,
    ) -> Result<()> {
        let g = sb.geometry;
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
            for ((i, job), mut outcome) in jobs.into_iter().zip(outcomes) {
                let info = &mut rows[i].info;
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
                        let mut again = Part::new();
                        outcome = read_and_walk(medium, &mut Vec::new(), &job, sb, &mut again)?;
                        outcome.entries = Some(again);
                        tally.repaired += first_damage.saturating_sub(outcome.damage.len() as u64);
                    }
                }
                tally.report.bytes_scanned += job.len;
                let records = outcome.records;
                tally.report.records += records;
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

    /// The index the walk's entries make (sorted, newest version per key), and the highest LSN
    /// walked.
    pub(super) fn into_index(self) -> (Vec<IndexEntry>, Option<Lsn>) {
        let SegmentWalk { sink, mut parts, walkers, max_lsn, .. } = self;
        // The walkers' buffers are freed before the sort runs.
        drop(walkers);
        parts.push(sink.into_inner());
        (build(parts), max_lsn)
    }
}
