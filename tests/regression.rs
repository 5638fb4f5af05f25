//! Regression tests: every fuzz corpus entry replayed through the fuzz target bodies on stable
//! (`fuzz/corpus/<target>/`), the committed seeds regenerated and compared, and one test per bug
//! a test or a fuzzer found, named after what it found.

use std::path::{Path, PathBuf};

use mcstore_testkit::fuzz;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join("corpus").join(target)
}

fn replay(target: &str, body: fn(&[u8])) -> usize {
    let dir = corpus_dir(target);
    let mut replayed = 0;
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        let input = std::fs::read(&path).expect("a corpus file");
        // A panic names the input through the test's failure output.
        eprintln!("replaying {}", path.display());
        body(&input);
        replayed += 1;
    }
    replayed
}

#[test]
fn codec_corpus_replays() {
    assert!(replay("codec", fuzz::codec) >= 2);
}

#[test]
fn recover_image_corpus_replays() {
    assert!(replay("recover_image", fuzz::recover_image) >= 4);
}

#[test]
fn crash_ops_corpus_replays() {
    assert!(replay("crash_ops", fuzz::crash_ops) >= 16);
}

#[test]
fn poison_ops_corpus_replays() {
    assert!(replay("poison_ops", fuzz::poison_ops) >= 16);
}

#[test]
fn mapped_poison_corpus_replays() {
    assert!(replay("mapped_poison", fuzz::mapped_poison) >= 9);
}

#[test]
fn scan_ahead_corpus_replays() {
    assert!(replay("scan_ahead", fuzz::scan_ahead) >= 5);
}

/// Every target in `fuzz/Cargo.toml` has a body here and a committed corpus.
#[test]
fn every_fuzz_target_has_a_body_and_a_corpus() {
    let manifest = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join("Cargo.toml"),
    )
    .expect("fuzz/Cargo.toml");
    let bins: Vec<&str> = manifest
        .lines()
        .filter_map(|line| line.strip_prefix("name = \""))
        .filter_map(|rest| rest.strip_suffix('"'))
        .filter(|name| *name != "mcstore-fuzz")
        .collect();
    let bodies: Vec<&str> = fuzz::TARGETS.iter().map(|(name, _)| *name).collect();
    assert_eq!(bins, bodies);
    for name in bodies {
        assert!(corpus_dir(name).is_dir(), "no corpus for {name}");
    }
}

/// The committed seeds are what `fuzz::seed_inputs` builds (so they stay meaningful when the
/// format changes: regenerate with `MCSTORE_WRITE_SEEDS=1`).
#[test]
fn committed_seeds_match_the_seed_builder() {
    let write = std::env::var_os("MCSTORE_WRITE_SEEDS").is_some();
    for (target, name, input) in fuzz::seed_inputs() {
        let path = corpus_dir(target).join(format!("seed-{name}"));
        if write {
            std::fs::create_dir_all(corpus_dir(target)).expect("corpus dir");
            std::fs::write(&path, &input).expect("write seed");
        }
        let committed = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(committed, input, "{} is stale", path.display());
    }
}

