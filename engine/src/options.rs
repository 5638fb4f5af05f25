//! `Options`: how a pool is created or opened (a by-value builder), the requested `Mode` and the
//! `Durability` of writes.
//!
//! INVARIANT: options are plain data; validation happens once, at open (`Options::validate`),
//! and reports out-of-range values as typed errors.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use mcstore_pmem::ModeRequest;
use mcstore_recovery::scan::Progress;

use crate::error::{Error, Result};
use crate::limits;
use crate::policy::Policy;

/// How the pool file is mapped (chosen at open, reported by `stats()`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// `Dax` when `MAP_SYNC` works, else `ForcedPmem` where `MCSTORE_FORCE_PMEM=1` allows it,
    /// else `Msync`.
    #[default]
    Auto,
    /// Require a DAX mapping (`MAP_SYNC`); cache-line flushes.
    Dax,
    /// An ordinary file: page cache and `msync`.
    Msync,
    /// Flush instructions on a non-DAX mapping: durable against a process crash only.
    ForcedPmem,
}

impl From<Mode> for ModeRequest {
    fn from(mode: Mode) -> Self {
        match mode {
            Mode::Auto => ModeRequest::Auto,
            Mode::Dax => ModeRequest::Dax,
            Mode::Msync => ModeRequest::Msync,
            Mode::ForcedPmem => ModeRequest::ForcedPmem,
        }
    }
}

/// When a write is durable relative to its acknowledgement (`docs/concurrency.md`). Chosen per
/// handle (`Options::durability`, `Db::with_durability`) or per write (`Db::put_with`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Durability {
    /// Acknowledged = durable for the mode (persisted and published before the call returns).
    #[default]
    Immediate,
    /// Visible when acknowledged, durable within `Options::flush_interval` (the background
    /// flusher; like Redis `appendfsync everysec`), or earlier (see `None`).
    Eventual,
    /// Visible when acknowledged, durable at `sync()`, close, a segment roll, or when a later
    /// `Immediate` write's group publishes a tail covering it.
    None,
}

/// The recovery progress callback.
pub type ProgressHook = Arc<dyn Fn(Progress) + Send + Sync>;

/// How to create or open a store. `Options::default().size_bytes(64 << 20)`.
#[derive(Clone)]
pub struct Options {
    pub(crate) size_bytes: u64,
    /// `size_bytes` was set by the caller (an open grows the pool only then).
    pub(crate) size_explicit: bool,
    pub(crate) max_size_bytes: Option<u64>,
    pub(crate) mode: Mode,
    pub(crate) durability: Durability,
    pub(crate) policy: Policy,
    pub(crate) on_recovery_progress: Option<ProgressHook>,
    pub(crate) read_only: bool,
    /// Open through damage no member could repair, dropping it (`salvage`).
    pub(crate) salvage: bool,
    pub(crate) background: bool,
    /// A long forward scan may read ahead on a thread of its own (`scan_read_ahead`).
    pub(crate) scan_read_ahead: bool,
    pub(crate) segment_size_bytes: u64,
    pub(crate) flush_interval: Duration,
    pub(crate) compaction_interval: Option<Duration>,
    pub(crate) compaction_live_ratio_max: f64,
    /// Replica files, in member order after the primary (`replicas`); empty: no replica set.
    pub(crate) replicas: Vec<std::path::PathBuf>,
    /// Open with missing or foreign replicas left out instead of refusing (`replicas_degraded`).
    pub(crate) replicas_degraded: bool,
    /// The background scrubber of the replica set (`scrubber`); `None`: off.
    pub(crate) scrubber: Option<mcstore_recovery::replica::ScrubberOptions>,
    /// What a replica's failing write does (`replicas_on_failure`).
    pub(crate) replicas_on_failure: mcstore_pmem::poolset::MemberFailure,
    /// Where to read the device's unsafe-shutdown count (`unsafe_shutdown_count_path`).
    pub(crate) unsafe_shutdown_count_path: Option<std::path::PathBuf>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            size_bytes: limits::DEFAULT_POOL_BYTES,
            size_explicit: false,
            max_size_bytes: None,
            mode: Mode::Auto,
            durability: Durability::Immediate,
            policy: Policy::default(),
            on_recovery_progress: None,
            read_only: false,
            salvage: false,
            background: true,
            scan_read_ahead: true,
            segment_size_bytes: limits::DEFAULT_SEGMENT_BYTES,
            flush_interval: limits::DEFAULT_FLUSH_INTERVAL,
            compaction_interval: Some(limits::DEFAULT_COMPACTION_INTERVAL),
            compaction_live_ratio_max: limits::DEFAULT_COMPACTION_LIVE_RATIO,
            replicas: Vec::new(),
            replicas_degraded: false,
            scrubber: None,
            replicas_on_failure: mcstore_pmem::poolset::MemberFailure::MarkStale,
            unsafe_shutdown_count_path: None,
        }
    }
}

