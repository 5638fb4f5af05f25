//! `Options`: how a pool is created or opened (a by-value builder), the requested `Mode` and the
//! `Durability` of writes.
//!
//! INVARIANT: options are plain data; validation happens once, at open (`Options::validate`),
//! and reports out-of-range values as typed errors.

use std::fmt;
use std::sync::Arc;

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

/// When a write is durable relative to its acknowledgement.
///
/// Implemented today: every level behaves as `Immediate` (the background flusher that makes
/// `Eventual` and `None` cheaper arrives with group commit); see `docs/commit.md`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Durability {
    /// Acknowledged = durable for the mode (persisted and published before the call returns).
    #[default]
    Immediate,
    /// Durable within a bounded delay (like Redis `appendfsync everysec`).
    Eventual,
    /// Durable at `sync()`, `close()` or drop.
    None,
}

/// The recovery progress callback.
pub type ProgressHook = Arc<dyn Fn(Progress) + Send + Sync>;

/// How to create or open a store. `Options::default().size_bytes(64 << 20)`.
#[derive(Clone)]
pub struct Options {
    pub(crate) size_bytes: u64,
    pub(crate) max_size_bytes: Option<u64>,
    pub(crate) mode: Mode,
    pub(crate) durability: Durability,
    pub(crate) policy: Policy,
    pub(crate) on_recovery_progress: Option<ProgressHook>,
    pub(crate) read_only: bool,
    pub(crate) background: bool,
    pub(crate) segment_size_bytes: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            size_bytes: limits::DEFAULT_POOL_BYTES,
            max_size_bytes: None,
            mode: Mode::Auto,
            durability: Durability::Immediate,
            policy: Policy::default(),
            on_recovery_progress: None,
            read_only: false,
            background: true,
            segment_size_bytes: limits::DEFAULT_SEGMENT_BYTES,
        }
    }
}

impl Options {
    /// Pool size. At create: the size. At open: a minimum (the pool grows to it, never shrinks).
    #[must_use]
    pub fn size_bytes(mut self, bytes: u64) -> Self {
        self.size_bytes = bytes;
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

    /// Whether background threads may run (off for fuzzing and deterministic tests). No
    /// background work exists yet; the flag is kept so callers can set it now.
    #[must_use]
    pub fn background(mut self, background: bool) -> Self {
        self.background = background;
        self
    }

    /// Segment size for a new pool (a power of two; ignored at open: the pool's own wins).
    #[must_use]
    pub fn segment_size_bytes(mut self, bytes: u64) -> Self {
        self.segment_size_bytes = bytes;
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
            .field("background", &self.background)
            .field("segment_size_bytes", &self.segment_size_bytes)
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
