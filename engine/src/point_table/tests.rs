//! The point table's tests: lookups, removals and growths against a model, and the
//! background growth held at each of its stages (`Gate`) while the writer goes on.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize};

use super::growth::{
    GROWING_LOAD_DEN, GROWING_LOAD_NUM, PREPARE_AT_DEN, PREPARE_AT_NUM, PREPARE_NEXT_MIN_BYTES,
};
use super::slot::EMPTY;
use super::table::PARALLEL_TOUCH_MIN_BYTES;
use super::*;

/// Tables allocated so far (`Table::serial`).
pub(crate) static TABLES_ALLOCATED: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// Hashes are ANDed with this (tests of equal fingerprints narrow it).
    pub(crate) static HASH_MASK: Cell<u64> = const { Cell::new(u64::MAX) };
    /// Tables dropped on this thread that are large enough (`PREPARE_NEXT_MIN_BYTES`) to be
    /// dropped on threads of their own when let go of (a smaller one is dropped in place).
    pub(crate) static LARGE_DROPPED_HERE: Cell<usize> = const { Cell::new(0) };
}

/// A gate a growth's copy waits at: held, reached (the copy waits there), open. The copy
/// also counts here what it did: the slots its scan got past, and the replay rounds it
/// started.
pub(crate) struct Gate {
    state: AtomicU32,
    pub(super) scanned: AtomicUsize,
    pub(super) rounds: AtomicUsize,
}

impl Gate {
    fn held() -> Arc<Self> {
        let (scanned, rounds) = (AtomicUsize::new(0), AtomicUsize::new(0));
        Arc::new(Gate { state: AtomicU32::new(0), scanned, rounds })
    }

