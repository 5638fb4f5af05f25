//! The explicit `salvage` open option (`docs/policy.md`, "Salvage"): damage no member can repair
//! (poison in a committed record, a bad tail word, a poisoned superblock slot) is refused by a
//! default open and dropped and listed by a salvage open; the salvaged store takes writes, and
//! its damaged segments are cleaned so a later open without salvage is clean.

use std::collections::BTreeMap;

use mcstore::recovery::format::{Geometry, SUPERBLOCK_SLOT_OFFSETS, SegmentId};
use mcstore::recovery::scan::DamageKind;
use mcstore::{Db, EngineFallback, Error, Options, Policy};
use mcstore_testkit::pools::{
    SEGMENT_BYTES, as_medium, image_medium, reopen, sim_db, small_options,
};

use crate::support::{distinct_value, find_unique};

fn fail_options() -> Options {
    small_options().policy(Policy::default().engine(true, EngineFallback::Fail))
}

fn contents(db: &Db) -> BTreeMap<Vec<u8>, Vec<u8>> {
    db.iter()
        .map(|item| item.map(|(k, v)| (k.to_vec(), v.to_vec())))
        .collect::<mcstore::Result<_>>()
        .expect("every key reads")
}

/// Twenty keys of distinct values.
fn fill(db: &Db) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let mut model = BTreeMap::new();
    for i in 0..20u8 {
        let (key, value) = (format!("key{i:02}").into_bytes(), distinct_value(i, 300));
        db.put(&key, &value).expect("put");
        model.insert(key, value);
    }
    model
}

/// Writes work on a salvaged store, and the pool then opens clean without salvage.
fn writes_work_then_reopen_is_clean(
    sim: &std::sync::Arc<mcstore::pmem::SimMedium>,
    db: Db,
    mut model: BTreeMap<Vec<u8>, Vec<u8>>,
) {
    for i in 0..50u32 {
        let (key, value) = (format!("new{i:03}").into_bytes(), distinct_value(i as u8, 900));
        db.put(&key, &value).expect("a salvaged store takes writes");
        model.insert(key, value);
    }
    assert_eq!(contents(&db), model);
    db.close().expect("close");
    let db = reopen(sim, fail_options()).expect("the salvaged pool opens without salvage");
    let report = db.recovery_report();
    assert!(report.is_clean() && !report.salvaged && !db.stats().salvaged, "{report}");
    assert_eq!(contents(&db), model);
}

