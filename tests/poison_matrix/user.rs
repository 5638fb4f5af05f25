//! Driver for the User-domain read sites: get's value, get's key compare, range scan, and the
//! replica read of a retry. A victim record (long key, long value) among fillers; poison at the
//! cell's line of the victim's key or value on the cell's members; then the read.
//!
//! Expected: with a good copy the read returns the right bytes (a poisoned primary is healed
//! and its range leaves the bad-block list); without one, `Fail` names the key and nothing is
//! committed (an `insert` over it is refused), `Halt` aborts (checked in a re-executed child).

use std::ops::Range;

use mcstore::{Db, Result};
use mcstore_testkit::matrix::{Backend, Cell, Member, PolicyCase, ReadSite};

use super::rig::{Rig, distinct, is_fail_for};
use crate::support::find_unique;

const FILLERS: u8 = 10;

/// The victim's key and value for a backend: several lines on SimMedium, several pages on
/// MappedMedium (so a poisoned page lies wholly inside the unit).
fn victim(backend: Backend) -> (Vec<u8>, Vec<u8>) {
    match backend {
        Backend::Sim => (distinct(50, 300), distinct(60, 400)),
        Backend::Mapped => (distinct(50, 3 * 4096), distinct(60, 3 * 4096)),
    }
}

fn filler(i: u8) -> (Vec<u8>, Vec<u8>) {
    (format!("filler{i:02}").into_bytes(), distinct(i + 1, 200))
}

/// The store's answer for the victim: `get`, or its item in a full iteration (every other item
/// must come through with the right bytes, or — when `shared` — fail by name: a poisoned line at
/// the victim's edge may hold a neighbour's bytes too).
fn read_victim(site: ReadSite, db: &Db, key: &[u8], shared: bool) -> Result<Option<Vec<u8>>> {
    if site != ReadSite::RangeScan {
        return db.get(key).map(|v| v.map(|v| v.to_vec()));
    }
    let mut victim = Ok(None);
    let mut others = 0;
    for item in db.iter() {
        match item {
            Ok((k, v)) if &k[..] == key => victim = Ok(Some(v.to_vec())),
            Ok((k, v)) => {
                let i: u8 = std::str::from_utf8(&k[6..]).expect("filler key").parse().expect("n");
                assert_eq!(&v[..], &filler(i).1[..], "filler {i} in the scan");
                others += 1;
            }
            Err(error) if error.key() == Some(key) => victim = Err(error),
            Err(error) if shared && error.key().is_some_and(|k| k.starts_with(b"filler")) => {
                others += 1;
            }
            Err(error) => panic!("an item other than the victim failed: {error:?}"),
        }
    }
    assert_eq!(others, usize::from(FILLERS), "every filler item comes through");
    victim
}

/// Build the cell's store with the victim and fillers; return the rig and the poisoned range.
fn setup(cell: Cell) -> (Rig, Range<u64>) {
    let rig = Rig::create(cell, 512 << 10);
    let db = rig.db();
    for i in 0..FILLERS / 2 {
        let (k, v) = filler(i);
        db.put(k, v).expect("put");
    }
    let (key, value) = victim(cell.backend);
    db.put(&key, &value).expect("put the victim");
    for i in FILLERS / 2..FILLERS {
        let (k, v) = filler(i);
        db.put(k, v).expect("put");
    }
    let image = rig.image(0);
    let unit = if cell.site == ReadSite::GetKey {
        let at = find_unique(&image, &key);
        at..at + key.len() as u64
    } else {
        let at = find_unique(&image, &value);
        at..at + value.len() as u64
    };
    let target = rig.target(unit, cell.position);
    (rig, target)
}

fn poison(rig: &Rig, target: &Range<u64>) {
    if rig.cell.site == ReadSite::ReplicaRead && rig.cell.member == Member::Replica {
        // The retry must read a poisoned replica: the primary fails first (at the record's
        // value), replica 1 is poisoned at the cell's line, replica 2 holds the good copy.
        rig.poison(0, target.clone());
        rig.poison(1, target.clone());
    } else {
        rig.poison_cell(target);
    }
}