    /// The copy's side: say it got here, and wait until the gate opens (or panic, if the
    /// test failed the gate).
    pub(super) fn wait(&self) {
        let _ = self.state.compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst);
        loop {
            match self.state.load(Ordering::SeqCst) {
                2 => return,
                3 => panic!("the test failed the copy"),
                _ => std::thread::sleep(std::time::Duration::from_millis(1)),
            }
        }
    }

    fn fail(&self) {
        self.state.store(3, Ordering::SeqCst);
    }

    /// Wait until the copy waits at the gate.
    fn reached(&self) {
        while self.state.load(Ordering::SeqCst) == 0 {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    fn open(&self) {
        self.state.store(2, Ordering::SeqCst);
    }
}

fn at(n: u64) -> Location {
    Location { offset: n * 64, len: n as u32 + 1, segment_seq: n + 2, lsn: n + 3 }
}

fn pair(e: &(Vec<u8>, Location)) -> Option<(&[u8], Location)> {
    Some((&e.0[..], e.1))
}

fn empty() -> (PointTable, Writer) {
    PointTable::build(&[], &pair, 1, usize::MAX, None)
}

pub(crate) fn key(i: u64, long: bool) -> Vec<u8> {
    let mut key = i.to_be_bytes().to_vec();
    if long {
        key.extend_from_slice(&[i as u8; 20]);
    }
    key
}

/// Against a `HashMap` model: inserts, updates, removes and re-inserts of short and long
/// keys, through growth and rebuilds that drop deleted slots; with `mask` narrowing hashes
/// so that many different keys share a fingerprint.
fn matches_a_model(mask: u64) {
    HASH_MASK.with(|m| m.set(mask));
    let (table, mut writer) = empty();
    let mut model: HashMap<Vec<u8>, Location> = HashMap::new();
    let mut x = 11u64;
    for step in 0..20_000u64 {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let k = key((x >> 33) % 3000, x & 1 == 1);
        if (x >> 20).is_multiple_of(4) {
            assert_eq!(table.remove(&mut writer, &k), model.remove(&k), "step {step}");
        } else {
            let old = table.upsert(&mut writer, &k, at(step));
            assert_eq!(old, model.insert(k.clone(), at(step)), "step {step}");
        }
        assert_eq!(writer.live, model.len());
        if step % 1000 == 999 {
            // The table a growth published (and is copying from) has tags, each its slot's.
            assert_eq!(writer.table.tags_agree(), Some(true), "step {step}");
        }
    }
    // Growths whose copies raced the writes above: every count exact once the last ends.
    table.end_growth(&mut writer);
    matches(&table, &writer, &model);
    for i in 0..3000 {
        for long in [false, true] {
            let k = key(i, long);
            assert_eq!(table.get(&k), model.get(&k).copied());
        }
    }
    assert!(table.get(b"").is_none());
    table.clear(&mut writer);
    assert!(model.keys().all(|k| table.get(k).is_none()));
    HASH_MASK.with(|m| m.set(u64::MAX));
}

#[test]
fn matches_a_hashmap() {
    matches_a_model(u64::MAX);
}

#[test]
fn keys_sharing_a_fingerprint_stay_apart() {
    matches_a_model(0x7);
}

/// A build of no items asked to run on several threads from the first item on makes an
/// empty table (no empty run is cut).
#[test]
fn an_empty_bulk_build_on_threads_is_empty() {
    let (table, writer) = PointTable::build(&[], &pair, 4, 0, None);
    assert_eq!((writer.live(), writer.used()), (0, 0));
    assert!(table.get(&key(1, false)).is_none());
}

/// A bulk-built table (recovery's) has no tags, and its writer probes the slots; the table
/// its first growth publishes has tags, each its slot's, through puts and removals. In both,
/// a key removed and put back takes its deleted slot again (no slot more is used).
#[test]
fn a_bulk_built_table_has_no_tags_until_it_grows() {
    let entries: Vec<(Vec<u8>, Location)> = (0..100).map(|i| (key(i, i % 2 == 0), at(i))).collect();
    let (table, mut writer) = PointTable::build(&entries, &pair, 1, usize::MAX, None);
    assert_eq!(table.table.load().tags_agree(), None, "no tags");
    let used = writer.used;
    assert_eq!(table.remove(&mut writer, &entries[3].0), Some(at(3)));
    assert_eq!(table.upsert(&mut writer, &entries[3].0, at(500)), None);
    assert_eq!(writer.used, used, "the deleted slot taken again, without tags");
    let mut model: HashMap<Vec<u8>, Location> = entries.iter().cloned().collect();
    model.insert(entries[3].0.clone(), at(500));
    let capacity = table.capacity();
    let mut i = 100;
    while table.capacity() == capacity {
        let k = key(i, i % 2 == 0);
        assert_eq!(table.upsert(&mut writer, &k, at(i)), None);
        model.insert(k, at(i));
        i += 1;
    }
    assert_eq!(table.table.load().tags_agree(), Some(true), "the grown table has tags");
    for j in 0..50 {
        let k = key(1000 + j, j % 2 == 0);
        assert_eq!(table.upsert(&mut writer, &k, at(j)), None);
        model.insert(k, at(j));
        let gone = key(j, j % 2 == 0);
        assert_eq!(table.remove(&mut writer, &gone), model.remove(&gone));
    }
    let used = writer.used;
    let back = key(7, false);
    assert_eq!(table.remove(&mut writer, &back), None, "removed above");
    assert_eq!(table.upsert(&mut writer, &back, at(7)), None);
    model.insert(back, at(7));
    assert_eq!(writer.used, used, "the deleted slot taken again, by its tag");
    matches(&table, &writer, &model);
}

#[test]
fn bulk_build_on_threads_finds_every_key() {
    let entries: Vec<(Vec<u8>, Location)> =
        (0..5000).map(|i| (key(i, i % 3 == 0), at(i))).collect();
    // Every 11th item is skipped (a tombstone in recovery's entries).
    fn pick(e: &(Vec<u8>, Location)) -> Option<(&[u8], Location)> {
        (!e.1.lsn.is_multiple_of(11)).then_some((&e.0[..], e.1))
    }
    let (table, mut writer) = PointTable::build(&entries, &pick, 4, 100, None);
    assert_eq!(writer.live, 5000 - 5000usize.div_ceil(11) + 1);
    assert!(table.capacity() >= 2 * writer.live, "at most half full");
    for (k, location) in &entries {
        let want = (!location.lsn.is_multiple_of(11)).then_some(*location);
        assert_eq!(table.get(k), want);
    }
    assert_eq!(table.upsert(&mut writer, &entries[7].0, at(1)), Some(at(7)));
    assert_eq!(table.remove(&mut writer, &entries[9].0), Some(at(9)));
    assert_eq!(table.get(&entries[9].0), None);
    assert_eq!(writer.live, 5000 - 5000usize.div_ceil(11));
}

/// Past half full, a large table's growth target is allocated on a thread of its own; the
/// growth fills it (the prepared table, of the size the growth wants) and every key stays;
/// a clear forgets it.
#[test]
fn a_growth_fills_the_table_prepared_ahead() {
    let (table, mut writer) = empty();
    let mut keys: Vec<Vec<u8>> = Vec::new();
    let mut put = |table: &PointTable, writer: &mut Writer| {
        let n = keys.len() as u64;
        keys.push(key(n, n.is_multiple_of(5)));
        assert_eq!(table.upsert(writer, &keys[n as usize], at(n)), None);
    };
    // Grow until the table is large enough for its successor to be prepared.
    while table.capacity() * 4 * std::mem::size_of::<Slot>() < PREPARE_NEXT_MIN_BYTES {
        put(&table, &mut writer);
    }
    let capacity = table.capacity();
    while writer.used * PREPARE_AT_DEN < capacity * PREPARE_AT_NUM {
        assert!(writer.next.is_none(), "not before half full");
        put(&table, &mut writer);
    }
    assert!(writer.next.is_some(), "prepared at half full");
    while table.capacity() == capacity {
        put(&table, &mut writer);
    }
    assert!(writer.next.is_none(), "taken by the growth");
    assert_eq!(table.capacity(), Table::keys_capacity(capacity / 4 * 3 + 1));
    while writer.next.is_none() {
        put(&table, &mut writer);
    }
    assert!(keys.iter().enumerate().all(|(i, k)| table.get(k) == Some(at(i as u64))));
    table.clear(&mut writer);
    assert!(writer.next.is_none() && table.get(&key(0, false)).is_none());
}

/// Keys removed after the successor was prepared: the growth (a rebuild without the
/// removed slots) wants another size, allocates it, and leaves the prepared table to its
/// thread; every live key stays and no removed one comes back.
#[test]
fn a_growth_of_another_size_leaves_the_prepared_table() {
    let (table, mut writer) = empty();
    let mut keys: Vec<Vec<u8>> = Vec::new();
    let put = |table: &PointTable, writer: &mut Writer, keys: &mut Vec<Vec<u8>>| {
        let n = keys.len() as u64;
        keys.push(key(n, n.is_multiple_of(5)));
        assert_eq!(table.upsert(writer, &keys[n as usize], at(n)), None);
    };
    while table.capacity() * 4 * std::mem::size_of::<Slot>() < PREPARE_NEXT_MIN_BYTES {
        put(&table, &mut writer, &mut keys);
    }
    let capacity = table.capacity();
    while writer.next.is_none() {
        put(&table, &mut writer, &mut keys);
    }
    let prepared = writer.next.as_ref().map(|p| p.capacity);
    assert_eq!(prepared, Some(Table::keys_capacity(capacity / 4 * 3 + 1)));
    // Remove three keys in four, then put until the table is rebuilt.
    let removed: Vec<usize> = (0..keys.len()).filter(|i| i % 4 != 0).collect();
    for &i in &removed {
        assert_eq!(table.remove(&mut writer, &keys[i]), Some(at(i as u64)));
    }
    while table.capacity() == capacity && writer.next.is_some() {
        put(&table, &mut writer, &mut keys);
    }
    assert!(writer.next.is_none(), "the prepared table was let go");
    table.end_growth(&mut writer);
    assert_ne!(Some(table.capacity()), prepared, "a table of the size the rebuild wanted");
    for (i, k) in keys.iter().enumerate() {
        let live = !removed.contains(&i);
        assert_eq!(table.get(k), live.then_some(at(i as u64)), "key {i}");
    }
}

/// Live slots of the published table.
fn live_slots(table: &PointTable) -> usize {
    let live = |slot: &&Slot| slot.hash.load(Ordering::Relaxed) > DELETED;
    table.table.load().slots.iter().filter(live).count()
}

/// An empty table filled up to a background growth whose copy waits at `stage` (see
/// `up_to_a_background_growth`), with the model of its keys and the gate the copy waits at.
fn held_growth(stage: u8) -> (PointTable, Writer, HashMap<Vec<u8>, Location>, Arc<Gate>) {
    let (table, mut writer) = empty();
    let mut model = HashMap::new();
    let gate = Gate::held();
    up_to_a_background_growth(&table, &mut writer, &mut model, &gate, stage);
    (table, writer, model, gate)
}

/// Put fresh keys until the table has at least 4096 slots (room for 512 keys past the
/// growth threshold) and a put starts its growth in the background, its copy held by
/// `gate` at `stage`.
fn up_to_a_background_growth(
    table: &PointTable,
    writer: &mut Writer,
    model: &mut HashMap<Vec<u8>, Location>,
    gate: &Arc<Gate>,
    stage: u8,
) {
    let mut n = model.len() as u64;
    loop {
        let capacity = table.capacity();
        let at_growth = (writer.used + 1) * LOAD_DEN > capacity * LOAD_NUM;
        let big = Table::keys_capacity(writer.live + 1) * std::mem::size_of::<Slot>()
            >= PREPARE_NEXT_MIN_BYTES;
        let last = at_growth && big && capacity >= 4096;
        if last {
            writer.copy_gate = Some((Arc::clone(gate), stage));
        }
        let k = key(n, n.is_multiple_of(3));
        assert_eq!(table.upsert(writer, &k, at(n)), None);
        model.insert(k, at(n));
        n += 1;
        if last {
            assert!(writer.growth.is_some(), "the growth copies in the background");
            assert_eq!(table.capacity(), capacity, "the current table stays meanwhile");
            return;
        }
    }
}

fn matches(table: &PointTable, writer: &Writer, model: &HashMap<Vec<u8>, Location>) {
    for (k, location) in model {
        assert_eq!(table.get(k), Some(*location));
    }
    assert_eq!(writer.live, model.len());
    assert_eq!(live_slots(table), model.len(), "no other key is live");
    let used =
        table.table.load().slots.iter().filter(|s| s.hash.load(Ordering::Relaxed) != EMPTY).count();
    assert_eq!(writer.used, used, "used slots counted");
    assert_ne!(table.table.load().tags_agree(), Some(false), "every tag is its slot's");
}

/// While a large table's growth copies it, keys are overwritten, removed, put back and put
/// new, short and long, and the current table serves them; the fresh table published at
/// the end has every key as the current table had it, and no key removed meanwhile:
/// whether the changes come before the copy reads the table, after it (its rounds set
/// them), or after its rounds (the growth's end sets them).
#[test]
fn a_background_growth_keeps_the_changes_made_during_its_copy() {
    for stage in 0..3 {
        changes_during_a_background_growth(stage);
    }
}

fn changes_during_a_background_growth(stage: u8) {
    let (table, mut writer, mut model, gate) = held_growth(stage);
    gate.reached();
    let capacity = table.capacity();
    let old: Vec<Vec<u8>> = model.keys().take(300).cloned().collect();
    for (i, k) in old.iter().enumerate() {
        let i = i as u64;
        match i % 3 {
            0 => assert!(table.upsert(&mut writer, k, at(50_000 + i)).is_some()),
            _ => assert!(table.remove(&mut writer, k).is_some()),
        }
    }
    for (i, k) in old.iter().enumerate().filter(|(i, _)| i % 6 == 1) {
        assert_eq!(table.upsert(&mut writer, k, at(60_000 + i as u64)), None);
    }
    for i in 0..40u64 {
        let k = key(1_000_000 + i, i % 2 == 0);
        assert_eq!(table.upsert(&mut writer, &k, at(70_000 + i)), None);
    }
    // The model, changed the same way.
    for (i, k) in old.iter().enumerate() {
        let i = i as u64;
        match i % 6 {
            0 | 3 => drop(model.insert(k.clone(), at(50_000 + i))),
            1 => drop(model.insert(k.clone(), at(60_000 + i))),
            _ => drop(model.remove(k)),
        }
    }
    for i in 0..40u64 {
        model.insert(key(1_000_000 + i, i % 2 == 0), at(70_000 + i));
    }
    assert_eq!(table.capacity(), capacity, "still copying");
    matches(&table, &writer, &model);
    table.end_finished_growth(&mut writer);
    assert!(writer.growth.is_some(), "not ended while the copy is held");
    gate.open();
    while writer.growth.as_ref().is_some_and(|g| !g.thread.is_finished()) {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    table.end_finished_growth(&mut writer);
    assert!(writer.growth.is_none(), "ended once the copy is done, with no write");
    assert!(table.capacity() > capacity, "the fresh table is published");
    matches(&table, &writer, &model);
    assert!(writer.used * LOAD_DEN <= table.capacity() * LOAD_NUM);
}

/// A growth whose copy is slow: the writer goes on putting into the current table up to
/// `GROWING_LOAD`, never past it, and there waits for the copy (the copy is let go only
/// once the writer has been at the limit for 20 ms); every key is there afterwards.
#[test]
fn a_background_growth_that_falls_behind_stops_the_table_at_its_limit() {
    let (table, mut writer, mut model, gate) = held_growth(0);
    let capacity = table.capacity();
    let limit = capacity / GROWING_LOAD_DEN * GROWING_LOAD_NUM;
    // Fresh keys each take a slot: this many puts fit, and the next one waits.
    let fit = limit - writer.used;
    let (started, returned) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let waited = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
            while started.load(Ordering::SeqCst) <= fit && std::time::Instant::now() < deadline {
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
            waited.store(returned.load(Ordering::SeqCst) == fit, Ordering::SeqCst);
            gate.open();
        });
        let mut n = 2_000_000u64;
        while table.capacity() == capacity {
            assert!(writer.used <= limit, "never past the limit");
            let k = key(n, false);
            started.fetch_add(1, Ordering::SeqCst);
            assert_eq!(table.upsert(&mut writer, &k, at(n)), None);
            returned.fetch_add(1, Ordering::SeqCst);
            model.insert(k, at(n));
            n += 1;
        }
    });
    assert!(waited.load(Ordering::SeqCst), "the put past the limit waited for the copy");
    assert_eq!(returned.load(Ordering::SeqCst), fit + 1);
    matches(&table, &writer, &model);
}

