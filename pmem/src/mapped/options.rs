//! `MapOptions`: how a pool file is opened and mapped (mode, reserved range, member, eADR, ...).
//!
//! A by-value builder; every field has a default that suits an ordinary single-member pool.
//! INVARIANT: the options never change after `create`/`open`; the medium keeps a copy.

use crate::medium::MemberId;

use super::mode::ModeRequest;

/// Options for creating or opening a pool file as a [`super::MappedMedium`].
#[derive(Clone, Debug, Default)]
pub struct MapOptions {
    pub(super) mode: ModeRequest,
    pub(super) max_len: Option<u64>,
    pub(super) member: MemberId,
    pub(super) eadr: Option<bool>,
    pub(super) allow_forced_pmem_on_any_fs: bool,
    pub(super) read_only: bool,
    pub(super) populate: bool,
    /// Stands in for the `MCSTORE_FORCE_PMEM` environment variable when set (tests use it so
    /// they do not race on the process environment).
    pub(super) force_pmem_env: Option<bool>,
}

impl MapOptions {
    /// Default options: `Auto` mode, reserve only the file's length, member 0, eADR from sysfs,
    /// read-write, no pre-faulting at open.
    pub fn new() -> Self {
        Self::default()
    }

    /// The mode to ask for.
    pub fn mode(mut self, mode: ModeRequest) -> Self {
        self.mode = mode;
        self
    }

    /// Bytes of address space reserved at open: the most the medium can [`grow`] to without its
    /// base moving. Rounded up to a page; never less than the file's length.
    ///
    /// [`grow`]: crate::Medium::grow
    pub fn max_len(mut self, max_len: u64) -> Self {
        self.max_len = Some(max_len);
        self
    }

    /// Which member of a pool set this file is (recorded in every fault its reads meet).
    pub fn member(mut self, member: MemberId) -> Self {
        self.member = member;
        self
    }

    /// Whether the CPU caches are in the persistence domain (eADR): flushes are skipped, fences
    /// never are. `None` reads `/sys/bus/nd/devices/region*/persistence_domain` (`cpu_cache`).
    /// Applies to the flush-instruction modes (`Dax`, `ForcedPmem`) only.
    pub fn eadr(mut self, eadr: Option<bool>) -> Self {
        self.eadr = eadr;
        self
    }

    /// Let `MCSTORE_FORCE_PMEM=1` select `ForcedPmem` on a disk-backed file (refused otherwise,
    /// since flush instructions do not make page-cache data durable against power loss).
    pub fn allow_forced_pmem_on_any_fs(mut self, allow: bool) -> Self {
        self.allow_forced_pmem_on_any_fs = allow;
        self
    }

    /// Map read-only (shared lock; writes, grows and poison injection are refused).
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Pre-fault the whole mapping at open (`MADV_POPULATE_WRITE`, or `_READ` when read-only).
    /// Grown ranges are always pre-faulted.
    pub fn populate(mut self, populate: bool) -> Self {
        self.populate = populate;
        self
    }

    /// Test hook: answer for `MCSTORE_FORCE_PMEM` instead of reading the environment.
    #[cfg(test)]
    pub(crate) fn force_pmem_env(mut self, force: bool) -> Self {
        self.force_pmem_env = Some(force);
        self
    }

    /// Whether `MCSTORE_FORCE_PMEM=1` is in effect.
    pub(super) fn force_pmem_requested(&self) -> bool {
        self.force_pmem_env
            .unwrap_or_else(|| std::env::var_os("MCSTORE_FORCE_PMEM").is_some_and(|v| v == "1"))
    }
}
