//! The store's life cycle: drop and reopen at once, one opener at a time (`Locked`), read-only
//! handles, `close`, the clean-shutdown flag, and `OutOfSpace` that is not latched.

use mcstore::{Batch, Db, Error, Mode, Options};
use mcstore_testkit::pools::{as_medium, image_medium, reopen, sim_db, small_options};

use crate::support::shm_dir;

fn mapped_options() -> Options {
    small_options().size_bytes(1 << 20).mode(Mode::ForcedPmem)
}

#[test]
fn create_open_and_a_second_open_is_locked() {
    let dir = shm_dir();
    let path = dir.path().join("pool");
    let db = Db::create(&path, mapped_options()).expect("create");
    db.put("a", "1").expect("put");
    assert!(matches!(Db::create(&path, mapped_options()), Err(Error::AlreadyExists { .. })));
    assert!(matches!(Db::open(&path, mapped_options()), Err(Error::Locked { .. })));
    assert!(matches!(Db::open_or_create(&path, mapped_options()), Err(Error::Locked { .. })));
    drop(db);
    let db = Db::open(&path, mapped_options()).expect("open right after drop");
    assert_eq!(db.get("a").expect("get").as_deref(), Some(&b"1"[..]));
    db.close().expect("close");
    let missing = dir.path().join("missing");
    assert!(matches!(Db::open(&missing, mapped_options()), Err(Error::NotFound { .. })));
    assert!(!missing.exists(), "a failed open created the file");
}

#[test]
fn every_reopen_right_after_drop_sees_the_last_write() {
    let dir = shm_dir();
    let path = dir.path().join("pool");
    Db::create(&path, mapped_options()).expect("create").close().expect("close");
    for round in 0..20u32 {
        let db = Db::open(&path, mapped_options()).expect("open right after drop");
        assert!(db.recovery_report().clean_shutdown, "round {round}");
        assert_eq!(db.len(), round as usize);
        let clone = db.clone();
        assert!(matches!(Db::open(&path, mapped_options()), Err(Error::Locked { .. })));
        drop(db);
        // A clone keeps the store open (and locked).
        assert!(matches!(Db::open(&path, mapped_options()), Err(Error::Locked { .. })));
        clone.put(round.to_be_bytes(), round.to_le_bytes()).expect("put through the clone");
        drop(clone);
    }
}

#[test]
fn read_only_refuses_every_write_and_writes_nothing() {
    let (sim, db) = sim_db(256 << 10, small_options()).expect("sim_db");
    db.put("a", "1").expect("put");
    db.close().expect("close");
    let before = sim.persistent_image();
    let db = reopen(&sim, small_options().read_only(true)).expect("open read-only");
    assert_eq!(db.get("a").expect("get").as_deref(), Some(&b"1"[..]));
    assert!(matches!(db.put("b", "2"), Err(Error::ReadOnly)));
    assert!(matches!(db.insert("b", "2"), Err(Error::ReadOnly)));
    assert!(matches!(db.remove("a"), Err(Error::ReadOnly)));
    assert!(matches!(db.compare_and_swap("a", Some("1"), Some("2")), Err(Error::ReadOnly)));
    assert!(matches!(db.apply_batch(Batch::default().put("c", "3")), Err(Error::ReadOnly)));
    assert_eq!(db.len(), 1);
    db.close().expect("close read-only");
    assert_eq!(sim.persistent_image(), before, "a read-only open and close changed the pool");
}

#[test]
fn close_reports_ok_and_marks_a_clean_shutdown_a_crash_does_not() {
    let (sim, db) = sim_db(256 << 10, small_options()).expect("sim_db");
    db.put("a", "1").expect("put");
    // A crash while open: the image taken now has the pool marked in use.
    let crashed = sim.persistent_image();
    db.close().expect("close");
    let db = reopen(&sim, small_options()).expect("reopen");
    assert!(db.recovery_report().clean_shutdown);
    drop(db);
    let db = Db::open_on(as_medium(&image_medium(crashed)), small_options()).expect("open crash");
    assert!(!db.recovery_report().clean_shutdown);
    assert_eq!(db.get("a").expect("get").as_deref(), Some(&b"1"[..]));
}

#[test]
fn out_of_space_writes_nothing_and_is_not_latched() {
    // Superblocks and three 64 KiB segments, no growth.
    let (sim, db) = sim_db(256 << 10, small_options()).expect("sim_db");
    let mut written = 0u32;
    let error = loop {
        match db.put(written.to_be_bytes(), vec![3u8; 3000]) {
            Ok(()) => written += 1,
            Err(error) => break error,
        }
    };
    assert!(matches!(error, Error::OutOfSpace { .. }), "{error:?}");
    assert!(written > 50, "{written}");
    let image = sim.persistent_image();
    assert!(matches!(db.put("x", vec![3u8; 3000]), Err(Error::OutOfSpace { .. })));
    assert_eq!(sim.persistent_image(), image, "a refused write wrote something");
    assert!(!db.stats().failed);
    assert!(db.sync().is_ok());
    assert_eq!(db.get(0u32.to_be_bytes()).expect("get").as_deref(), Some(&[3u8; 3000][..]));
    // Smaller writes still fit in what is left; the store is not latched.
    db.put("small", "fits").expect("a small put after OutOfSpace");
    assert_eq!(db.remove(1u32.to_be_bytes()).expect("remove").as_deref(), Some(&[3u8; 3000][..]));
    assert_eq!(db.len(), written as usize);
    db.close().expect("close a full pool");
    let db = reopen(&sim, small_options()).expect("reopen a full pool");
    assert_eq!(db.len(), written as usize);
}

/// A pool so full that not even a one-byte put fits can still delete: a pool of eight or more
/// segments keeps its last free segment for removes (and compaction). Found by this suite
/// (`remove` returned `OutOfSpace`); fixed in the engine.
#[test]
fn a_completely_full_pool_can_still_remove() {
    // Superblocks and nine 64 KiB segments.
    let (_sim, db) = sim_db(640 << 10, small_options()).expect("sim_db");
    let mut written = 0u32;
    for len in [3000usize, 300, 30, 1] {
        while db.put(written.to_be_bytes(), vec![1u8; len]).is_ok() {
            written += 1;
        }
    }
    assert!(matches!(db.put("x", ""), Err(Error::OutOfSpace { .. })));
    let removed = db.remove(0u32.to_be_bytes()).expect("remove on a full pool");
    assert_eq!(removed.map(|v| v.len()), Some(3000));
    assert!(db.delete(1u32.to_be_bytes()).expect("delete on a full pool"));
    assert_eq!(db.len(), written as usize - 2);
    assert!(!db.stats().failed);
}
