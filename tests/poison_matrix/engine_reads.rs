//! Drivers for the Engine-domain read sites of a running store: compaction's copy of a live
//! record out of a victim segment, and `Db::scrub`. A victim record written first (so it stays
//! live in the oldest segment) among keys overwritten until segments are worth cleaning.
//!
//! Expected: with a good copy the poisoned unit is healed from the other member and the work
//! completes (segment reclaimed, scrub clean afterwards); without one compaction keeps the
//! segment (counted, never latching or halting) and scrub quarantines the range (a one-member
//! pool: reports it unrepaired, still known bad) — and the victim's value is never served wrong.

use std::ops::Range;

use mcstore::Db;
use mcstore_testkit::matrix::{Backend, Cell, PolicyCase, ReadSite};

use super::rig::{Rig, distinct, is_fail_for};
use crate::support::find_unique;

const ROUNDS: u32 = 20;
const KEYS: u32 = 16;

fn victim(backend: Backend) -> (Vec<u8>, Vec<u8>) {
    match backend {
        Backend::Sim => (b"victim".to_vec(), distinct(60, 400)),
        Backend::Mapped => (b"victim".to_vec(), distinct(60, 3 * 4096)),
    }
}

fn value(round: u32, k: u32) -> Vec<u8> {
    vec![(round * 31 + k) as u8; 600]
}

/// The store with the victim (live, in the first segment) and churned keys; the victim record.
fn setup(cell: Cell) -> (Rig, Range<u64>) {
    let rig = Rig::create(cell, 2 << 20);
    let db = rig.db();
    let (key, val) = victim(cell.backend);
    db.put(&key, &val).expect("put the victim");
    let rounds = if cell.site == ReadSite::CompactionCopy { ROUNDS } else { 1 };
    for round in 0..rounds {
        for k in 0..KEYS {
            db.put(k.to_be_bytes(), value(round, k)).expect("put");
        }
    }
    let at = find_unique(&rig.image(0), &val);
    let record = at - key.len() as u64 - 32..at + val.len() as u64;
    (rig, record)
}

/// Every churned key reads its last value (or, with no good copy of a shared line, fails by
/// name); the victim reads right, or fails by name when no good copy exists.
fn check_keys(cell: &Cell, db: &Db, rounds: u32, victim_lost: bool) {
    let (key, val) = victim(cell.backend);
    if victim_lost && cell.policy == PolicyCase::Halt {
        // A read of a lost record would halt (abort) this process: the index must still hold
        // every key, and the User Halt path is the user sites' child runs.
        assert!(db.contains_key(&key).expect("index"), "{cell}");
        assert_eq!(db.len(), KEYS as usize + 1, "{cell}");
        return;
    }
    match db.get(&key) {
        Ok(got) => assert_eq!(got.as_deref(), Some(&val[..]), "{cell}: victim"),
        Err(error) if victim_lost && is_fail_for(&error, &key) => {}
        Err(error) => panic!("{cell}: victim: {error:?}"),
    }
    for k in 0..KEYS {
        let key = k.to_be_bytes();
        match db.get(key) {
            Ok(got) => assert_eq!(got.as_deref(), Some(&value(rounds - 1, k)[..]), "{cell}: {k}"),
            Err(error) if victim_lost && is_fail_for(&error, &key) => {}
            Err(error) => panic!("{cell}: key {k}: {error:?}"),
        }
    }
}

/// Compaction's copy: one cell (control run when `poisoned` is false).
pub fn compaction(cell: Cell, poisoned: bool) {
    let (rig, record) = setup(cell);
    let target = rig.target(record, cell.position);
    if poisoned {
        rig.poison_cell(&target);
    }
    let db = rig.db();
    let summary = db.compact().unwrap_or_else(|e| panic!("{cell}: compact: {e:?}"));
    let stats = db.stats();
    assert!(!stats.failed, "{cell}: compaction never latches");
    let lost = poisoned && !cell.has_good_copy();
    if lost {
        assert!(summary.unreadable_segments >= 1, "{cell}: {summary:?}");
        assert!(stats.compaction_unreadable >= 1, "{cell}: {stats:?}");
        assert!(db.contains_key(victim(cell.backend).0).expect("index"), "{cell}: kept");
        assert!(rig.counts.poisoned_reads() >= 1, "{cell}: the probe saw the poison");
    } else {
        assert_eq!(summary.unreadable_segments, 0, "{cell}: {summary:?}");
        assert!(summary.segments_reclaimed >= 1, "{cell}: {summary:?}");
        if poisoned && rig.poisoned_members().contains(&0) {
            assert!(rig.counts.poisoned_reads() >= 1, "{cell}: the probe saw the poison");
            assert!(stats.replica_repairs >= 1, "{cell}: {stats:?}");
            assert!(!rig.still_bad(0, &target), "{cell}: the primary was healed");
        } else if poisoned {
            // Compaction read the primary only. The victim's segment was reclaimed, so the
            // replica's poison is no longer live (a later lockstep write there heals it in
            // place); a scrub of the live bytes finds nothing it cannot repair.
            assert_eq!(stats.read_faults, 0, "{cell}: the replica was never read");
            let report = db.scrub().expect("scrub");
            assert!(report.unrepaired().is_empty(), "{cell}: {report:?}");
        }
    }
    check_keys(&cell, db, ROUNDS, lost);
    rig.assert_probes_clean();
}

/// `Db::scrub`: one cell (control run when `poisoned` is false).
pub fn scrub(cell: Cell, poisoned: bool) {
    let (rig, record) = setup(cell);
    let target = rig.target(record, cell.position);
    if poisoned {
        rig.poison_cell(&target);
    }
    let db = rig.db();
    let report = db.scrub().unwrap_or_else(|e| panic!("{cell}: scrub: {e:?}"));
    assert!(!db.stats().failed, "{cell}: scrub never latches");
    let lost = poisoned && !cell.has_good_copy();
    if !poisoned {
        assert!(report.findings.is_empty(), "{cell}: control: {report:?}");
        assert!(report.corrupt.is_empty(), "{cell}: control: {report:?}");
        assert!(report.bytes_scanned > 0, "{cell}: control: the scrub read the pool");
    } else if lost {
        let unrepaired = report.unrepaired();
        let overlaps = |o: u64, l: u64| o < target.end && target.start < o + l;
        assert!(unrepaired.iter().any(|q| overlaps(q.offset, q.len)), "{cell}: {report:?}");
        match db.replica_set() {
            Some(set) => {
                assert!(set.quarantined().iter().any(|q| overlaps(q.offset, q.len)), "{cell}");
            }
            // One member: nothing can heal it; the range stays bad (poisoned, or listed in the
            // sidecar) and the record is not mistaken for a checksum failure.
            None => {
                assert!(rig.still_bad(0, &target), "{cell}: the range is still known bad");
                assert!(report.corrupt.is_empty(), "{cell}: {report:?}");
                assert_eq!(report.repaired(), 0, "{cell}: {report:?}");
            }
        }
    } else {
        assert!(report.repaired() >= 1 && report.unrepaired().is_empty(), "{cell}: {report:?}");
        for i in rig.poisoned_members() {
            assert!(!rig.still_bad(i, &target), "{cell}: member {i} was healed");
        }
        let again = db.scrub().expect("second scrub");
        assert!(again.findings.is_empty(), "{cell}: clean after the repair: {again:?}");
    }
    if poisoned {
        assert!(rig.counts.poisoned_reads() >= 1, "{cell}: the probe saw the poison");
    }
    check_keys(&cell, db, 1, lost);
    rig.assert_probes_clean();
}