impl Options {
    /// A file holding the device's unsafe-shutdown count as one decimal number (on Linux,
    /// `/sys/bus/nd/devices/nmemX/nfit/dirty_shutdown` of the DIMM under the pool). It is read
    /// at open and recorded in the superblock at a clean shutdown; a count that changed in
    /// between (the platform lost power without flushing its write queues) forces the full
    /// verifying scan, as does a count that cannot be read. Tested against a fake file only:
    /// untested on real hardware. See `docs/format.md`, "Clean shutdown and the fast open".
    #[must_use]
    pub fn unsafe_shutdown_count_path(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.unsafe_shutdown_count_path = Some(path.into());
        self
    }

    /// Pool size. At create: the size (default 64 MiB). At open, when set: a minimum (the pool
    /// grows to it, never shrinks); when not set, an open keeps the pool's size.
    #[must_use]
    pub fn size_bytes(mut self, bytes: u64) -> Self {
        self.size_bytes = bytes;
        self.size_explicit = true;
        self
    }

    /// The size the pool may grow to when it runs out of segments (default: no growth beyond
    /// `size_bytes` or the file's current size).
    #[must_use]
    pub fn max_size_bytes(mut self, bytes: u64) -> Self {
        self.max_size_bytes = Some(bytes);
        self
    }

    /// How to map the file.
    #[must_use]
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Durability of writes made through this handle.
    #[must_use]
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// The commit barrier's policy.
    #[must_use]
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Called with progress while recovery scans the log at open.
    #[must_use]
    pub fn on_recovery_progress(mut self, hook: impl Fn(Progress) + Send + Sync + 'static) -> Self {
        self.on_recovery_progress = Some(Arc::new(hook));
        self
    }

    /// Open without writing anything (writes return `Error::ReadOnly`).
    #[must_use]
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Open through damage that no member could repair, instead of handing it to the Engine
    /// policy's fallback (default off). For the case where no replica holds a good copy: the
    /// recovery scan accepts the valid superblock slot when the other is poisoned and reads the
    /// verifiable records of a segment whose tail word is bad; every damaged range and the
    /// records in it are dropped and listed in `Db::recovery_report()` (`salvaged` is set).
    /// A writable salvage open then moves the verifiable live records of each damaged segment
    /// to a fresh segment, zeroes its poisoned lines through the medium's repair path and
    /// reclaims it, so a later open without salvage is clean.
    ///
    /// Dropping a record is not the same as removing its key: if the newest record of a key
    /// was lost, an **older version of that key may reappear** (or a removed key come back
    /// when its tombstone was lost). Damage a replica repaired is never dropped.
    #[must_use]
    pub fn salvage(mut self, salvage: bool) -> Self {
        self.salvage = salvage;
        self
    }

    /// Whether background threads (the `Eventual` flusher, the compactor) may run; off for
    /// fuzzing and deterministic tests (then `Eventual` writes are durable at `sync()`, close,
    /// a roll or a later `Immediate` write, and compaction runs only on `compact()`).
    #[must_use]
    pub fn background(mut self, background: bool) -> Self {
        self.background = background;
        self
    }

