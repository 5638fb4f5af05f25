//! Driver for writes that meet poison past the committed tail, in two runs per cell: a put whose
//! record store lands on a poisoned line (page), and a flush over a poisoned line — a put with
//! `Durability::None` stores its record, the line is poisoned, then `sync` flushes it. The log is
//! padded so the next record starts on a fresh line: the poison destroys no committed byte.
//!
//! Expected: poison on every member (or on the primary of a one-member pool) fails the put (or
//! the sync) and latches the store (a persist failure always latches); after reopening, every
//! committed key reads right and the record that was never persisted is absent. Poison on one
//! member of a set: the write succeeds and the poisoned page is healed in place from the other
//! member (a replica's from the primary, the primary's from the replica; the set stays in sync).

use std::ops::Range;

use mcstore::Durability;
use mcstore::recovery::format::record::encoded_len;
use mcstore_testkit::matrix::{Backend, Cell};

use super::rig::{Rig, distinct};
use crate::support::find_unique;

const KEYS: u8 = 8;

fn entry(i: u8) -> (Vec<u8>, Vec<u8>) {
    (format!("key{i:02}").into_bytes(), distinct(i + 1, 300))
}

fn next(backend: Backend) -> (Vec<u8>, Vec<u8>) {
    match backend {
        Backend::Sim => (b"next".to_vec(), distinct(70, 400)),
        Backend::Mapped => (b"next".to_vec(), distinct(70, 3 * 4096)),
    }
}

/// Fill, pad the log to a line boundary; the range the next put's record will occupy. With
/// `flush`, the store's writes are not flushed before `sync` (`Durability::None`).
fn setup(cell: Cell, flush: bool) -> (Rig, Range<u64>) {
    let rig = if flush {
        Rig::create_with(cell, 512 << 10, |o| o.durability(Durability::None))
    } else {
        Rig::create(cell, 512 << 10)
    };
    let db = rig.db();
    for i in 0..KEYS {
        let (k, v) = entry(i);
        db.put(k, v).expect("put");
    }
    let (k, v) = entry(KEYS - 1);
    let end = find_unique(&rig.image(0), &v) + v.len() as u64;
    let end = end.next_multiple_of(8);
    // A pad record of `d` bytes (d ≡ -end mod 64, at least one line) aligns the next record.
    let d = (64 - end % 64) % 64 + 64;
    let pad = encoded_len(3, 0);
    db.put("pad", vec![0x33; (d - pad) as usize]).expect("put the pad");
    db.sync().expect("sync the filled log");
    assert_eq!(encoded_len(3, (d - pad) as usize), d);
    let (key, value) = next(cell.backend);
    let start = end + d;
    assert_eq!(k.len(), 5, "entry keys are five bytes");
    (rig, start..start + encoded_len(key.len(), value.len()))
}

/// One cell (control run when `poisoned` is false): the store run, then the flush run.
pub fn run(cell: Cell, poisoned: bool) {
    write_over_poison(cell, poisoned, false);
    write_over_poison(cell, poisoned, true);
}

fn write_over_poison(cell: Cell, poisoned: bool, flush: bool) {
    let (mut rig, record) = setup(cell, flush);
    let target = rig.target(record, cell.position);
    let (key, value) = next(cell.backend);
    let written = if flush {
        // The record is stored (visible, not flushed) before its line is poisoned.
        rig.db().put(&key, &value).expect("put, not yet flushed");
        if poisoned {
            rig.poison_cell(&target);
        }
        rig.db().sync()
    } else {
        if poisoned {
            rig.poison_cell(&target);
        }
        rig.db().put(&key, &value)
    };
    // The primary's page is healed from a replica that holds this operation's bytes; only with
    // no good copy does the write fail.
    let primary_hit = poisoned && rig.poisoned_members().contains(&0) && !cell.has_good_copy();
    if primary_hit {
        assert!(written.is_err(), "{cell}: a write over a poisoned page cannot succeed");
        assert!(rig.db().stats().failed, "{cell}: a persist failure latches");
    } else {
        written.unwrap_or_else(|e| panic!("{cell}: flush {flush}: {e:?}"));
        let db = rig.db();
        assert_eq!(db.get(&key).expect("get").as_deref(), Some(&value[..]), "{cell}");
        // A page the lockstep write finds poisoned is healed in place from the other member
        // and the write re-run: the set stays in sync and the page reads clean.
        assert_eq!(db.stats().replicas_not_in_sync, 0, "{cell}: the replica stays in sync");
        if poisoned {
            for i in rig.poisoned_members() {
                assert!(!rig.still_bad(i, &target), "{cell}: member {i} was healed in place");
            }
        }
    }
    // The failed record never reached the committed range: reopening does not read it.
    rig.close();
    rig.reopen().unwrap_or_else(|e| panic!("{cell}: reopen: {e:?}"));
    let db = rig.db();
    assert!(!db.stats().failed, "{cell}: {}", db.recovery_report());
    for i in 0..KEYS {
        let (k, v) = entry(i);
        assert_eq!(db.get(&k).expect("get").as_deref(), Some(&v[..]), "{cell}: key {i}");
    }
    let expected = (!primary_hit).then_some(&value[..]);
    assert_eq!(db.get(&key).expect("get").as_deref(), expected, "{cell}: the put's fate");
    rig.assert_probes_clean();
}
