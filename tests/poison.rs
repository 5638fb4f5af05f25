//! Poisoned media under the commit barrier's policy (`docs/policy.md`): a poisoned value fails
//! only its own key (SimMedium, and a real SIGBUS on a MappedMedium in /dev/shm); poison in the
//! log found at open is Engine-domain damage (Latch: failed store with a report; Fail and Halt:
//! `Err(Damaged)`); `Halt` on a User read runs the hook and aborts (a re-executed child).

use std::sync::Arc;

use mcstore::pmem::{Domain, MapOptions, MappedMedium, Medium, MemberId, ModeRequest, SimMedium};
use mcstore::recovery::format::{Geometry, SegmentId};
use mcstore::{Db, EngineFallback, Error, Policy, UserFallback};
use mcstore_testkit::pools::{SEGMENT_BYTES, as_medium, reopen, sim_db, small_options};

use crate::support::{MemberPair, child_role, distinct_value, find_unique, run_child, shm_dir};

fn expect_media_error(result: mcstore::Result<impl std::fmt::Debug>, key: &[u8], at: (u64, u64)) {
    match result {
        Err(Error::Media { domain, member, offset, len, key: named }) => {
            assert_eq!(domain, Domain::User);
            assert_eq!(member, MemberId(0));
            assert!(offset <= at.0 && at.0 + at.1 <= offset + len, "range {offset}+{len}");
            assert_eq!(named.as_deref(), Some(key));
        }
        other => panic!("expected Error::Media naming {}, got {other:?}", key.escape_ascii()),
    }
}

#[test]
fn poisoned_value_on_sim_fails_its_key_only() {
    let (sim, db) = sim_db(512 << 10, small_options()).expect("sim_db");
    let keys: Vec<Vec<u8>> = (0..20u8).map(|i| format!("key{i:02}").into_bytes()).collect();
    for (i, key) in keys.iter().enumerate() {
        db.put(key, distinct_value(i as u8, 400)).expect("put");
    }
    let victim = &keys[7];
    let at = find_unique(&sim.visible_image(), &distinct_value(7, 400));
    let line = (at + 128) & !63;
    sim.inject_poison(line, 64).expect("inject");
    expect_media_error(db.get(victim), victim, (line, 64));
    expect_media_error(db.get_into(victim, &mut Vec::new()), victim, (line, 64));
    expect_media_error(db.insert(victim, "x"), victim, (line, 64));
    expect_media_error(db.remove(victim), victim, (line, 64));
    expect_media_error(db.compare_and_swap(victim, None::<&[u8]>, Some("x")), victim, (line, 64));
    assert!(db.contains_key(victim).expect("index only"), "the key is still there");
    for (i, key) in keys.iter().enumerate().filter(|(_, k)| *k != victim) {
        assert_eq!(
            db.get(key).expect("other keys read").as_deref(),
            Some(&distinct_value(i as u8, 400)[..])
        );
    }
    // Iteration: exactly the victim's item is an error; the others come through.
    let items: Vec<_> = db.iter().collect();
    assert_eq!(items.len(), keys.len());
    let errors: Vec<_> = items.iter().filter_map(|item| item.as_ref().err()).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].key(), Some(&victim[..]));
    // Nothing was written by the refused operations; the store carries on.
    assert!(!db.stats().failed);
    db.put("after", "still writable").expect("put after poison");
    assert_eq!(db.len(), keys.len() + 1);
}