    /// Whether a long forward scan reads ahead on a thread of its own (default on; it also
    /// needs `background` and a machine with more than one core). Once an iterator has produced
    /// a few chunks of keys going forward, that thread reads every other chunk (index lookups,
    /// verified copies) while the iterating thread reads the chunks between, so a full scan
    /// waits on memory from two cores. Only clean reads are made ahead, and an item read ahead
    /// is handed out only if its key still holds that version: the iterator's guarantees, its
    /// errors and its policy actions are those of a scan without it (docs/concurrency.md). Off:
    /// every scan runs on the iterating thread alone (`Iter::read_ahead` sets it per iterator).
    #[must_use]
    pub fn scan_read_ahead(mut self, read_ahead: bool) -> Self {
        self.scan_read_ahead = read_ahead;
        self
    }

    /// How often the background flusher makes `Eventual` writes durable (default 100 ms).
    #[must_use]
    pub fn flush_interval(mut self, interval: Duration) -> Self {
        self.flush_interval = interval;
        self
    }

    /// How often the background compactor looks for segments to clean (`None`: only on
    /// `Db::compact()`; default 250 ms).
    #[must_use]
    pub fn compaction_interval(mut self, interval: Option<Duration>) -> Self {
        self.compaction_interval = interval;
        self
    }

    /// A sealed segment is cleaned when its live bytes are at most this fraction of its data
    /// (0.0..=1.0; default 0.7).
    #[must_use]
    pub fn compaction_live_ratio_max(mut self, ratio: f64) -> Self {
        self.compaction_live_ratio_max = ratio;
        self
    }

    /// Segment size for a new pool (a power of two; ignored at open: the pool's own wins).
    #[must_use]
    pub fn segment_size_bytes(mut self, bytes: u64) -> Self {
        self.segment_size_bytes = bytes;
        self
    }

    /// What a replica member's failing write, store, flush, fence or grow does (a member that
    /// refuses one for a poisoned page is healed from a good member first; this applies when
    /// the heal fails too).
    /// `MarkStale` (the default): the member is marked stale and the operation carries on
    /// degraded. `FailWrite`: the member is marked stale and the operation fails with the
    /// member's typed error, so nothing is acknowledged that is not on every in-sync member.
    #[must_use]
    pub fn replicas_on_failure(mut self, failure: mcstore_pmem::poolset::MemberFailure) -> Self {
        self.replicas_on_failure = failure;
        self
    }

    /// The durability this handle writes with.
    pub fn get_durability(&self) -> Durability {
        self.durability
    }

    /// The policy.
    pub fn get_policy(&self) -> &Policy {
        &self.policy
    }

    /// Whether the store is opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Whether background work is allowed.
    pub fn is_background(&self) -> bool {
        self.background
    }

    /// The largest pool size these options allow, given the pool's current length. For a
    /// medium given to `create_on`/`open_on` (`sized_by_medium`), `size_bytes` does not apply.
    pub(crate) fn max_len(&self, current_len: u64, sized_by_medium: bool) -> u64 {
        let size = if sized_by_medium { 0 } else { self.size_bytes };
        self.max_size_bytes.unwrap_or(0).max(size).max(current_len)
    }

