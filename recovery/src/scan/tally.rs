//! A scan's running account: the report it fills as it goes, the damage still there, how much
//! damage it met and how much the repairer fixed, and the progress callback it tells.
//!
//! INVARIANT: `found` counts every damage met, repaired or not; `damage` lists only what is
//! still there after any repair, in the order the scan met it.

use std::time::Instant;

use super::damage::Damage;
use super::options::{Progress, ScanOptions};
use super::recovered::SegmentInfo;
use super::report::RecoveryReport;
use crate::format::{SUPERBLOCK_BYTES, Superblock};

/// What the scan has read and found so far.
pub(super) struct Tally<'o> {
    opts: &'o ScanOptions,
    segments_total: u32,
    /// The report, filled as the scan goes.
    pub(super) report: RecoveryReport,
    /// Damage still there.
    pub(super) damage: Vec<Damage>,
    /// Damage met, repaired or not.
    pub(super) found: u64,
    /// Damage the repairer fixed.
    pub(super) repaired: u64,
}

impl<'o> Tally<'o> {
    /// The account after the superblock: `sb` chosen from `slot`, its slots' `damage` and the
    /// slots `repaired`, `segments_total` segments on the medium.
    pub(super) fn new(
        opts: &'o ScanOptions,
        sb: &Superblock,
        slot: usize,
        segments_total: u32,
        damage: Vec<Damage>,
        repaired: u64,
    ) -> Self {
        let report = RecoveryReport {
            clean_shutdown: sb.clean_shutdown,
            superblock_generation: sb.generation,
            superblock_slot: slot,
            segments: segments_total,
            bytes_scanned: 2 * SUPERBLOCK_BYTES as u64,
            mode: opts.mode.clone(),
            read_only_reason: (sb.features.unknown_ro_compat() != 0).then(|| {
                format!(
                    "unknown read-only-compatible features {:#x}",
                    sb.features.unknown_ro_compat()
                )
            }),
            ..RecoveryReport::default()
        };
        let found = damage.len() as u64 + repaired;
        Tally { opts, segments_total, report, damage, found, repaired }
    }

    /// Tell the caller's progress callback, if any, that `done` segments are done.
    pub(super) fn progress(&self, done: u32) {
        if let Some(cb) = &self.opts.on_progress {
            cb(Progress {
                segments_done: done,
                segments_total: self.segments_total,
                bytes_scanned: self.report.bytes_scanned,
                records: self.report.records,
            });
        }
    }

    /// List `damage` met (not repaired).
    pub(super) fn list(&mut self, damage: Damage) {
        self.found += 1;
        self.damage.push(damage);
    }

    /// Account one step's findings: `damage` still there and `repaired` ranges it fixed.
    pub(super) fn add(&mut self, damage: Vec<Damage>, repaired: u64) {
        self.found += damage.len() as u64 + repaired;
        self.repaired += repaired;
        self.damage.extend(damage);
    }

    /// Close the report over the final `segments` and an index of `entries` entries, the scan
    /// having `started` then; tell the callback every segment is done. The report and the damage.
    pub(super) fn finish(
        mut self,
        segments: &[SegmentInfo],
        entries: usize,
        started: Instant,
    ) -> (RecoveryReport, Vec<Damage>) {
        let report = &mut self.report;
        report.segments_in_use = segments.iter().filter(|s| s.seq != 0).count() as u32;
        report.entries = entries as u64;
        report.damage_found = self.found;
        report.damage_repaired = self.repaired;
        report.lost_ranges = self.damage.iter().map(|d| (d.offset, d.len)).collect();
        report.damage = self.damage.clone();
        report.duration = started.elapsed();
        self.progress(self.segments_total);
        (self.report, self.damage)
    }
}