/// A growth whose copy's thread panics: ending it keeps the current table, whole, without
/// the panic reaching the writer (or the flusher); the next write past the threshold starts
/// another growth, which publishes.
#[test]
fn a_failed_copy_keeps_the_current_table() {
    let (table, mut writer, mut model, gate) = held_growth(0);
    let capacity = table.capacity();
    gate.reached();
    gate.fail();
    table.end_growth(&mut writer);
    assert!(writer.growth.is_none());
    assert_eq!(table.capacity(), capacity, "the current table stays");
    matches(&table, &writer, &model);
    writer.copy_gate = None;
    let mut n = 3_000_000u64;
    while table.capacity() == capacity {
        let k = key(n, false);
        assert_eq!(table.upsert(&mut writer, &k, at(n)), None);
        model.insert(k, at(n));
        n += 1;
    }
    matches(&table, &writer, &model);
}

/// A table cleared during its growth cancels the growth: the copy, held in the middle of
/// its scan or before its rounds, stops there once let go — no slot scanned past that
/// point, no round run — and its thread lets the old table go. The cleared table is empty
/// and takes keys again, through a growth of its own that publishes every one.
#[test]
fn a_clear_cancels_the_growth_in_progress() {
    for stage in [3, 1] {
        cleared_during_a_background_growth(stage);
    }
}