/// Found by the state machine (`tests/machine.rs`) and `poison_ops`: poison on the primary's
/// replica-set table slot at 8192 made the open fail ("write to poisoned range at offset 8192
/// (+64): repair or quarantine it first") although the replica held a good table. The open now
/// heals the slot from the replica before writing the table (`replica::table_heal`), counts the
/// repair, and the slot reads clean afterwards.
#[test]
fn poisoned_primary_table_slot_with_a_good_replica_opens() {
    use std::sync::Arc;

    use mcstore::pmem::{Medium, MemberId, SimMedium};
    use mcstore::recovery::replica::TABLE_SLOT_OFFSETS;
    use mcstore_testkit::pools::small_options;

    let sims: Vec<Arc<SimMedium>> =
        (0..2).map(|i| Arc::new(SimMedium::with_member(256 << 10, MemberId(i)))).collect();
    let members = || sims.iter().map(|s| s.clone() as Arc<dyn Medium>);
    let db = mcstore::Db::create_on_replicas(members().collect(), small_options()).unwrap();
    db.put("a", "1").unwrap();
    drop(db);
    sims[0].inject_poison(TABLE_SLOT_OFFSETS[0], 64).unwrap();
    let db = mcstore::Db::open_on_replicas(members().map(Some).collect(), small_options())
        .expect("a good replica table exists");
    assert_eq!(db.get("a").unwrap().as_deref(), Some(&b"1"[..]));
    assert!(db.stats().replica_repairs >= 1, "the healed slot is counted as a repair");
    db.put("b", "2").unwrap();
    drop(db);
    let mut page = vec![0u8; mcstore::recovery::replica::TABLE_BYTES];
    let mut register = mcstore::pmem::ErrorRegister::deferred();
    sims[0]
        .read(TABLE_SLOT_OFFSETS[0], &mut page, &mut register, mcstore::pmem::Domain::Engine)
        .unwrap();
    assert!(register.is_clean(), "the primary's slot was healed");
    let db = mcstore::Db::open_on_replicas(members().map(Some).collect(), small_options())
        .expect("reopen");
    assert_eq!(db.get("b").unwrap().as_deref(), Some(&b"2"[..]));
}

/// The same poison on every member's table slots: no member holds good bytes there, so the open
/// rewrites the slots logically (the chosen table in its slot, zeros in the other) and succeeds.
#[test]
fn table_slots_poisoned_on_every_member_are_rewritten_at_open() {
    use std::sync::Arc;

    use mcstore::pmem::{Medium, MemberId, SimMedium};
    use mcstore::recovery::replica::TABLE_SLOT_OFFSETS;
    use mcstore_testkit::pools::small_options;

    let sims: Vec<Arc<SimMedium>> =
        (0..2).map(|i| Arc::new(SimMedium::with_member(256 << 10, MemberId(i)))).collect();
    let members = || sims.iter().map(|s| s.clone() as Arc<dyn Medium>);
    let db = mcstore::Db::create_on_replicas(members().collect(), small_options()).unwrap();
    db.put("a", "1").unwrap();
    drop(db);
    // One slot (the older generation) everywhere; the newest slot stays readable on both.
    let table = mcstore::recovery::replica::SetTable::read(sims[0].as_ref()).unwrap();
    let older = TABLE_SLOT_OFFSETS[1 - table.slot()];
    for sim in &sims {
        sim.inject_poison(older, 64).unwrap();
    }
    let db = mcstore::Db::open_on_replicas(members().map(Some).collect(), small_options())
        .expect("the newest table is readable everywhere");
    assert_eq!(db.get("a").unwrap().as_deref(), Some(&b"1"[..]));
    db.put("b", "2").unwrap();
    drop(db);
    let db = mcstore::Db::open_on_replicas(members().map(Some).collect(), small_options())
        .expect("reopen");
    assert_eq!(db.get("b").unwrap().as_deref(), Some(&b"2"[..]));
}

/// Found by the `codec` fuzz target (CI's smoke run at `2d59502`): a record whose padding bytes
/// were not zero, with a checksum computed over them (the fuzzer took the checksum from the
/// comparison it watched), decoded as valid and re-encoded to other bytes. The format says the
/// padding is zero; both decoders now refuse other padding.
#[test]
fn a_record_with_nonzero_padding_under_its_checksum_is_refused() {
    use mcstore::recovery::FormatError;
    use mcstore::recovery::format::record::decode_record;

    let input = std::fs::read(corpus_dir("codec").join("found-nonzero-padding-under-its-checksum"))
        .expect("the committed input");
    fuzz::codec(&input);
    let (ctx, record) = fuzz::codec_record(&input);
    let decoded = decode_record(record, &ctx);
    assert!(
        matches!(decoded, Err(FormatError::InvalidField { field: "record padding", .. })),
        "{decoded:?}"
    );
}
