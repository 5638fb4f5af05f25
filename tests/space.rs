//! Space: an overwrite-heavy run keeps space amplification low with compaction on; a full pool
//! still accepts removes and recovers space after compaction; a bulk load with half its keys
//! removed compacts to the format's floor, its tombstones dropped, and a crash at every fence
//! of that compaction loses nothing and brings no removed key back; growth is recorded in the
//! superblock and survives a crash at every fence (the testkit crash driver), including a
//! crash that leaves grown segments unrecorded. Figures: space amplification reached.
//!
//! INVARIANT: space amplification = used data bytes of segments holding records / encoded
//! bytes of the live records (`docs/concurrency.md`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use mcstore::pmem::{CrashMode, SimMedium};
use mcstore::recovery::format::Geometry;
use mcstore::recovery::sites;
use mcstore::{Db, Error};
use mcstore_testkit::crash::{self, CrashConfig, InFlight, Workload};
use mcstore_testkit::model::Op;
use mcstore_testkit::pools::{
    SEGMENT_BYTES, as_medium, image_medium, reopen, sim_db, small_options,
};

fn contents(db: &Db) -> BTreeMap<Vec<u8>, Vec<u8>> {
    db.iter()
        .map(|item| item.map(|(k, v)| (k.to_vec(), v.to_vec())))
        .collect::<mcstore::Result<_>>()
        .expect("iterate")
}

/// 200 keys overwritten 40 times each with values of varying size, compacting as it goes:
/// afterwards space amplification is at most 1.5, and every value is the last one written.
#[test]
fn overwrite_heavy_run_keeps_space_amplification_low() {
    let (sim, db) = sim_db(4 << 20, small_options()).expect("a pool");
    let mut model = BTreeMap::new();
    let mut worst_after_compaction: f64 = 0.0;
    for round in 0..40u32 {
        for k in 0..200u32 {
            let value = vec![(round ^ k) as u8; 100 + ((round * 7 + k) % 13) as usize * 20];
            db.put(k.to_be_bytes(), &value).expect("put");
            model.insert(k.to_be_bytes().to_vec(), value);
        }
        if round % 4 == 3 {
            db.compact().expect("compact");
            worst_after_compaction = worst_after_compaction.max(db.stats().space_amplification);
        }
    }
    db.compact().expect("compact");
    let stats = db.stats();
    mcstore::pmem::figures::record(
        "space",
        "space amplification after an overwrite-heavy run with compaction",
        format!(
            "{:.2} (worst after a pass {:.2})",
            stats.space_amplification, worst_after_compaction
        ),
    );
    assert!(stats.space_amplification <= 1.5, "{stats:?}");
    assert!(worst_after_compaction <= 1.5, "worst {worst_after_compaction}");
    assert!(stats.segments_reclaimed > 0 && stats.records_moved > 0, "{stats:?}");
    assert_eq!(contents(&db), model);
    drop(db);
    let db = reopen(&sim, small_options()).expect("reopen");
    assert_eq!(contents(&db), model);
}