fn cleared_during_a_background_growth(stage: u8) {
    let (table, mut writer, model, gate) = held_growth(stage);
    gate.reached();
    let capacity = table.capacity();
    // Changes for the rounds to replay, had the copy gone on.
    let changed: Vec<Vec<u8>> = model.keys().take(100).cloned().collect();
    for k in &changed {
        assert!(table.remove(&mut writer, k).is_some());
    }
    let old = Arc::downgrade(&writer.table);
    table.clear(&mut writer);
    assert!(writer.growth.is_none());
    gate.open();
    let_go(&old);
    let scanned = if stage == 3 { capacity / 2 } else { capacity };
    assert_eq!(gate.scanned.load(Ordering::SeqCst), scanned, "no slot scanned past the gate");
    assert_eq!(gate.rounds.load(Ordering::SeqCst), 0, "no round run");
    assert_eq!(table.capacity(), MIN_CAPACITY);
    assert!(model.keys().all(|k| table.get(k).is_none()), "every key forgotten");
    let mut model = HashMap::new();
    matches(&table, &writer, &model);
    let gate = Gate::held();
    up_to_a_background_growth(&table, &mut writer, &mut model, &gate, 0);
    gate.open();
    table.end_growth(&mut writer);
    assert!(table.capacity() > capacity, "the fresh table is published");
    matches(&table, &writer, &model);
}

