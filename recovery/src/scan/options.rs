//! What a caller tells a scan: progress callback, salvage, a repair hook, the mode's name, and
//! the evidence for a fast open after a clean shutdown.

use std::fmt;
use std::sync::Arc;

/// Progress of a scan, reported after the superblock and after each segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Progress {
    /// Segments examined so far.
    pub segments_done: u32,
    /// Segments in the pool.
    pub segments_total: u32,
    /// Bytes read so far.
    pub bytes_scanned: u64,
    /// Records verified so far.
    pub records: u64,
}

/// A hook that rewrites a damaged range of the scanned member from a good member (\[4\] plugs a
/// replica set in here). Recovery calls it for each damaged range and re-reads what it fixed.
pub trait Repairer: Send + Sync {
    /// Rewrite `[offset, offset + len)` of the scanned medium from a good copy; `true` if the
    /// range now holds good bytes (recovery verifies that by reading it again).
    fn repair(&self, offset: u64, len: u64) -> bool;
}

/// Options of [`super::recover`].
#[derive(Clone, Default)]
pub struct ScanOptions {
    /// Called with progress after the superblock and after each segment.
    pub on_progress: Option<Arc<dyn Fn(Progress) + Send + Sync>>,
    /// Accept what can be read where a strict scan must refuse: the valid superblock slot when
    /// the other is poisoned, and the verifiable records of a segment whose tail word is bad.
    /// The damage is listed either way.
    pub salvage: bool,
    /// Repairs damaged ranges from a good member, if the caller has one.
    pub repairer: Option<Arc<dyn Repairer>>,
    /// The medium's mode, for the report (`Dax`, `Msync`, `ForcedPmem`, `Sim` ...).
    pub mode: String,
    /// What the caller found beside the pool that may allow a fast open after a clean shutdown.
    pub shutdown: ShutdownEvidence,
    /// Called once by a full scan, after the walk and before its entries are sorted, with the
    /// number of distinct keys the walk met (an estimate, ~2 % error, never above the entries
    /// walked): the caller can prepare memory for an index of that size while the sort runs.
    pub on_walked: Option<Arc<dyn Fn(usize) + Send + Sync>>,
    /// A full scan leaves its entries unsorted, every version of each key, in
    /// [`super::Recovered::walked`] instead of sorting them into [`super::Recovered::entries`]
    /// (which is then empty, as are the segments' live counts): for a caller that indexes the
    /// newest version of each key itself and sorts later, off its open's path. A fast open's
    /// snapshot is the index already, and fills `entries` either way.
    pub defer_index: bool,
}

/// The caller's evidence for a fast open (see `docs/format.md`, "Clean shutdown and the fast
/// open"). The default — nothing looked for — always gives the full verifying scan.
#[derive(Clone, Debug, Default)]
pub struct ShutdownEvidence {
    /// The index snapshot file's bytes, or why there are none (`None`: not looked for, e.g. a
    /// pool without a path).
    pub snapshot: Option<Result<Vec<u8>, String>>,
    /// The device's unsafe-shutdown count now (`None`: no count path configured; `Err`: it
    /// could not be read, which forces the full scan).
    pub unsafe_shutdown_count: Option<Result<u64, String>>,
}

impl fmt::Debug for ScanOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScanOptions")
            .field("on_progress", &self.on_progress.is_some())
            .field("salvage", &self.salvage)
            .field("repairer", &self.repairer.is_some())
            .field("mode", &self.mode)
            .field("snapshot", &self.shutdown.snapshot.as_ref().map(|s| s.as_ref().map(Vec::len)))
            .field("unsafe_shutdown_count", &self.shutdown.unsafe_shutdown_count)
            .field("on_walked", &self.on_walked.is_some())
            .field("defer_index", &self.defer_index)
            .finish()
    }
}