/// Run one cell: the control run when `poisoned` is false, else the cell itself.
pub fn run(cell: Cell, poisoned: bool) {
    let (rig, target) = setup(cell);
    let (key, value) = victim(cell.backend);
    if poisoned {
        poison(&rig, &target);
    }
    let db = rig.db();
    // Without a good copy, a poisoned line at the victim's edge may fail a neighbour too.
    let shared = poisoned && !cell.has_good_copy() && rig.members() < 3;
    let got = read_victim(cell.site, db, &key, shared);
    let stats = db.stats();
    if !poisoned {
        assert_eq!(got.expect("control read").as_deref(), Some(&value[..]), "{cell}");
        assert_eq!((stats.read_faults, stats.replica_retries), (0, 0), "{cell}: control");
        assert_eq!(rig.counts.poisoned_reads(), 0);
    } else if cell.has_good_copy() || rig.members() > 2 {
        assert_eq!(got.expect("a good copy exists").as_deref(), Some(&value[..]), "{cell}");
        let primary_poisoned = rig.poisoned_members().contains(&0)
            || (cell.site == ReadSite::ReplicaRead && cell.member == Member::Replica);
        if primary_poisoned {
            assert!(stats.read_faults >= 1 && stats.replica_retries >= 1, "{cell}: {stats:?}");
            assert!(rig.counts.poisoned_reads() >= 1, "{cell}: the probe saw the poisoned read");
            assert!(!rig.still_bad(0, &target), "{cell}: the primary was repaired");
            if rig.members() > 2 {
                assert!(!rig.still_bad(1, &target), "{cell}: the poisoned replica was repaired");
            }
            // Repaired: the next read is clean.
            let faults = db.stats().read_faults;
            assert_eq!(
                read_victim(cell.site, db, &key, false).expect("re-read").as_deref(),
                Some(&value[..])
            );
            assert_eq!(db.stats().read_faults, faults, "{cell}: the re-read met no poison");
        } else {
            // Only a replica is poisoned: reads go to the primary and never see it; a scrub
            // finds the replica's poison and heals it from the primary.
            assert_eq!(stats.read_faults, 0, "{cell}");
            let report = db.scrub().expect("scrub");
            assert!(report.repaired() >= 1, "{cell}: {report:?}");
            assert!(!rig.still_bad(1, &target), "{cell}: the replica was healed");
        }
    } else {
        assert_ne!(
            cell.policy,
            PolicyCase::Halt,
            "a Halt cell without a good copy runs in a child"
        );
        match got {
            Err(error) => assert!(is_fail_for(&error, &key), "{cell}: {error:?}"),
            Ok(v) => panic!("{cell}: returned {:?} bytes from a poisoned unit", v.map(|v| v.len())),
        }
        assert!(rig.counts.poisoned_reads() >= 1, "{cell}: the probe saw the poisoned read");
        // Nothing is committed over flagged data: an insert reads the old value first.
        assert!(db.insert(&key, "new").is_err(), "{cell}: insert over a poisoned value");
        assert!(db.get(&key).is_err(), "{cell}: the refused insert committed nothing");
        assert!(!db.stats().failed, "{cell}: a User failure never latches");
        db.put("after", "still writable").expect("put after the failure");
    }
    for i in 0..FILLERS {
        let (k, v) = filler(i);
        match db.get(&k) {
            Ok(got) => assert_eq!(got.as_deref(), Some(&v[..]), "{cell}: filler {i}"),
            Err(error) if shared && is_fail_for(&error, &k) => {}
            Err(error) => panic!("{cell}: filler {i}: {error:?}"),
        }
    }
    rig.assert_probes_clean();
}

/// Whether the cell must end in `abort()`: `Halt` with no good copy of a User read.
pub fn must_abort(cell: &Cell) -> bool {
    cell.policy == PolicyCase::Halt && !cell.has_good_copy()
}

/// The child side of a `Halt` cell: the read must not return.
pub fn halt_child(cell: Cell) {
    let (rig, target) = setup(cell);
    poison(&rig, &target);
    let (key, _) = victim(cell.backend);
    let returned = read_victim(cell.site, rig.db(), &key, true);
    eprintln!("not reached: the read returned {:?}", returned.map(|v| v.map(|v| v.len())));
}