/// A growth whose copy's thread cannot be started grows inline, into the table prepared
/// for it, not into one allocated again; every key is there afterwards.
#[test]
fn a_growth_whose_copy_cannot_start_fills_the_prepared_table() {
    let (table, mut writer) = empty();
    let mut model = HashMap::new();
    let mut n = 0u64;
    let mut put = |table: &PointTable, writer: &mut Writer| {
        let k = key(n, n.is_multiple_of(3));
        assert_eq!(table.upsert(writer, &k, at(n)), None);
        model.insert(k, at(n));
        n += 1;
    };
    while table.capacity() < 4096 || (writer.used + 1) * LOAD_DEN <= table.capacity() * LOAD_NUM {
        put(&table, &mut writer);
    }
    let capacity = table.capacity();
    assert!(writer.growth.is_none(), "no growth in progress");
    // The prepared table, marked where a growth never writes: its first slot's sequence
    // word, even (unlocked), far above what a few writes of a fresh table reach.
    let prepared = writer.next.take().expect("prepared from half full");
    let fresh = prepared.thread.join().expect("allocated");
    const MARK: u32 = 1 << 30;
    fresh.slots[0].seq.store(MARK, Ordering::Relaxed);
    let slots = fresh.slots.as_ptr();
    let thread = std::thread::spawn(move || fresh);
    writer.next = Some(Prepared { capacity: prepared.capacity, thread });
    writer.copy_spawn_fails = true;
    put(&table, &mut writer);
    assert!(writer.growth.is_none(), "grown inline");
    assert_eq!(table.capacity(), prepared.capacity);
    assert!(table.capacity() > capacity);
    let published = table.table.load();
    assert!(published.slots[0].seq.load(Ordering::Relaxed) >= MARK, "the prepared table");
    assert_eq!(published.slots.as_ptr(), slots);
    drop(published);
    matches(&table, &writer, &model);
}

