//! Driver for the read sites of recovery at open: the newer superblock slot, the first segment's
//! header and committed-tail word, and a record inside the committed log. The store is filled and
//! closed, poison placed at the cell's line on the cell's members, and the pool opened again.
//!
//! Expected: with a good copy the open succeeds, every key reads right and the primary is healed
//! (a poisoned replica is healed by the next scrub, or left stale); without one the Engine
//! fallback decides — `Fail` and `Halt`: `Err(Damaged)`; `Latch`: a failed store whose report
//! lists the damage. Never an open that serves wrong bytes.

use std::ops::Range;

use mcstore::recovery::format::SegmentId;
use mcstore::recovery::format::geometry::{Geometry, SEGMENT_HEADER_BYTES};
use mcstore::recovery::format::superblock::{
    SUPERBLOCK_BYTES, SUPERBLOCK_SLOT_OFFSETS, Superblock,
};
use mcstore::{Db, Error};
use mcstore_testkit::matrix::{Backend, Cell, Member, PolicyCase, ReadSite};
use mcstore_testkit::pools::SEGMENT_BYTES;

use super::rig::{Rig, distinct};
use crate::support::find_unique;

const KEYS: u8 = 12;

fn entry(i: u8, backend: Backend) -> (Vec<u8>, Vec<u8>) {
    let len = match (i, backend) {
        (6, Backend::Mapped) => 3 * 4096,
        _ => 300,
    };
    (format!("key{i:02}").into_bytes(), distinct(i + 1, len))
}

/// The unit the site reads at open, on the closed pool's primary.
fn unit(rig: &Rig) -> Range<u64> {
    let geometry = Geometry::for_segment_size(SEGMENT_BYTES).expect("geometry");
    match rig.cell.site {
        ReadSite::RecoveryHeader => {
            let at = geometry.segment_offset(SegmentId(0));
            at..at + SEGMENT_HEADER_BYTES
        }
        ReadSite::TailWord => {
            let at = geometry.tail_offset(SegmentId(0));
            at..at + 8
        }
        ReadSite::RecoveryPayload => {
            let value = entry(6, rig.cell.backend).1;
            let at = find_unique(&rig.image(0), &value);
            at..at + value.len() as u64
        }
        ReadSite::Superblock => {
            let image = rig.image(0);
            let newer = (0..2)
                .filter_map(|slot| {
                    let at = SUPERBLOCK_SLOT_OFFSETS[slot] as usize;
                    Superblock::decode(&image[at..at + SUPERBLOCK_BYTES], slot).ok()
                })
                .max_by_key(|sb| sb.generation)
                .expect("a valid superblock slot");
            let at = SUPERBLOCK_SLOT_OFFSETS[newer.slot()];
            at..at + SUPERBLOCK_BYTES as u64
        }
        other => panic!("not a recovery site: {other:?}"),
    }
}

fn check_keys(cell: &Cell, db: &Db) {
    for i in 0..KEYS {
        let (k, v) = entry(i, cell.backend);
        match db.get(&k) {
            Ok(got) => assert_eq!(got.as_deref(), Some(&v[..]), "{cell}: key {i}"),
            Err(error) => panic!("{cell}: key {i}: {error:?}"),
        }
    }
}

/// Run one cell: the control run when `poisoned` is false, else the cell itself.
pub fn run(cell: Cell, poisoned: bool) {
    let mut rig = Rig::create(cell, 512 << 10);
    for i in 0..KEYS {
        let (k, v) = entry(i, cell.backend);
        rig.db().put(k, v).expect("put");
    }
    rig.close();
    let target = rig.target(unit(&rig), cell.position);
    if poisoned {
        rig.poison_cell(&target);
    }
    let opened = rig.reopen();
    if !poisoned {
        opened.unwrap_or_else(|e| panic!("{cell}: control open: {e:?}"));
        let db = rig.db();
        assert!(!db.stats().failed && db.recovery_report().damage_found == 0, "{cell}");
        check_keys(&cell, db);
        assert_eq!(rig.counts.poisoned_reads(), 0);
    } else if cell.has_good_copy() {
        opened.unwrap_or_else(|e| panic!("{cell}: open with a good copy: {e:?}"));
        let db = rig.db();
        assert!(!db.stats().failed, "{cell}: {}", db.recovery_report());
        check_keys(&cell, db);
        if cell.member == Member::Primary {
            assert!(rig.counts.poisoned_reads() >= 1, "{cell}: the probe saw the poison");
            assert!(!rig.still_bad(0, &target), "{cell}: the primary was healed");
        } else {
            // The replica is not read for the primary's answers; a scrub heals it (or it was
            // left stale at open, which a resilver would cure).
            db.scrub().expect("scrub");
            let stale = db.stats().replicas_not_in_sync > 0;
            assert!(stale || !rig.still_bad(1, &target), "{cell}: the replica was healed");
        }
        assert_eq!(db.stats().read_faults, 0, "{cell}: reads after open are clean");
    } else {
        assert!(rig.counts.poisoned_reads() >= 1, "{cell}: the probe saw the poison");
        match (cell.policy, opened) {
            (PolicyCase::Latch, Ok(())) => {
                let db = rig.db();
                assert!(db.stats().failed, "{cell}: latched");
                assert!(!db.recovery_report().is_clean(), "{cell}");
                let (k, _) = entry(0, cell.backend);
                assert!(db.get(&k).expect_err("failed store").is_failed(), "{cell}");
                assert!(db.put("x", "y").expect_err("failed store").is_failed(), "{cell}");
            }
            // Latch opens a failed store (docs/policy.md), except where recovery itself
            // refuses: a poisoned newer superblock slot is `Damaged` whatever the policy.
            (policy, Err(Error::Damaged(report)))
                if policy != PolicyCase::Latch || cell.site == ReadSite::Superblock =>
            {
                assert!(report.damage_found >= 1, "{cell}: {report}");
            }
            (_, other) => panic!("{cell}: expected the Engine fallback, got {other:?}"),
        }
    }
    rig.assert_probes_clean();
}