/// A poisoned page of a value in a mapped pool: the copy takes a real SIGBUS and survives it.
#[test]
fn poisoned_value_on_mapped_medium_fails_its_key_only_with_real_sigbus() {
    let dir = shm_dir();
    let path = dir.path().join("pool");
    let map = MapOptions::new().mode(ModeRequest::ForcedPmem).max_len(1 << 20);
    let medium = Arc::new(MappedMedium::create(&path, 1 << 20, &map).expect("create the file"));
    let shared: Arc<dyn Medium> = medium.clone();
    let db = Db::create_on(shared, small_options()).expect("create_on the mapped medium");
    let big = distinct_value(1, 3 * 4096);
    db.put("small-before", "a").expect("put");
    db.put("big", &big).expect("put");
    db.put("small-after", "b").expect("put");
    // The pool file shares its pages with the mapping (tmpfs): find a page wholly inside `big`.
    let at = find_unique(&std::fs::read(&path).expect("read the pool file"), &big);
    let page = (at + 4095) & !4095;
    assert!(page + 4096 <= at + big.len() as u64);
    medium.inject_poison(page, 4096).expect("inject poison");
    expect_media_error(db.get("big"), b"big", (page, 4096));
    assert_eq!(db.get("small-before").expect("get").as_deref(), Some(&b"a"[..]));
    assert_eq!(db.get("small-after").expect("get").as_deref(), Some(&b"b"[..]));
    assert!(!db.stats().failed);
    assert!(db.stats().read_faults >= 1);
}

/// Large values in a mapped pool, whose gets copy and hash the value in one pass
/// (`mcsafe::read_safe_hashing`): every length around the stripe, page and piece sizes, with
/// short and long keys, reads back exactly through `get` and a reused `get_into` buffer; a byte
/// changed in the file under a value, anywhere in it, fails that get as corrupt.
#[test]
fn large_values_on_a_mapped_medium_read_back_exactly_and_a_changed_byte_fails() {
    let dir = shm_dir();
    let path = dir.path().join("pool");
    let map = MapOptions::new().mode(ModeRequest::ForcedPmem).max_len(8 << 20);
    let medium = Arc::new(MappedMedium::create(&path, 8 << 20, &map).expect("create the file"));
    let db = Db::create_on(medium, small_options()).expect("create_on the mapped medium");
    let lens = [513, 600, 1000, 1025, 4095, 4096, 4097, 16_383, 16_385, 40_000, 60_000];
    let keys = |i: usize| {
        [vec![b'k'; 1], vec![b'm'; 16], vec![b'n'; 200]].map(|mut key| {
            key.push(i as u8);
            key
        })
    };
    for (i, &len) in lens.iter().enumerate() {
        for (j, key) in keys(i).iter().enumerate() {
            db.put(key, distinct_value((3 * i + j) as u8, len)).expect("put");
        }
    }
    let mut out = vec![0xee; 70_000];
    for (i, &len) in lens.iter().enumerate() {
        for (j, key) in keys(i).iter().enumerate() {
            let value = distinct_value((3 * i + j) as u8, len);
            assert_eq!(db.get(key).expect("get").as_deref(), Some(&value[..]), "{len} B, key {j}");
            assert!(db.get_into(key, &mut out).expect("get_into"));
            assert_eq!(out, value, "get_into, {len} B, key {j}");
        }
    }
    let key = b"changed";
    let value = distinct_value(200, 40_000);
    db.put(key, &value).expect("put");
    let at = find_unique(&std::fs::read(&path).expect("read the pool file"), &value);
    let file = std::fs::OpenOptions::new().write(true).open(&path).expect("open the pool file");
    for within in [0, 63, 64, 4000, 20_000, 39_935, 39_999] {
        let offset = at + within;
        std::os::unix::fs::FileExt::write_at(&file, &[value[within as usize] ^ 0x10], offset)
            .expect("change a byte");
        match db.get(key) {
            Err(Error::Corrupt { key: named, .. }) => assert_eq!(named.as_deref(), Some(&key[..])),
            other => panic!("byte {within} changed: expected Corrupt, got {other:?}"),
        }
        std::os::unix::fs::FileExt::write_at(&file, &value[within as usize..][..1], offset)
            .expect("restore the byte");
        assert_eq!(db.get(key).expect("get").as_deref(), Some(&value[..]), "byte {within}");
    }
    assert!(!db.stats().failed);
}