/// Wait until no one holds `table` (a copy's thread lets it go when it stops).
fn let_go(table: &std::sync::Weak<Table>) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while table.strong_count() > 0 {
        assert!(std::time::Instant::now() < deadline, "the copy's thread lets the table go");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// A writer dropped during its table's growth (a store closed meanwhile) cancels it too:
/// the copy, held in the middle of its scan, scans no further once let go.
#[test]
fn a_dropped_writer_cancels_the_growth_in_progress() {
    let (table, writer, _, gate) = held_growth(3);
    gate.reached();
    let capacity = table.capacity();
    let old = Arc::downgrade(&writer.table);
    drop((table, writer));
    gate.open();
    let_go(&old);
    assert_eq!(gate.scanned.load(Ordering::SeqCst), capacity / 2, "no slot scanned past it");
    assert_eq!(gate.rounds.load(Ordering::SeqCst), 0, "no round run");
}

/// A key the growth's copy met twice (moved across the table's end meanwhile) ends in one
/// slot of the fresh table when its change is set there — or in none, removed.
#[test]
fn a_key_copied_twice_ends_in_one_slot() {
    let hasher = foldhash::fast::RandomState::default();
    let (k, other) = (key(7, false), key(8, true));
    let (probe, other) = (Probe::new(&hasher, &k), Probe::new(&hasher, &other));
    let holding = |table: &Table| -> Vec<Location> {
        let slots = table.slots.iter().filter(|s| s.holds(&probe));
        slots.map(Slot::location).collect()
    };
    for set in [Some(at(3)), None] {
        let table = Table::with_capacity(MIN_CAPACITY);
        table.place_unpublished(&probe, at(1));
        table.place_unpublished(&other, at(9));
        table.place_unpublished(&probe, at(2));
        assert_eq!(holding(&table).len(), 2);
        assert!(!table.set_unpublished(&probe, set), "no empty slot taken");
        assert_eq!(holding(&table), Vec::from_iter(set));
        assert!(matches!(table.find(&other), Ok((_, l)) if l == at(9)), "the other key stays");
        // Set again: the key is found in its one slot, or put back in a deleted one.
        assert!(!table.set_unpublished(&probe, Some(at(4))));
        assert_eq!(holding(&table), vec![at(4)]);
    }
    let table = Table::with_capacity(MIN_CAPACITY);
    assert!(table.set_unpublished(&probe, Some(at(5))), "a new key takes an empty slot");
    assert!(!table.set_unpublished(&probe, None));
    assert!(holding(&table).is_empty());
}

/// Writes during the copy's scan move a key across the table's end. Hashes narrowed to the
/// table's slot bits make the keys of a cluster share one fingerprint; two keys homed at
/// the table's last empty slot fill it and wrap to its first, where the copy's scan meets
/// the second before it waits in the middle of the table. Meanwhile the first is removed,
/// and the second removed and put back: into the slot near the end the first left, where
/// the scan meets it again. Once the growth ends, every key is in exactly one slot of the
/// published table, the removed one in none; removed after the growth, the moved key is
/// gone too.
#[test]
fn a_key_moved_across_the_tables_end_during_the_scan_ends_in_one_slot() {
    const CAPACITY: usize = 4096;
    HASH_MASK.with(|m| m.set(CAPACITY as u64 - 1));
    let (table, mut writer) = empty();
    let mut model = HashMap::new();
    type Model = HashMap<Vec<u8>, Location>;
    let put = |table: &PointTable, writer: &mut Writer, model: &mut Model, k: Vec<u8>, n| {
        assert_eq!(table.upsert(writer, &k, at(n)), None);
        model.insert(k, at(n));
    };
    // Fresh keys up to three puts short of the growth of a table of `CAPACITY` slots.
    let mut n = 0u64;
    while table.capacity() < CAPACITY || (writer.used + 3) * LOAD_DEN <= table.capacity() * LOAD_NUM
    {
        put(&table, &mut writer, &mut model, key(n, n.is_multiple_of(3)), n);
        n += 1;
    }
    assert_eq!(table.capacity(), CAPACITY);
    assert!(writer.growth.is_none());
    let mid = CAPACITY / 2;
    let empty_slots: Vec<usize> = (0..CAPACITY)
        .filter(|&i| writer.table.slots[i].hash.load(Ordering::Relaxed) == EMPTY)
        .collect();
    let (first, last) = (empty_slots[0], empty_slots[empty_slots.len() - 1]);
    assert!(first < mid && last >= mid, "empty slots {first} and {last} around the middle");
    // Two keys homed at the last empty slot, one short and one long.
    let mut homed = (20_000_000u64..).filter_map(|i| {
        let k = key(i, i.is_multiple_of(2));
        let home = Probe::new(&table.hasher, &k).hash as usize & (CAPACITY - 1);
        (home == last).then_some(k)
    });
    let (gone, moved) = (homed.next().unwrap(), homed.next().unwrap());
    let moved_probe = Probe::new(&table.hasher, &moved);
    put(&table, &mut writer, &mut model, gone.clone(), 1);
    put(&table, &mut writer, &mut model, moved.clone(), 2);
    assert!(writer.table.slots[first].holds(&moved_probe), "wrapped to the first slot");
    // The next put starts the growth; its copy waits in the middle of its scan.
    let gate = Gate::held();
    writer.copy_gate = Some((Arc::clone(&gate), 3));
    put(&table, &mut writer, &mut model, key(n, false), n);
    assert!(writer.growth.is_some(), "the growth copies in the background");
    gate.reached();
    assert_eq!(gate.scanned.load(Ordering::SeqCst), mid);
    assert_eq!(table.remove(&mut writer, &gone), Some(at(1)));
    assert_eq!(table.remove(&mut writer, &moved), Some(at(2)));
    put(&table, &mut writer, &mut model, moved.clone(), 3);
    model.remove(&gone);
    assert!(writer.table.slots[last].holds(&moved_probe), "moved across the table's end");
    gate.open();
    table.end_growth(&mut writer);
    assert!(writer.growth.is_none() && table.capacity() > CAPACITY, "published");
    matches(&table, &writer, &model);
    assert_eq!(table.get(&gone), None);
    assert_eq!(table.remove(&mut writer, &moved), Some(at(3)));
    model.remove(&moved);
    assert_eq!(table.get(&moved), None, "no copy left behind");
    matches(&table, &writer, &model);
    HASH_MASK.with(|m| m.set(u64::MAX));
}

/// A table large enough to be first touched on several threads starts with every slot
/// empty, and takes keys like any other.
#[test]
fn a_table_first_touched_in_parallel_is_empty_and_usable() {
    let capacity = PARALLEL_TOUCH_MIN_BYTES / std::mem::size_of::<Slot>() * 2;
    let table = Table::with_capacity(capacity);
    assert_eq!(table.capacity(), capacity);
    assert!(table.slots.iter().all(|s| s.hash.load(Ordering::Relaxed) == EMPTY));
    let probe = Probe::new(&foldhash::fast::RandomState::default(), b"k");
    table.place_unpublished(&probe, at(3));
    assert!(matches!(table.find(&probe), Ok((_, location)) if location == at(3)));
}

/// A prepared table is filled when it is the size the build would choose or one step
/// larger; one too small (it could overfill) or far too large is left for a fresh one, and
/// dropped on a thread of its own, not the building one.
#[test]
fn a_bulk_build_takes_a_prepared_table_only_if_it_fits() {
    let entries: Vec<(Vec<u8>, Location)> = (0..5000).map(|i| (key(i, true), at(i))).collect();
    fn pick(e: &(Vec<u8>, Location)) -> Option<(&[u8], Location)> {
        Some((&e.0[..], e.1))
    }
    let needed = Table::bulk_capacity(5000);
    assert_eq!(needed, 16384);
    for (estimate, taken) in
        [(5000, true), (4500, true), (9000, true), (20000, false), (1000, false)]
    {
        let prepared = PointTable::prepare(estimate);
        let (serial, capacity) = (prepared.0.serial, prepared.0.capacity());
        let dropped = LARGE_DROPPED_HERE.with(Cell::get);
        let (table, writer) = PointTable::build(&entries, &pick, 2, 100, Some(prepared));
        assert_eq!(
            LARGE_DROPPED_HERE.with(Cell::get),
            dropped,
            "a table left is dropped elsewhere"
        );
        let used = writer.table.serial == serial;
        assert_eq!(used, taken, "estimate {estimate}: {capacity} slots");
        let want = if taken { capacity } else { needed };
        assert_eq!(table.capacity(), want, "estimate {estimate}");
        assert_eq!(writer.live, 5000);
        assert!(entries.iter().all(|(k, location)| table.get(k) == Some(*location)));
    }
}

/// Readers on other threads while one writer updates, removes and grows the table: a key
/// that is never removed is always found, and every location read belongs to that key
/// (never torn between two writes, never another key's).
#[test]
fn concurrent_readers_see_whole_entries() {
    let (table, mut writer) = empty();
    let stable: Vec<Vec<u8>> = (0..64).map(|i| key(i, i % 2 == 0)).collect();
    for (i, k) in stable.iter().enumerate() {
        table.upsert(&mut writer, k, at(i as u64 * 1000));
    }
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                while !done.load(Ordering::Relaxed) {
                    for (i, k) in stable.iter().enumerate() {
                        let found = table.get(k).expect("a stable key is always present");
                        // Every location written for key i is at(i * 1000 + round).
                        let n = found.offset / 64;
                        assert_eq!(n / 1000, i as u64);
                        assert_eq!(found, at(n));
                    }
                }
            });
        }
        for round in 1..400u64 {
            for (i, k) in stable.iter().enumerate() {
                table.upsert(&mut writer, k, at(i as u64 * 1000 + round % 1000));
            }
            for j in 0..200 {
                let k = key(10_000 + round * 200 + j, j % 2 == 0);
                table.upsert(&mut writer, &k, at(j));
                if j % 3 != 0 {
                    table.remove(&mut writer, &k);
                }
            }
        }
        done.store(true, Ordering::Relaxed);
    });
}