/// The background compactor (no explicit `compact()`) reclaims on its own: afterwards the
/// sealed segments (everything but the open one, which compaction never cleans) hold at most
/// 1.5 × the live bytes.
#[test]
fn background_compaction_reclaims_space() {
    let options =
        small_options().background(true).compaction_interval(Some(Duration::from_millis(1)));
    let (_sim, db) = sim_db(4 << 20, options).expect("a pool");
    for round in 0..30u32 {
        for k in 0..100u32 {
            db.put(k.to_be_bytes(), vec![round as u8; 300]).expect("put: the compactor keeps up");
        }
    }
    // It runs on its own thread: wait (bounded) for it to catch up after the writes stop.
    let mut reclaimed = false;
    for _ in 0..2000 {
        let stats = db.stats();
        let sealed = stats.used_bytes - stats.open_segment_tail_bytes;
        if stats.segments_reclaimed > 0 && sealed as f64 <= 1.5 * stats.live_bytes as f64 {
            reclaimed = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(reclaimed, "{:?}", db.stats());
}

/// Fill a pool that cannot grow until `OutOfSpace` (not latched), remove most keys (every
/// eighth kept, so no segment empties by itself: its live data must be copied), compact: the
/// reserved segment takes the copies, space comes back and puts succeed again.
#[test]
fn a_full_pool_still_removes_and_recovers_space_after_compaction() {
    // Nine 64 KiB segments: pools of eight or more keep a whole segment in reserve.
    let geometry = Geometry::for_segment_size(SEGMENT_BYTES).expect("geometry");
    let (sim, db) = sim_db(geometry.pool_len_for(9), small_options()).expect("a pool");
    let mut written = 0u32;
    loop {
        match db.put(written.to_be_bytes(), vec![3u8; 1000]) {
            Ok(()) => written += 1,
            Err(Error::OutOfSpace { .. }) => break,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert!(written > 300 && !db.stats().failed, "{written}");
    assert!(matches!(db.put("more", vec![3u8; 1000]), Err(Error::OutOfSpace { .. })));
    // Removes fill the remove reserve with tombstones; when even that is full, compaction
    // (which may use it too) reclaims the segments the removes emptied, and removing goes on.
    let mut compactions = 0;
    for i in (0..written).filter(|i| i % 8 != 0) {
        match db.remove(i.to_be_bytes()) {
            Ok(old) => assert!(old.is_some()),
            Err(Error::OutOfSpace { .. }) => {
                let summary = db.compact().expect("compaction in a full pool");
                assert!(summary.segments_reclaimed >= 1, "{summary:?}");
                compactions += 1;
                db.remove(i.to_be_bytes()).expect("a remove after compaction");
            }
            Err(e) => panic!("unexpected {e}"),
        }
    }
    // Either the reserved segment held every tombstone, or compaction made room on the way.
    assert!(compactions <= 1, "{compactions} compactions");
    let summary = db.compact().expect("compaction");
    assert!(summary.segments_reclaimed >= 1, "{summary:?}");
    for i in 0..200u32 {
        db.put(format!("after{i}"), vec![4u8; 1000]).expect("space recovered");
    }
    let kept = (0..written).filter(|i| i % 8 == 0).count();
    assert_eq!(db.len(), kept + 200);
    drop(db);
    let db = reopen(&sim, small_options()).expect("reopen");
    assert_eq!(db.len(), kept + 200);
    assert_eq!(db.get(8u32.to_be_bytes()).expect("get").expect("kept"), vec![3u8; 1000]);
    assert_eq!(db.get(1u32.to_be_bytes()).expect("get"), None);
}

/// W9 in miniature: a bulk load, every other key removed (the tombstones fill the segments
/// after the load and share the load's last one), explicit compaction: every tombstone is
/// dropped and the log is packed — the segments left hold the live records with at most one
/// segment of slack. Then a crash at every fence of that compaction, both modes: no damage,
/// the contents exactly the model (no removed key back, none lost), and the dropped
/// tombstones stay dropped across a second compaction and a reopen.
#[test]
fn crash_at_every_fence_of_compaction_dropping_tombstones() {
    let key = |i: u32| format!("key{i:05}").into_bytes();
    let (sim, db) = sim_db(4 << 20, small_options()).expect("a pool");
    let mut model = BTreeMap::new();
    for i in 0..1200u32 {
        let value = vec![i as u8; 100 + (i % 7) as usize * 30];
        db.put(key(i), &value).expect("put");
        model.insert(key(i), value);
    }
    for i in (0..1200u32).step_by(2) {
        db.remove(key(i)).expect("remove");
        model.remove(&key(i));
    }
    drop(db);
    let base = sim.persistent_image();

    // The run without a crash: what compaction must achieve, and its fences.
    let dry = image_medium(base.clone());
    let db = Db::open_on(as_medium(&dry), small_options()).expect("open");
    let start = dry.fences_seen();
    let summary = db.compact().expect("compact");
    let fences = dry.fences_seen() - start;
    // A reopened store knows no segment's history: only the exact check (reading the
    // segments the bounds name) or the reclaim of every older segment lets a tombstone go.
    assert_eq!(summary.tombstones_dropped, 600, "{summary:?}");
    let stats = db.stats();
    let capacity = Geometry::for_segment_size(SEGMENT_BYTES).expect("geometry").data_capacity();
    let used_segments = u64::from(stats.segments_total - stats.segments_free);
    assert!(
        used_segments <= stats.live_bytes.div_ceil(capacity) + 1,
        "{used_segments} segments for {} live bytes: {stats:?}",
        stats.live_bytes
    );
    assert_eq!(contents(&db), model);
    let sites: std::collections::BTreeSet<_> =
        dry.fence_log().into_iter().skip(start as usize).collect();
    assert!(sites.contains(&sites::SEGMENT_RECLAIM), "{sites:?}");
    drop(db);
    let db = Db::open_on(as_medium(&dry), small_options()).expect("reopen");
    assert_eq!(contents(&db), model);
    drop(db);

    for crash_at in 1..=fences {
        let run = image_medium(base.clone());
        let db = Db::open_on(as_medium(&run), small_options()).expect("open");
        run.crash_at_fence(Some(run.fences_seen() + crash_at));
        let _ = db.compact();
        assert!(run.is_crashed(), "fence {crash_at} of {fences}");
        drop(db);
        for mode in [CrashMode::PerLinePrefix, CrashMode::AnySubset] {
            for image in run.crash_images(mode, 4, u64::from(crash_at as u32)) {
                let medium = image_medium(image);
                let db = Db::open_on(as_medium(&medium), small_options()).expect("recover");
                assert!(
                    !db.stats().failed && db.recovery_report().is_clean(),
                    "crash at {crash_at} {mode:?}: {}",
                    db.recovery_report()
                );
                assert_eq!(contents(&db), model, "crash at {crash_at} {mode:?}");
                // The interrupted compaction finished by the next one.
                db.compact().expect("compact after recovery");
                drop(db);
                let db = Db::open_on(as_medium(&medium), small_options()).expect("reopen");
                assert_eq!(contents(&db), model, "crash at {crash_at} {mode:?}, recompacted");
            }
        }
    }
}

fn put(key: &str, value: Vec<u8>) -> Op {
    Op::Put { key: key.as_bytes().to_vec(), value }
}

/// Crash at every fence of a put that grows the pool (clear the new segments' lines, record
/// the segment count in the superblock, issue a sequence, initialise, append), both modes,
/// through the testkit driver's oracle: no damage, acknowledged writes exact, the put whole or
/// absent. Then a pool whose growth crashed before the count was recorded reopens, records
/// the segments and uses them.
#[test]
fn crash_at_every_fence_of_growth() {
    let geometry = Geometry::for_segment_size(SEGMENT_BYTES).expect("geometry");
    let pool_bytes = geometry.pool_len_for(2);
    let max = geometry.pool_len_for(5);
    // 84 records of 1544 encoded bytes fill two 64 KiB segments exactly: the next put grows.
    let setup: Vec<Op> =
        (0..84).map(|i| put(&format!("fill{i:03}"), vec![i as u8; 1500])).collect();
    let workload = Workload {
        name: "growth with the segment count recorded",
        pool_bytes,
        max_pool_bytes: Some(max),
        options: small_options().max_size_bytes(max),
        setup,
        in_flight: InFlight::Op(put("grown", vec![7; 1500])),
        sites: vec![sites::GROW_SEGMENTS, sites::SUPERBLOCK_WRITE, sites::SEGMENT_HEADER],
    };
    let summary = crash::run(&workload, &CrashConfig::from_env()).expect("every image passes");
    assert!(summary.sites_crashed.contains(&sites::GROW_SEGMENTS), "{summary:?}");

    // A growth that crashed at its GROW_SEGMENTS fence or at the superblock write that
    // records the count: the file is longer than the recorded count. Recovery reads the extra
    // segments as free; the next open records them, and they are used.
    let options = small_options().max_size_bytes(max);
    let run = |crash_at: Option<u64>| {
        let sim = Arc::new(SimMedium::new(pool_bytes).with_max_len(max));
        let db = Db::create_on(as_medium(&sim), options.clone()).expect("create");
        sim.crash_at_fence(crash_at);
        for i in 0..400u32 {
            if sim.is_crashed() || db.stats().pool_bytes > pool_bytes && crash_at.is_none() {
                break;
            }
            let _ = db.put(format!("fill{i:03}"), vec![2u8; 1500]);
        }
        (sim, db)
    };
    let (dry, db) = run(None);
    drop(db);
    let grow_at =
        dry.fence_log().iter().position(|s| *s == sites::GROW_SEGMENTS).expect("grew") as u64 + 1;
    assert_eq!(dry.fence_log()[grow_at as usize], sites::SUPERBLOCK_WRITE);
    for crash_at in [grow_at, grow_at + 1] {
        let (sim, db) = run(Some(crash_at));
        assert!(sim.is_crashed());
        drop(db);
        for image in sim.crash_images(CrashMode::AnySubset, 8, crash_at) {
            let medium = image_medium(image);
            let db = Db::open_on(as_medium(&medium), options.clone()).expect("open");
            assert!(!db.stats().failed && db.recovery_report().is_clean());
            let before = db.len();
            for j in 0..60u32 {
                db.put(format!("later{j:03}"), vec![3u8; 1500])
                    .expect("the pool grows and is used");
            }
            drop(db);
            let db = Db::open_on(as_medium(&medium), small_options()).expect("reopen");
            assert!(db.recovery_report().is_clean(), "{}", db.recovery_report());
            assert_eq!(db.len(), before + 60);
        }
    }
}
