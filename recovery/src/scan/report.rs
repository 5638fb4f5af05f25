//! The recovery report: what a scan found, printed by `info`/`check` and kept by the store.

use std::fmt;
use std::time::Duration;

use super::damage::Damage;
use crate::format::SegmentId;

/// How the pool was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OpenKind {
    /// Every committed record was read and verified to rebuild the index.
    #[default]
    Full,
    /// After a clean shutdown: the index came from the snapshot the shutdown left, bound to the
    /// log by every segment's sequence and tail; records are verified when read.
    Fast,
}

/// What recovery found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// The previous opener closed cleanly.
    pub clean_shutdown: bool,
    /// Fast open or full verifying scan.
    pub open_kind: OpenKind,
    /// Why that kind (e.g. "unclean shutdown", "the device's unsafe-shutdown count changed").
    pub open_reason: String,
    /// Generation of the superblock chosen.
    pub superblock_generation: u64,
    /// Slot it came from (0 = A, 1 = B).
    pub superblock_slot: usize,
    /// Records read and verified.
    pub records: u64,
    /// Index entries after deduplication (tombstones included).
    pub entries: u64,
    /// Bytes read from committed ranges, headers and superblocks.
    pub bytes_scanned: u64,
    /// Segments in the pool.
    pub segments: u32,
    /// Segments with an initialised header of this set.
    pub segments_in_use: u32,
    /// Segments whose header was torn by a crash during initialisation (tail empty; free).
    pub torn_inits: u32,
    /// Damaged ranges found (repaired or not).
    pub damage_found: u64,
    /// Of those, repaired through the `Repairer`.
    pub damage_repaired: u64,
    /// Unrepaired damage, `(offset, len)`.
    pub lost_ranges: Vec<(u64, u64)>,
    /// Unrepaired damage in detail.
    pub damage: Vec<Damage>,
    /// Why the pool may be opened read-only only (unknown ro-compat features), if it must.
    pub read_only_reason: Option<String>,
    /// Wall-clock time of the scan (all of `recover`).
    pub duration: Duration,
    /// Of `duration`: reading and verifying the committed ranges (the record walk).
    pub walk_duration: Duration,
    /// Of `duration`: sorting the walk's entries into the index order, newest per key.
    pub sort_duration: Duration,
    /// After the scan: the opener's in-memory index build from the entries (set by the opener,
    /// never by the scan; zero when the scan runs alone).
    pub index_duration: Duration,
    /// The medium's mode as the caller named it (`ScanOptions::mode`).
    pub mode: String,
    /// A salvage open: unrepaired damage was dropped (listed in `damage`) instead of refused.
    /// Set by the opener, never by the scan.
    pub salvaged: bool,
    /// After a salvage open: damaged segments whose verifiable live records were moved out and
    /// that were reclaimed (a later open no longer sees their damage).
    pub salvage_reclaimed: Vec<SegmentId>,
    /// After a salvage open: damaged segments left in place (used for good), with why.
    pub salvage_pinned: Vec<(SegmentId, String)>,
}

impl RecoveryReport {
    /// No unrepaired damage.
    pub fn is_clean(&self) -> bool {
        self.damage.is_empty()
    }
}

impl fmt::Display for RecoveryReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "recovery: {} shutdown, mode {}, superblock generation {} (slot {})",
            if self.clean_shutdown { "clean" } else { "unclean" },
            if self.mode.is_empty() { "unknown" } else { &self.mode },
            self.superblock_generation,
            if self.superblock_slot == 0 { 'A' } else { 'B' },
        )?;
        writeln!(f, "  {:?} open: {}", self.open_kind, self.open_reason)?;
        writeln!(
            f,
            "  {} records ({} index entries) in {} of {} segments, {} bytes scanned in {:.3?}",
            self.records,
            self.entries,
            self.segments_in_use,
            self.segments,
            self.bytes_scanned,
            self.duration
        )?;
        writeln!(
            f,
            "  phases: walk {:.3?}, sort {:.3?}, index build {:.3?}",
            self.walk_duration, self.sort_duration, self.index_duration
        )?;
        if self.torn_inits > 0 {
            writeln!(f, "  {} torn segment initialisations (treated as free)", self.torn_inits)?;
        }
        if let Some(reason) = &self.read_only_reason {
            writeln!(f, "  read-only: {reason}")?;
        }
        if self.salvaged {
            writeln!(
                f,
                "  salvage open: unrepaired damage dropped; {} damaged segment(s) reclaimed",
                self.salvage_reclaimed.len()
            )?;
            for (segment, why) in &self.salvage_pinned {
                writeln!(f, "    segment {segment} left in place: {why}")?;
            }
        }
        write!(f, "  damage: {} found, {} repaired", self.damage_found, self.damage_repaired)?;
        for damage in &self.damage {
            write!(f, "\n    {damage}")?;
        }
        Ok(())
    }
}