/// (a) Poison in the newest record of a key, no replica: a default open refuses; salvage
/// opens with the older version back, the rest intact, the range listed, and cleans up.
#[test]
fn poisoned_record_is_refused_by_default_and_dropped_by_salvage() {
    let (sim, db) = sim_db(1 << 20, small_options()).expect("sim_db");
    let old = distinct_value(200, 500);
    let new = distinct_value(201, 500);
    db.put("victim", &old).expect("put");
    let mut model = fill(&db);
    db.put("victim", &new).expect("put");
    db.put("lonely", distinct_value(202, 500)).expect("put");
    db.close().expect("close");
    let image = sim.persistent_image();
    let line_of = |value: &[u8]| (find_unique(&image, value) + 128) & !63;
    let (newest, lonely) = (line_of(&new), line_of(&distinct_value(202, 500)));
    sim.inject_poison(newest, 64).expect("inject");
    sim.inject_poison(lonely, 64).expect("inject");

    match Db::open_on(as_medium(&sim), fail_options()) {
        Err(Error::Damaged(report)) => {
            assert!(!report.is_clean(), "{report}");
            assert!(report.damage.iter().all(|d| d.kind == DamageKind::Media), "{report}");
        }
        other => panic!("expected Err(Damaged), got {other:?}"),
    }
    let latched = reopen(&sim, small_options()).expect("Latch opens failed");
    assert!(latched.stats().failed);
    drop(latched);

    // Read-only: the damage is dropped and listed, nothing is cleaned (the segment is pinned).
    let fences = sim.fences_seen();
    let look = reopen(&sim, fail_options().salvage(true).read_only(true)).expect("read-only");
    assert!(look.recovery_report().salvaged);
    assert_eq!(look.get("victim").expect("get").as_deref(), Some(&old[..]));
    let pinned = &look.recovery_report().salvage_pinned;
    assert_eq!(pinned.iter().map(|(id, _)| *id).collect::<Vec<_>>(), vec![SegmentId(0)]);
    drop(look);
    assert_eq!(sim.fences_seen(), fences, "a read-only salvage open writes nothing");
    assert_eq!(sim.poisoned_ranges().len(), 2);

    let db = reopen(&sim, fail_options().salvage(true)).expect("salvage opens");
    assert!(!db.stats().failed && db.stats().salvaged);
    let report = db.recovery_report().clone();
    assert!(report.salvaged, "{report}");
    for line in [newest, lonely] {
        assert!(
            report.damage.iter().any(|d| d.offset <= line && line < d.offset + d.len),
            "{line} listed: {report}"
        );
    }
    assert_eq!(report.salvage_reclaimed, vec![SegmentId(0)], "{report}");
    assert!(report.salvage_pinned.is_empty(), "{report}");
    assert!(format!("{report}").contains("salvage open"));
    // The lost newest version: the older one reappears; the lost only version: absent.
    assert_eq!(db.get("victim").expect("get").as_deref(), Some(&old[..]));
    assert_eq!(db.get("lonely").expect("get"), None);
    model.insert(b"victim".to_vec(), old);
    assert_eq!(contents(&db), model);
    // The poisoned lines were rewritten when the segment was reclaimed.
    assert!(sim.poisoned_ranges().is_empty(), "{:?}", sim.poisoned_ranges());
    writes_work_then_reopen_is_clean(&sim, db, model);
}

/// (b) A flipped bit in a segment's tail word: a default open refuses; salvage keeps every
/// verifiable record of that segment.
#[test]
fn bad_tail_word_salvage_keeps_the_verifiable_records() {
    let (sim, db) = sim_db(1 << 20, small_options()).expect("sim_db");
    let model = fill(&db);
    db.close().expect("close");
    let geometry = Geometry::for_segment_size(SEGMENT_BYTES).expect("geometry");
    let mut image = sim.persistent_image();
    image[geometry.tail_offset(SegmentId(0)) as usize + 2] ^= 0x10;
    let sim = image_medium(image);
    match Db::open_on(as_medium(&sim), fail_options()) {
        Err(Error::Damaged(report)) => {
            assert!(report.damage.iter().any(|d| d.kind == DamageKind::BadTail), "{report}")
        }
        other => panic!("expected Err(Damaged), got {other:?}"),
    }
    let db = reopen(&sim, fail_options().salvage(true)).expect("salvage opens");
    let report = db.recovery_report().clone();
    assert!(report.salvaged, "{report}");
    assert!(report.damage.iter().any(|d| d.kind == DamageKind::BadTail), "{report}");
    assert_eq!(report.salvage_reclaimed, vec![SegmentId(0)], "{report}");
    assert_eq!(contents(&db), model, "every record was verifiable");
    writes_work_then_reopen_is_clean(&sim, db, model);
}