/// A clear lets go of the old table, of a growth's fresh table whose copy has finished and of
/// a prepared successor whose first touch has ended, without dropping any of them on the
/// clearing thread (in a store, each drop reads every slot and unmaps up to 256 MB under the
/// index's write mutex): `mcstore-index-drop` threads drop them.
#[test]
fn a_clear_drops_no_table_on_its_own_thread() {
    let dropped_here = || LARGE_DROPPED_HERE.with(Cell::get);
    let (table, mut writer, _, gate) = held_growth(2);
    gate.reached();
    gate.open();
    while !writer.growth.as_ref().is_some_and(|growth| growth.thread.is_finished()) {
        std::thread::yield_now();
    }
    let before = dropped_here();
    table.clear(&mut writer);
    assert_eq!(dropped_here(), before, "the old table and the copy's, dropped elsewhere");
    let mut n = 0;
    while writer.next.is_none() {
        assert!(writer.growth.is_none(), "the successor is prepared before any growth");
        assert_eq!(table.upsert(&mut writer, &key(n, false), at(n)), None);
        n += 1;
    }
    while !writer.next.as_ref().is_some_and(|next| next.thread.is_finished()) {
        std::thread::yield_now();
    }
    let before = dropped_here();
    table.clear(&mut writer);
    assert_eq!(dropped_here(), before, "the prepared successor, dropped elsewhere");
    assert_eq!((table.capacity(), writer.live(), writer.used()), (MIN_CAPACITY, 0, 0));
}