    /// Check every value against `limits`. `sized_by_medium`: the medium's length is the pool
    /// size (`create_on`/`open_on`), so `size_bytes` is not checked against `max_size_bytes`.
    pub(crate) fn validate(&self, sized_by_medium: bool) -> Result<()> {
        let bad = |reason: String| Err(Error::InvalidOptions { reason });
        if self.size_bytes > limits::POOL_BYTES_MAX {
            return bad(format!(
                "size_bytes {} exceeds the maximum {}",
                self.size_bytes,
                limits::POOL_BYTES_MAX
            ));
        }
        if let Some(max) = self.max_size_bytes {
            if max > limits::POOL_BYTES_MAX {
                return bad(format!(
                    "max_size_bytes {max} exceeds the maximum {}",
                    limits::POOL_BYTES_MAX
                ));
            }
            if max < self.size_bytes && !sized_by_medium {
                return bad(format!(
                    "max_size_bytes {max} is below size_bytes {}",
                    self.size_bytes
                ));
            }
        }
        if !(0.0..=1.0).contains(&self.compaction_live_ratio_max) {
            return bad(format!(
                "compaction_live_ratio_max {} is not in [0, 1]",
                self.compaction_live_ratio_max
            ));
        }
        if self.replicas.len() > limits::REPLICAS_MAX {
            return bad(format!(
                "{} replicas exceed the maximum {}",
                self.replicas.len(),
                limits::REPLICAS_MAX
            ));
        }
        if self.flush_interval.is_zero() {
            return bad("flush_interval must be above zero".to_string());
        }
        if !self.segment_size_bytes.is_power_of_two()
            || self.segment_size_bytes < limits::SEGMENT_BYTES_MIN
            || self.segment_size_bytes > limits::SEGMENT_BYTES_MAX
        {
            return bad(format!(
                "segment_size_bytes {} is not a power of two in [{}, {}]",
                self.segment_size_bytes,
                limits::SEGMENT_BYTES_MIN,
                limits::SEGMENT_BYTES_MAX
            ));
        }
        Ok(())
    }
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("size_bytes", &self.size_bytes)
            .field("max_size_bytes", &self.max_size_bytes)
            .field("mode", &self.mode)
            .field("durability", &self.durability)
            .field("policy", &self.policy)
            .field(
                "on_recovery_progress",
                &self.on_recovery_progress.as_ref().map(|_| "Fn(Progress)"),
            )
            .field("read_only", &self.read_only)
            .field("salvage", &self.salvage)
            .field("background", &self.background)
            .field("segment_size_bytes", &self.segment_size_bytes)
            .field("flush_interval", &self.flush_interval)
            .field("compaction_interval", &self.compaction_interval)
            .field("compaction_live_ratio_max", &self.compaction_live_ratio_max)
            .field("replicas", &self.replicas)
            .field("replicas_degraded", &self.replicas_degraded)
            .field("scrubber", &self.scrubber)
            .field("replicas_on_failure", &self.replicas_on_failure)
            .field("unsafe_shutdown_count_path", &self.unsafe_shutdown_count_path)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_sets_fields_and_debug_hides_callbacks() {
        let options = Options::default()
            .size_bytes(8 << 20)
            .max_size_bytes(16 << 20)
            .mode(Mode::Msync)
            .durability(Durability::Eventual)
            .read_only(true)
            .background(false)
            .on_recovery_progress(|_| {});
        assert!(options.validate(false).is_ok());
        assert_eq!(options.max_len(4 << 20, false), 16 << 20);
        assert_eq!(options.max_len(32 << 20, false), 32 << 20);
        let fixed = Options::default().size_bytes(8 << 20);
        assert_eq!(fixed.max_len(1 << 20, true), 1 << 20);
        assert_eq!(fixed.max_len(1 << 20, false), 8 << 20);
        let text = format!("{options:?}");
        assert!(text.contains("Msync") && text.contains("Fn(Progress)"), "{text}");
        assert_eq!(ModeRequest::from(Mode::ForcedPmem), ModeRequest::ForcedPmem);
    }

    #[test]
    fn out_of_range_options_are_typed_errors() {
        let too_small_max = Options::default().size_bytes(8 << 20).max_size_bytes(4 << 20);
        assert!(matches!(too_small_max.validate(false), Err(Error::InvalidOptions { .. })));
        assert!(too_small_max.validate(true).is_ok());
        let odd_segment = Options::default().segment_size_bytes(3 << 20);
        assert!(matches!(odd_segment.validate(false), Err(Error::InvalidOptions { .. })));
        let huge = Options::default().size_bytes(limits::POOL_BYTES_MAX + 1);
        assert!(matches!(huge.validate(false), Err(Error::InvalidOptions { .. })));
    }
}