/// (c) The superblock slot holding the newer generation is poisoned: a default open refuses
/// (it may be newer: no silent roll-back); salvage opens from the other slot and says so.
#[test]
fn poisoned_newer_superblock_slot_salvage_opens_from_the_other() {
    let (sim, db) = sim_db(1 << 20, small_options()).expect("sim_db");
    let model = fill(&db);
    db.close().expect("close");
    let look = reopen(&sim, small_options().read_only(true)).expect("read-only open");
    let (newer, generation) =
        (look.recovery_report().superblock_slot, look.recovery_report().superblock_generation);
    drop(look);
    sim.inject_poison(SUPERBLOCK_SLOT_OFFSETS[newer], 64).expect("inject");
    match Db::open_on(as_medium(&sim), small_options()) {
        Err(Error::Damaged(report)) => assert!(!report.is_clean(), "{report}"),
        other => panic!("expected Err(Damaged), got {other:?}"),
    }
    let db = reopen(&sim, small_options().salvage(true)).expect("salvage opens");
    let report = db.recovery_report().clone();
    assert!(report.salvaged, "{report}");
    assert_eq!(report.superblock_slot, 1 - newer, "{report}");
    assert!(report.superblock_generation < generation, "{report}");
    assert!(report.damage.iter().any(|d| d.kind == DamageKind::SuperblockSlot), "{report}");
    assert_eq!(contents(&db), model);
    writes_work_then_reopen_is_clean(&sim, db, model);
}

/// (d) Salvage over an undamaged pool is an ordinary open.
#[test]
fn salvage_with_nothing_damaged_is_an_ordinary_open() {
    let (sim, db) = sim_db(1 << 20, small_options()).expect("sim_db");
    let model = fill(&db);
    db.close().expect("close");
    let db = reopen(&sim, small_options().salvage(true)).expect("open");
    let report = db.recovery_report();
    assert!(report.is_clean() && !report.salvaged, "{report}");
    assert!(report.salvage_reclaimed.is_empty() && report.salvage_pinned.is_empty());
    assert_eq!(contents(&db), model);
    writes_work_then_reopen_is_clean(&sim, db, model);
}

/// (a) on a `MappedMedium` in /dev/shm: a real (emulated, `SIGBUS`) poisoned page inside a
/// committed record. Salvage drops it, rewrites the page through the page repair path, and the
/// pool then opens clean without salvage.
#[test]
fn poisoned_page_on_mapped_medium_is_salvaged_and_repaired() {
    use mcstore::pmem::{MapOptions, MappedMedium, Medium, ModeRequest};
    let dir = crate::support::shm_dir();
    let path = dir.path().join("pool");
    let map = MapOptions::new().mode(ModeRequest::ForcedPmem).max_len(1 << 20);
    let medium = std::sync::Arc::new(MappedMedium::create(&path, 1 << 20, &map).expect("create"));
    let shared = || -> std::sync::Arc<dyn Medium> { medium.clone() };
    let db = Db::create_on(shared(), small_options()).expect("create_on the mapped medium");
    let big = distinct_value(1, 3 * 4096);
    db.put("before", "a").expect("put");
    db.put("big", &big).expect("put");
    db.put("after", "b").expect("put");
    db.close().expect("close");
    let at = find_unique(&std::fs::read(&path).expect("read the pool file"), &big);
    let page = (at + 4095) & !4095;
    medium.inject_poison(page, 4096).expect("inject poison");
    assert!(matches!(Db::open_on(shared(), fail_options()), Err(Error::Damaged(_))));
    let db = Db::open_on(shared(), fail_options().salvage(true)).expect("salvage opens");
    let report = db.recovery_report().clone();
    assert!(report.salvaged, "{report}");
    assert!(report.damage.iter().any(|d| d.offset <= page && page < d.offset + d.len), "{report}");
    assert_eq!(report.salvage_reclaimed, vec![SegmentId(0)], "{report}");
    assert_eq!(db.get("big").expect("get"), None, "its only version was lost");
    assert_eq!(db.get("before").expect("get").as_deref(), Some(&b"a"[..]));
    assert_eq!(db.get("after").expect("get").as_deref(), Some(&b"b"[..]));
    db.put("big", "again").expect("a salvaged store takes writes");
    db.close().expect("close");
    let db = Db::open_on(shared(), fail_options()).expect("opens without salvage");
    assert!(db.recovery_report().is_clean(), "{}", db.recovery_report());
    assert_eq!(db.get("big").expect("get").as_deref(), Some(&b"again"[..]));
    assert_eq!(db.len(), 3);
}
