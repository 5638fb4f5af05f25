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

#[cfg(test)]
mod tests {
    use mcstore_pmem::{Domain, ErrorRegister, Medium};

    use crate::format::{SUPERBLOCK_BYTES, Superblock};
    use crate::replica::set::tests::{dyns, fill, keys, params, read, sims};
    use crate::replica::{OpenSetOptions, ReplicaSet};
    use crate::scan::{DamageKind, ScanOptions, recover};

    #[test]
    fn the_scan_repairs_the_primarys_log_from_a_replica_and_carries_on() {
        let sims = sims(2);
        let set = ReplicaSet::create(dyns(&sims), &params(), OpenSetOptions::default()).unwrap();
        let offsets = fill(&set, 6);
        let clean = keys(&recover(sims[1].as_ref(), &ScanOptions::default()).unwrap());
        let good_page = read(sims[1].as_ref(), offsets[2] / 4096 * 4096, 4096).0;
        // Poison destroys a record on the primary; another record's byte flips (reads clean,
        // fails its checksum).
        sims[0].inject_poison(offsets[2] + 10, 1).unwrap();
        let (flip_at, mut byte) = (offsets[5] + 40, [0u8; 1]);
        sims[0].read(flip_at, &mut byte, &mut ErrorRegister::deferred(), Domain::Engine).unwrap();
        sims[0].write(flip_at, &[byte[0] ^ 0x20]).unwrap();
        let alone = recover(sims[0].as_ref(), &ScanOptions::default()).unwrap();
        assert_eq!(alone.report.damage_found, 2);

        let rec = set.recover(ScanOptions::default()).unwrap();
        assert!(rec.damage.is_empty(), "{:?}", rec.damage);
        assert_eq!((rec.report.damage_found, rec.report.damage_repaired), (2, 2));
        assert_eq!(keys(&rec), clean);
        let (page, clean_read) = read(sims[0].as_ref(), offsets[2] / 4096 * 4096, 4096);
        assert!(clean_read && sims[0].poisoned_ranges().is_empty());
        assert_eq!(page, good_page, "the primary holds the replica's bytes again");
        assert!(set.poolset().stats().repairs >= 2);
    }

    #[test]
    fn a_poisoned_superblock_slot_is_repaired_logically() {
        let sims = sims(2);
        let set = ReplicaSet::create(dyns(&sims), &params(), OpenSetOptions::default()).unwrap();
        fill(&set, 2);
        let before = read(sims[0].as_ref(), 4096, SUPERBLOCK_BYTES).0;
        sims[0].inject_poison(4096, 64).unwrap();
        let strict = recover(sims[0].as_ref(), &ScanOptions::default());
        assert!(strict.is_err(), "a poisoned slot alone refuses the open");
        let rec = set.recover(ScanOptions::default()).unwrap();
        assert_eq!(rec.report.damage_repaired, 1);
        let (after, clean) = read(sims[0].as_ref(), 4096, SUPERBLOCK_BYTES);
        assert!(clean);
        // Re-encoded for the primary (index 0, its own uuid), not the replica's bytes.
        assert_eq!(after, before);
        assert_eq!(Superblock::decode(&after, 1).unwrap().member_index, 0);
        assert_ne!(after, read(sims[1].as_ref(), 4096, SUPERBLOCK_BYTES).0);
    }

    #[test]
    fn with_no_good_copy_the_damage_stays_listed() {
        let sims = sims(2);
        let set = ReplicaSet::create(dyns(&sims), &params(), OpenSetOptions::default()).unwrap();
        let offsets = fill(&set, 4);
        for sim in &sims {
            sim.inject_poison(offsets[1], 1).unwrap();
        }
        let rec = set.recover(ScanOptions::default()).unwrap();
        assert_eq!(rec.report.damage_repaired, 0);
        assert_eq!(rec.damage.len(), 1);
        assert_eq!(rec.damage[0].kind, DamageKind::Media);
        let found = keys(&rec).into_iter().map(|k| k.0).collect::<Vec<_>>();
        assert!(!found.contains(&b"k1".to_vec()), "{found:?}");
        for later in [&b"k2"[..], b"k3", b"k4", b"k5"] {
            assert!(found.contains(&later.to_vec()), "the scan carried on past the damage");
        }
    }
}