fn first_segment_header() -> u64 {
    Geometry::for_segment_size(SEGMENT_BYTES).expect("geometry").segment_offset(SegmentId(0))
}

#[test]
fn poisoned_segment_header_at_open_latches_by_default() {
    let (sim, db) = sim_db(512 << 10, small_options()).expect("sim_db");
    db.put("a", "1").expect("put");
    drop(db);
    sim.inject_poison(first_segment_header(), 64).expect("inject");
    // docs/policy.md: under Latch, open succeeds into the failed state; the report says why.
    let db = reopen(&sim, small_options()).expect("open under Latch");
    assert!(db.stats().failed);
    assert!(db.recovery_report().damage_found >= 1);
    assert!(!db.recovery_report().is_clean());
    assert!(db.get("a").expect_err("failed store").is_failed());
    assert!(db.put("b", "2").expect_err("failed store").is_failed());
    assert!(db.remove("a").expect_err("failed store").is_failed());
    assert!(db.sync().expect_err("failed store").is_failed());
    let fences = sim.fences_seen();
    drop(db);
    assert_eq!(
        sim.fences_seen(),
        fences,
        "nothing is written to a damaged pool, not even at close"
    );
    // Fail and Halt at open: Err(Damaged) with the report; no abort.
    for fallback in [EngineFallback::Fail, EngineFallback::Halt] {
        let options = small_options().policy(Policy::default().engine(true, fallback));
        match Db::open_on(as_medium(&sim), options) {
            Err(Error::Damaged(report)) => assert!(report.damage_found >= 1),
            other => panic!("{fallback:?}: expected Err(Damaged), got {other:?}"),
        }
    }
}

#[test]
fn poisoned_value_found_at_open_is_engine_damage() {
    let (sim, db) = sim_db(512 << 10, small_options()).expect("sim_db");
    db.put("victim", distinct_value(3, 500)).expect("put");
    db.put("other", "fine").expect("put");
    drop(db);
    let at = find_unique(&sim.persistent_image(), &distinct_value(3, 500));
    let line = (at + 128) & !63;
    sim.inject_poison(line, 64).expect("inject");
    let options = small_options().policy(Policy::default().engine(true, EngineFallback::Fail));
    match Db::open_on(as_medium(&sim), options) {
        Err(Error::Damaged(report)) => {
            let lost = &report.lost_ranges;
            assert!(lost.iter().any(|&(o, l)| o <= line && line < o + l), "{report}");
        }
        other => panic!("expected Err(Damaged), got {other:?}"),
    }
}

const HALT_TEST: &str = "poison::user_halt_runs_the_hook_then_aborts";
const HALT_MARKER: &str = "MCSTORE_IT_HALT_MARKER";

