//! The scan's repair hook over a replica set: damage the scan finds in the primary (poison, a
//! record that does not verify, a bad tail word, a poisoned superblock slot) is rewritten from
//! the first in-sync replica whose copy reads clean, and the scan re-reads and re-verifies it.
//!
//! INVARIANT: the hook writes only through `PoolSet::heal` (whole pages, re-read and compared,
//! superblocks re-encoded for the primary); the scan's re-verification decides whether the
//! damage counts as repaired, so a replica with the same damage never launders it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use mcstore_pmem::poolset::HealOutcome;
use mcstore_pmem::{MemberId, PoolSet};

use crate::scan::Repairer;

/// [`Repairer`] over a [`PoolSet`]: heals the primary from a replica.
#[derive(Debug)]
pub struct SetRepairer {
    poolset: Arc<PoolSet>,
    attempts: AtomicU64,
    healed: AtomicU64,
}

impl SetRepairer {
    /// A hook healing `poolset`'s primary.
    pub fn new(poolset: Arc<PoolSet>) -> Self {
        Self { poolset, attempts: AtomicU64::new(0), healed: AtomicU64::new(0) }
    }

    /// `(ranges asked for, ranges rewritten from a replica)` so far.
    pub fn counts(&self) -> (u64, u64) {
        (self.attempts.load(Ordering::Relaxed), self.healed.load(Ordering::Relaxed))
    }
}

impl Repairer for SetRepairer {
    fn repair(&self, offset: u64, len: u64) -> bool {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        // The scan verifies what it re-reads; bytes that read clean are the candidate here.
        let healed = matches!(
            self.poolset.heal(MemberId(0), offset, len.max(1), &|_| true),
            Ok(HealOutcome::Healed { .. })
        );
        if healed {
            self.healed.fetch_add(1, Ordering::Relaxed);
        }
        healed
    }
}