/// `Halt` on a poisoned value: the hook runs (it writes a marker file), then the process
/// aborts. The child is this binary re-executed on this one test.
#[test]
fn user_halt_runs_the_hook_then_aborts() {
    if child_role().as_deref() == Some("halt") {
        let marker = std::env::var_os(HALT_MARKER).expect("marker path");
        let policy = Policy::default().user(true, UserFallback::Halt).on_halt(move |report| {
            std::fs::write(&marker, report.to_string()).expect("write the marker");
        });
        let sim = Arc::new(SimMedium::new(512 << 10));
        let db = Db::create_on(as_medium(&sim), small_options().policy(policy)).expect("create_on");
        db.put("victim", distinct_value(9, 400)).expect("put");
        let at = find_unique(&sim.visible_image(), &distinct_value(9, 400));
        sim.inject_poison((at + 128) & !63, 64).expect("inject");
        let returned = db.get("victim");
        eprintln!("not reached: get returned {returned:?}");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("halted");
    let output = run_child(HALT_TEST, "halt", &[(HALT_MARKER, &marker)]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(output.status.signal(), Some(libc::SIGABRT), "status {:?}: {stderr}", output.status);
    assert!(!stderr.contains("not reached"), "{stderr}");
    let report = std::fs::read_to_string(&marker).expect("the hook wrote its marker");
    assert!(report.contains("key victim") && report.contains("User"), "{report}");
}

/// A page of the log listed in the pool's `.badblocks` sidecar: `Db::open` by path maps it as
/// emulated poison (a real SIGBUS on every access), recovery meets it in the Engine domain, and
/// the default policy latches: the store opens failed, its report lists the page.
#[test]
fn badblocks_sidecar_over_the_log_is_engine_damage_at_open() {
    let dir = shm_dir();
    let path = dir.path().join("pool");
    let options = small_options().size_bytes(1 << 20).mode(mcstore::Mode::ForcedPmem);
    let db = Db::create(&path, options.clone()).expect("create");
    let big = distinct_value(2, 3 * 4096);
    db.put("big", &big).expect("put");
    db.put("other", "x").expect("put");
    db.close().expect("close");
    let at = find_unique(&std::fs::read(&path).expect("read the pool file"), &big);
    let page = (at + 4095) & !4095;
    let sidecar = mcstore::pmem::BadBlocks::sidecar_path(&path);
    mcstore::pmem::BadBlocks::add(&sidecar, (page, 4096)).expect("list the page");
    let db = Db::open(&path, options).expect("open under Latch");
    assert!(db.stats().failed);
    let report = db.recovery_report();
    assert!(report.lost_ranges.iter().any(|&(o, l)| o <= page && page < o + l), "{report}");
    assert!(db.get("other").expect_err("failed store").is_failed());
}

/// The bytes of `path` in `[offset, +len)`, read from the file (not through a mapping).
fn file_bytes(path: &std::path::Path, offset: u64, len: u64) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let mut out = vec![0u8; len as usize];
    std::fs::File::open(path).expect("open").read_exact_at(&mut out, offset).expect("read");
    out
}

/// Overwrite 20 keys `rounds` times, compacting after each round, so the log rolls through
/// every usable segment again and again; the last value of key `k` is `[round + k; 3000]`.
fn churn(db: &Db, rounds: std::ops::Range<u32>) {
    for round in rounds.clone() {
        for k in 0..20u32 {
            db.put(k.to_be_bytes(), vec![(round + k) as u8; 3000]).expect("put");
        }
        db.compact().expect("compact");
    }
    let last = rounds.end - 1;
    for k in 0..20u32 {
        let want = vec![(last + k) as u8; 3000];
        assert_eq!(db.get(k.to_be_bytes()).expect("get").as_deref(), Some(&want[..]));
    }
    assert!(!db.stats().failed);
}

/// Issue [4]: a range no member holds good bytes for (both members' bad-block lists name it at
/// open) is quarantined, and the allocator never writes its segment: the files' bytes there stay
/// as they were while the log rolls through every other segment many times; the data stays
/// right; after reopen the same.
#[test]
fn a_quarantined_range_is_never_written_also_after_reopen() {
    const SEGMENTS: u64 = 10;
    let dir = shm_dir();
    let (primary, replica) = (dir.path().join("pool"), dir.path().join("replica"));
    let len = SEGMENT_BYTES * (SEGMENTS + 1);
    let options =
        small_options().mode(mcstore::Mode::ForcedPmem).size_bytes(len).replicas([&replica]);
    Db::create(&primary, options.clone()).expect("create").close().expect("close");
    let g = Geometry::for_pool(len, SEGMENT_BYTES).expect("geometry");
    let bad = (g.data_start(SegmentId(4)) + 8192, 4096);
    let segment = (g.segment_offset(SegmentId(4)), SEGMENT_BYTES);
    for path in [&primary, &replica] {
        mcstore::pmem::BadBlocks::add(&mcstore::pmem::BadBlocks::sidecar_path(path), bad)
            .expect("sidecar");
    }
    let before = [&primary, &replica].map(|p| file_bytes(p, segment.0, segment.1));
    for round in 0..2 {
        let db = Db::open(&primary, options.clone()).expect("open");
        let set = db.replica_set().expect("a replica set");
        let lost: Vec<(MemberId, u64, u64)> =
            set.quarantined().iter().map(|q| (q.member, q.offset, q.len)).collect();
        assert_eq!(lost, vec![(MemberId(0), bad.0, bad.1), (MemberId(1), bad.0, bad.1)]);
        assert_eq!(db.quarantined_segments(), vec![4]);
        let rolls = db.stats().segment_rolls;
        churn(&db, round * 40..round * 40 + 40);
        assert!(db.stats().segment_rolls >= rolls + 3 * SEGMENTS, "{:?}", db.stats());
        for (path, bytes) in [&primary, &replica].iter().zip(&before) {
            assert!(file_bytes(path, segment.0, segment.1) == *bytes, "{path:?} segment 4 written");
        }
        db.close().expect("close");
    }
}

/// Issue [4]: a replica page that is poisoned when a lockstep write reaches it is healed in
/// place from the primary, then written; the replica stays in sync and, alone, holds every
/// value. On SimMedium members and on mapped members in /dev/shm with real emulated poison
/// (a store there would raise SIGBUS, so the heal must come first).
#[test]
fn a_poisoned_replica_page_met_by_a_write_is_healed_not_made_stale() {
    let len = SEGMENT_BYTES * 6;
    let dir = shm_dir();
    for pair in MemberPair::both_kinds(len, dir.path(), "m") {
        let members = pair.members();
        let replica = members[1].clone();
        let db = Db::create_on_replicas(members, small_options()).expect("create");
        db.put("first", distinct_value(1, 3000)).expect("put");
        let mut image = vec![0u8; replica.len() as usize];
        let mut register = mcstore::pmem::ErrorRegister::deferred();
        replica.read(0, &mut image, &mut register, Domain::Engine).expect("read");
        let at = find_unique(&image, &distinct_value(1, 3000));
        // The page after the first value: the next puts land there.
        pair.poison(1, (at / 4096 + 1) * 4096);
        for i in 2..6u8 {
            db.put(format!("key{i}"), distinct_value(i, 3000)).expect("put");
        }
        let stats = db.stats();
        assert_eq!(stats.replicas_not_in_sync, 0, "{stats:?}");
        assert!(stats.replica_repairs >= 1 && stats.bytes_repaired >= 4096, "{stats:?}");
        drop(db);
        let alone = Db::open_on(replica, small_options().read_only(true)).expect("replica alone");
        assert_eq!(alone.get("first").expect("get"), Some(distinct_value(1, 3000).into()));
        for i in 2..6u8 {
            let got = alone.get(format!("key{i}")).expect("get");
            assert_eq!(got.as_deref(), Some(&distinct_value(i, 3000)[..]));
        }
        assert!(!pair.is_poisoned(1), "the replica's page was healed");
    }
}

/// Issue [4]: poison the store does not know about on the PRIMARY, in pages of free segments,
/// is met by the writes that roll into them: each page is healed from the replica (whose bytes
/// there read clean; the write overwrites them) and the write lands. Every put succeeds, the
/// store is not latched, the set counts the heals; after reopen every value is right. On
/// SimMedium members and on mapped members in /dev/shm with real emulated poison.
#[test]
fn a_poisoned_primary_page_met_by_a_write_is_healed_from_the_replica() {
    const SEGMENTS: u64 = 6;
    let len = SEGMENT_BYTES * SEGMENTS;
    let g = Geometry::for_pool(len, SEGMENT_BYTES).expect("geometry");
    let dir = shm_dir();
    for pair in MemberPair::both_kinds(len, dir.path(), "p") {
        let members = pair.members();
        let db = Db::create_on_replicas(members.clone(), small_options()).expect("create");
        db.put("first", distinct_value(1, 3000)).expect("put");
        let primary = &members[0];
        let mut image = vec![0u8; primary.len() as usize];
        let mut register = mcstore::pmem::ErrorRegister::deferred();
        primary.read(0, &mut image, &mut register, Domain::Engine).expect("read");
        let used = g.segment_of(find_unique(&image, &distinct_value(1, 3000))).expect("segment");
        // A page in the middle of every other (free) segment.
        for s in (0..g.segment_count(len)).filter(|&s| SegmentId(s) != used) {
            pair.poison(0, g.data_start(SegmentId(s)) + 8192);
        }
        for i in 0..60u8 {
            db.put(format!("key{i}"), distinct_value(i, 3000)).expect("put over primary poison");
        }
        let stats = db.stats();
        assert!(!stats.failed, "{stats:?}");
        assert_eq!(stats.replicas_not_in_sync, 0, "{stats:?}");
        let heals = db.replica_set().expect("a set").poolset().stats().write_heals;
        assert!(heals >= 2, "the log rolled over poisoned pages of two segments: {heals}");
        db.close().expect("close");
        let db = Db::open_on_replicas(members.into_iter().map(Some).collect(), small_options())
            .expect("reopen");
        assert_eq!(db.get("first").expect("get"), Some(distinct_value(1, 3000).into()));
        for i in 0..60u8 {
            let got = db.get(format!("key{i}")).expect("get");
            assert_eq!(got.as_deref(), Some(&distinct_value(i, 3000)[..]), "key{i}");
        }
        assert!(!db.stats().failed);
    }
}

/// Issue [4]: `Options::replicas_on_failure(MemberFailure::FailWrite)` reaches the set made by
/// `Db::create_on_replicas`: a replica whose write fails makes the put fail with a typed error
/// (the member's), the replica is marked stale, and the put is not acknowledged; what was
/// acknowledged before is all there after reopen. The default carries on degraded instead.
#[test]
fn fail_write_option_fails_the_put_when_a_replica_write_fails() {
    use mcstore::pmem::poolset::MemberFailure;
    use mcstore::pmem::sim::SimOp;
    let len = SEGMENT_BYTES * 6;
    for failure in [MemberFailure::FailWrite, MemberFailure::MarkStale] {
        let sims: Vec<Arc<SimMedium>> =
            (0..2).map(|i| Arc::new(SimMedium::with_member(len, MemberId(i)))).collect();
        let members: Vec<Arc<dyn Medium>> = sims.iter().map(as_medium).collect();
        let options = small_options().replicas_on_failure(failure);
        let db = Db::create_on_replicas(members.clone(), options).expect("create");
        db.put("before", distinct_value(1, 300)).expect("put");
        sims[1].fail_nth(SimOp::Write, 1, true);
        let result = db.put("failed", distinct_value(2, 300));
        let stats = db.stats();
        assert_eq!(stats.replicas_not_in_sync, 1, "{stats:?}");
        match failure {
            MemberFailure::FailWrite => {
                let err = result.expect_err("the replica's failure fails the put");
                assert!(
                    matches!(&err, Error::Io { source, .. }
                        if source.to_string().contains("simulated write failure")),
                    "{err:?}"
                );
                assert_eq!(stats.keys, 1, "the failed put is not acknowledged: {stats:?}");
            }
            MemberFailure::MarkStale => {
                result.expect("the default carries on degraded");
                assert_eq!((stats.keys, stats.failed), (2, false), "{stats:?}");
            }
        }
        drop(db);
        sims[1].clear_failures();
        let db = Db::open_on(as_medium(&sims[0]), small_options().read_only(true)).expect("open");
        assert_eq!(db.get("before").expect("get"), Some(distinct_value(1, 300).into()));
        if failure == MemberFailure::MarkStale {
            assert_eq!(db.get("failed").expect("get"), Some(distinct_value(2, 300).into()));
        }
    }
}
