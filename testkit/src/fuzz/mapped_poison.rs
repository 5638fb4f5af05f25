//! Fuzz body `mapped_poison`: a real `MappedMedium` (256 KiB, ForcedPmem) in /dev/shm with real
//! `SIGBUS`: emulated poison maps an empty memfd page over the pool page, so a load there
//! faults and the machine-check-safe copy records it in the operation's register. Writes,
//! removes, poisoned and cleared pages and reopens from the input; after every step every key
//! is read back.
//!
//! Oracle: a read never returns a value the model does not allow; before any page was poisoned
//! nothing fails; a `Media` error is reported only with the fault counted (the register was set)
//! and names a range overlapping a page that was poisoned. The pool file's name is unique per
//! process and run, and removed afterwards.
//!
//! Input: steps, one tag byte each (see [`decode_step`]); at most [`STEPS_MAX`].
//!
//! The `scan_ahead` body runs the same scenario with background work on (compaction off), so a
//! long forward scan reads ahead on a second thread (`mcstore-read-ahead`), and two more steps:
//! fill a run of keys, and scan every key — stopping early or editing keys ahead of the cursor
//! as it goes. Oracle of a scan: keys ascending; every item's value allowed (a key removed
//! ahead of the cursor never comes, one overwritten comes with its new value); errors only
//! after poison, as above; and a full scan yields every key the model holds for sure, or a
//! media error in its place. The read-ahead thread's timing varies from run to run; what the
//! iterator yields does not.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use mcstore_engine::{Db, Error, Options};
use mcstore_pmem::{MapOptions, MappedMedium, Medium, ModeRequest};
use mcstore_recovery::format::{Geometry, SegmentId};

use super::input::{Input, counting_value};
use crate::model::Bytes;
use crate::pools::{SEGMENT_BYTES, small_options};

/// Pool size of a `mapped_poison` scenario.
pub const MAPPED_POOL_BYTES: u64 = 256 << 10;
/// Pool size of a `scan_ahead` scenario: room for a dozen fills before the log is full (the
/// compactor is off).
pub const SCAN_POOL_BYTES: u64 = 1 << 20;
/// Steps per input, at most.
pub const STEPS_MAX: usize = 24;
const PAGE: u64 = 4096;

/// One step of the scenario.
#[derive(Clone, Debug)]
enum Step {
    Put(Bytes, Bytes),
    Remove(Bytes),
    Poison(u64),
    Clear(u64),
    Reopen,
    /// `scan_ahead` only: put `count` keys of run `seed` (see [`fill_key`]).
    Fill {
        count: u16,
        seed: u8,
    },
    /// `scan_ahead` only: scan every key, stopping after `stop` items if given, and editing a
    /// key ahead of the cursor after every `edit_every` items if given.
    Scan {
        stop: Option<u16>,
        edit_every: Option<u8>,
    },
}

/// Which scenario a body runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flavor {
    /// `mapped_poison`: no background work; steps 0–7.
    Poison,
    /// `scan_ahead`: background work (the scan read-ahead) on; steps 0–9.
    ScanAhead,
}

impl Flavor {
    /// The scenario's pool size.
    fn pool_bytes(self) -> u64 {
        match self {
            Flavor::Poison => MAPPED_POOL_BYTES,
            Flavor::ScanAhead => SCAN_POOL_BYTES,
        }
    }
}

/// Keys a fill puts at least (a scan over them starts its read-ahead after 208 keys and reads
/// chunks of 256 ahead) and at most more.
const FILL_KEYS_MIN: u16 = 600;
const FILL_KEYS_SPAN: u16 = 1200;
/// A scan edits the key this many model keys past its cursor (inside the read-ahead's window:
/// four chunks of 256 keys fetched ahead).
const EDIT_AHEAD: usize = 300;

/// Tags from this one that would be puts put a large value ([`large_value`]).
const LARGE_PUT_TAG: u8 = 0xF0;

/// One step: tag `% 8` (`mapped_poison`) or `% 10` (`scan_ahead`) — 0–2 put (a large value
/// when the tag is at least [`LARGE_PUT_TAG`]), 3 remove, 4–5 poison a page (`[page: u8]`,
/// modulo the pool's pages), 6 clear a page's poison, 7 reopen; `scan_ahead` only: 8 fill
/// (`[count: u16, seed: u8]`), 9 scan (`[how: u8, n: u8]`: `how % 3` 0 full, 1 stop after
/// `n * 8` items, 2 edit after every `n % 64 + 1` items).
fn decode_step(input: &mut Input<'_>, flavor: Flavor) -> Step {
    let pages = flavor.pool_bytes() / PAGE;
    let tag = input.byte();
    let kinds = if flavor == Flavor::ScanAhead { 10 } else { 8 };
    match tag % kinds {
        0..=2 if tag >= LARGE_PUT_TAG => Step::Put(input.key(), large_value(input)),
        0..=2 => Step::Put(input.key(), input.value()),
        3 => Step::Remove(input.key()),
        4 | 5 => Step::Poison(u64::from(input.byte()) % pages * PAGE),
        6 => Step::Clear(u64::from(input.byte()) % pages * PAGE),
        7 => Step::Reopen,
        8 => Step::Fill { count: FILL_KEYS_MIN + input.u16() % FILL_KEYS_SPAN, seed: input.byte() },
        _ => {
            let (how, n) = (input.byte(), input.byte());
            match how % 3 {
                0 => Step::Scan { stop: None, edit_every: None },
                1 => Step::Scan { stop: Some(u16::from(n) * 8), edit_every: None },
                _ => Step::Scan { stop: None, edit_every: Some(n % 64 + 1) },
            }
        }
    }
}

/// Key `i` of fill run `seed`: `f`, the seed, `i` big-endian (a run's keys ascend together).
fn fill_key(seed: u8, i: u16) -> Bytes {
    let [hi, lo] = i.to_be_bytes();
    vec![b'f', seed, hi, lo]
}

/// A value of 8 to 32 KiB (`[len: u16, seed: u8]`), long enough for a get to copy and hash it in
/// one pass (`mcsafe::read_safe_hashing`), so poison meets that copy; its bytes count up from the
/// seed.
fn large_value(input: &mut Input<'_>) -> Bytes {
    let len = (8 << 10) + usize::from(input.u16()) % (24 << 10);
    counting_value(len, input.byte())
}

/// Removes the pool file when the scenario ends (a panic included).
struct PoolFile(PathBuf);

impl Drop for PoolFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A pool path no other process or run uses, named after `flavor`.
fn unique_path(flavor: Flavor) -> PathBuf {
    static RUN: AtomicU64 = AtomicU64::new(0);
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let run = RUN.fetch_add(1, Ordering::Relaxed);
    let name = match flavor {
        Flavor::Poison => "mapped",
        Flavor::ScanAhead => "scan",
    };
    dir.join(format!("mcstore-fuzz-{name}-{}-{run}", std::process::id()))
}

/// The scenario's state: the medium, the store and the model.
struct Scenario {
    medium: Arc<MappedMedium>,
    db: Option<Db>,
    options: Options,
    allowed: BTreeMap<Bytes, BTreeSet<Option<Bytes>>>,
    /// Pages ever poisoned (their bytes were destroyed).
    damaged: BTreeSet<u64>,
    /// `Media` errors seen (each with its fault in the register).
    media_errors: u64,
    /// Of those, the ones scans met.
    scan_media_errors: u64,
    /// Whether some scan was served by a read-ahead thread.
    read_ahead: bool,
}

impl Scenario {
    fn write(&mut self, key: &Bytes, value: Option<&Bytes>) {
        let Some(db) = &self.db else { return };
        let result = match value {
            Some(value) => db.put(key, value),
            None => db.remove(key).map(drop),
        };
        let new = value.cloned();
        match result {
            Ok(()) => {
                self.allowed.insert(key.clone(), BTreeSet::from([new]));
            }
            Err(error) => {
                assert!(
                    !self.damaged.is_empty() || matches!(error, Error::OutOfSpace { .. }),
                    "a write failed on an undamaged pool: {error}"
                );
                self.allowed
                    .entry(key.clone())
                    .or_insert_with(|| BTreeSet::from([None]))
                    .insert(new);
            }
        }
    }

    fn reopen(&mut self) {
        drop(self.db.take());
        let medium: Arc<dyn Medium> = self.medium.clone();
        match Db::open_on(medium, self.options.clone()) {
            Ok(db) => self.db = Some(db),
            Err(error) => assert!(!self.damaged.is_empty(), "reopen of an undamaged pool: {error}"),
        }
    }

    /// Read every key the model knows: allowed values only, typed errors only after poison,
    /// and a `Media` error only with the fault in the register and on a poisoned page.
    fn check(&mut self) {
        let Some(db) = &self.db else { return };
        for (key, allowed) in &self.allowed {
            let faults = db.stats().read_faults;
            match db.get(key) {
                Ok(value) => {
                    let value = value.map(|v| v.to_vec());
                    assert!(allowed.contains(&value), "get {key:?}: {value:?} not in {allowed:?}");
                }
                Err(error) => {
                    let what = format!("get {key:?}");
                    self.media_errors += read_error(db, faults, &self.damaged, &what, error);
                }
            }
        }
    }

    /// Put keys `0..count` of fill run `seed`, each a short value of its own.
    fn fill(&mut self, count: u16, seed: u8) {
        for i in 0..count {
            let value = counting_value(4 + usize::from(i % 12), seed ^ i as u8);
            self.write(&fill_key(seed, i), Some(&value));
        }
    }

    /// Scan every key forward (see the module docs for the oracle): stop after `stop` items if
    /// given; after every `edit_every` items if given, remove or overwrite (in turn) the key
    /// `EDIT_AHEAD` model keys past the cursor, if it is held.
    fn scan(&mut self, stop: Option<u16>, edit_every: Option<u8>) {
        let Some(db) = self.db.clone() else { return };
        let mut iter = db.iter();
        let mut last: Option<Bytes> = None;
        let mut seen = BTreeSet::new();
        let (mut produced, mut edits) = (0usize, 0u8);
        // Errors this scan met: `Media` ones, and any other.
        let (mut media, mut other) = (0u64, 0u64);
        loop {
            let faults = db.stats().read_faults;
            let Some(item) = iter.next() else { break };
            self.read_ahead |= iter.reading_ahead();
            produced += 1;
            match item {
                Ok((key, value)) => {
                    let (key, value) = (key.to_vec(), value.to_vec());
                    assert!(last.as_ref().is_none_or(|l| *l < key), "{key:?} after {last:?}");
                    let allowed = self.allowed.get(&key);
                    assert!(
                        allowed.is_some_and(|a| a.contains(&Some(value.clone()))),
                        "scan {key:?}: {value:?} not in {allowed:?}"
                    );
                    seen.insert(key.clone());
                    last = Some(key);
                }
                Err(error) => {
                    let what = format!("scan after {last:?}");
                    let found = read_error(&db, faults, &self.damaged, &what, error);
                    (media, other) = (media + found, other + 1 - found);
                }
            }
            if stop.is_some_and(|stop| produced >= usize::from(stop)) {
                break;
            }
            if let Some(every) = edit_every
                && produced % usize::from(every) == 0
            {
                let after = last.clone().unwrap_or_default();
                let ahead = self
                    .allowed
                    .range((Bound::Excluded(after), Bound::Unbounded))
                    .nth(EDIT_AHEAD)
                    .filter(|(_, allowed)| !allowed.contains(&None))
                    .map(|(key, _)| key.clone());
                if let Some(key) = ahead {
                    let value = (edits % 2 == 1).then(|| counting_value(6, edits));
                    self.write(&key, value.as_ref());
                    edits = edits.wrapping_add(1);
                }
            }
        }
        drop(iter);
        self.media_errors += media;
        self.scan_media_errors += media;
        if stop.is_some() {
            return;
        }
        // A full scan yields every key the model holds for sure, or a media error in its place
        // (one per key it could not read); a store that failed may end a scan early.
        let missed: Vec<&Bytes> = self
            .allowed
            .iter()
            .filter(|(key, allowed)| !allowed.contains(&None) && !seen.contains(*key))
            .map(|(key, _)| key)
            .collect();
        if other == 0 && !db.stats().failed {
            assert!(
                missed.len() as u64 <= media,
                "a full scan missed {} keys with {media} media errors: {missed:?}",
                missed.len()
            );
        }
    }
}

/// Check a read's `error` (`what` names the read): errors only once a page was poisoned; a
/// `Media` error only with a fault counted since `faults` and on a poisoned page. 1 for a
/// `Media` error, else 0.
fn read_error(db: &Db, faults: u64, damaged: &BTreeSet<u64>, what: &str, error: Error) -> u64 {
    assert!(!damaged.is_empty(), "{what} failed, nothing poisoned: {error}");
    let Error::Media { offset, len, .. } = error else { return 0 };
    assert!(db.stats().read_faults > faults, "{what}: a media error without a fault");
    let first = offset / PAGE * PAGE;
    let pages: Vec<u64> = (first..offset + len.max(1)).step_by(PAGE as usize).collect();
    assert!(
        pages.iter().any(|p| damaged.contains(p)),
        "{what}: media error at {offset}+{len}, poisoned pages {damaged:?}"
    );
    1
}

/// The `mapped_poison` body (needs /dev/shm or a tmpfs temporary directory).
pub fn mapped_poison(data: &[u8]) {
    run(data, Flavor::Poison);
}

/// The `scan_ahead` body: the `mapped_poison` scenario with the scan read-ahead running, and
/// fills and scans (see the module docs).
pub fn scan_ahead(data: &[u8]) {
    run(data, Flavor::ScanAhead);
}

/// What a scenario met (read by the tests: the fuzz bodies only run it).
#[derive(Debug)]
#[cfg_attr(not(test), expect(dead_code, reason = "read by the tests only"))]
struct Outcome {
    /// `Media` errors.
    media_errors: u64,
    /// Of those, the ones scans met.
    scan_media_errors: u64,
    /// Whether some scan was served by a read-ahead thread.
    read_ahead: bool,
}

/// Run one scenario.
fn run(data: &[u8], flavor: Flavor) -> Outcome {
    let mut input = Input::new(&data[..data.len().min(super::INPUT_BYTES_MAX)]);
    let file = PoolFile(unique_path(flavor));
    let bytes = flavor.pool_bytes();
    let map = MapOptions::new().mode(ModeRequest::ForcedPmem).max_len(bytes);
    let medium =
        Arc::new(MappedMedium::create(&file.0, bytes, &map).expect("a pool file in /dev/shm"));
    let options = match flavor {
        Flavor::Poison => small_options(),
        // The read-ahead runs only with background work; the compactor stays off, so the
        // scenario's steps alone change the log.
        Flavor::ScanAhead => small_options().background(true).compaction_interval(None),
    };
    let shared: Arc<dyn Medium> = medium.clone();
    let db = Db::create_on(shared, options.clone()).expect("create_on a fresh mapped pool");
    let mut scenario = Scenario {
        medium,
        db: Some(db),
        options,
        allowed: BTreeMap::new(),
        damaged: BTreeSet::new(),
        media_errors: 0,
        scan_media_errors: 0,
        read_ahead: false,
    };
    for _ in 0..STEPS_MAX {
        if input.is_empty() {
            break;
        }
        match decode_step(&mut input, flavor) {
            Step::Put(key, value) => scenario.write(&key, Some(&value)),
            Step::Remove(key) => scenario.write(&key, None),
            Step::Poison(page) => {
                scenario.medium.inject_poison(page, PAGE).expect("inject poison");
                scenario.damaged.insert(page);
            }
            Step::Clear(page) => scenario.medium.clear_poison(page, PAGE).expect("clear poison"),
            Step::Reopen => scenario.reopen(),
            // A scan checks what it reads itself; a fill's keys are read by the next check or
            // scan (reading up to 1800 keys after each of these steps would slow every run).
            Step::Fill { count, seed } => {
                scenario.fill(count, seed);
                continue;
            }
            Step::Scan { stop, edit_every } => {
                scenario.scan(stop, edit_every);
                continue;
            }
        }
        scenario.check();
    }
    // Every key read back once more (a fill's last keys, if the input ended there).
    scenario.check();
    let outcome = Outcome {
        media_errors: scenario.media_errors,
        scan_media_errors: scenario.scan_media_errors,
        read_ahead: scenario.read_ahead,
    };
    drop(scenario);
    drop(file);
    outcome
}

/// Seed inputs: puts, then a poisoned page (the log's first pages, the superblocks, the
/// set-state table, free space), a put, a reopen, the page cleared, a put and a reopen.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let geometry = Geometry::for_segment_size(SEGMENT_BYTES).expect("a valid segment size");
    let log = geometry.segment_offset(SegmentId(0)) / PAGE;
    // put "a" (40 B), put "bb" (~1 KiB), put "" (10 B)
    let writes: &[u8] = &[0, 1, 0, 40, 1, 1, 2, 1, 1, 230, 0, 0x10, 2, 2, 0, 10, 3];
    let mut seeds = Vec::new();
    for page in [log, log + 1, log + 2, 0, 1, 2, 3, log + 17, log + 40] {
        let page = u8::try_from(page).unwrap_or(0);
        let mut input = writes.to_vec();
        input.extend_from_slice(&[4, page, 0, 2, 1, 0, 9, 9, 7]);
        input.extend_from_slice(&[6, page, 0, 1, 1, 30, 4, 7]);
        seeds.push((format!("page{page}"), input));
    }
    // put "a" (16 KiB), poison a page inside it (a get meets it in its one-pass copy), put "b",
    // reopen, clear the page, reopen.
    let page = u8::try_from(log + 2).unwrap_or(0);
    seeds.push((
        format!("large-page{page}"),
        vec![LARGE_PUT_TAG, 1, 0, 0x00, 0x20, 5, 4, page, 0, 1, 1, 9, 9, 7, 6, page, 7],
    ));
    seeds
}

/// Seed inputs of `scan_ahead`: fills of 1000 keys, then full scans, a scan stopped early, scans
/// that edit keys ahead of their cursor, and a scan over a poisoned log page, before and after
/// a reopen.
pub fn scan_seeds() -> Vec<(String, Vec<u8>)> {
    let geometry = Geometry::for_segment_size(SEGMENT_BYTES).expect("a valid segment size");
    let log = u8::try_from(geometry.segment_offset(SegmentId(0)) / PAGE).unwrap_or(0);
    // Fill 1000 keys (600 + 400) of run 1; of run 2.
    let (fill1, fill2): (&[u8], &[u8]) = (&[8, 0x90, 0x01, 1], &[8, 0x90, 0x01, 2]);
    let (full, stop, edit) = ([9u8, 0, 0], [9u8, 1, 60], [9u8, 2, 15]);
    let poison = [4, log + 3];
    let seeds: [(&str, Vec<&[u8]>); 5] = [
        ("fill-scan", vec![fill1, &full]),
        ("fill-stop", vec![fill1, &stop, &full]),
        ("fill-edit", vec![fill1, fill2, &edit, &full]),
        ("edit-every-item", vec![fill1, &[9, 2, 0], &full]),
        ("poison-scan", vec![fill1, &poison, &full, &[7], &full]),
    ];
    seeds.into_iter().map(|(name, steps)| (name.to_string(), steps.concat())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `scan_ahead` seeds reach a read-ahead thread (this machine has two cores or more),
    /// and the poisoned one's scans meet the poison.
    #[test]
    fn the_scan_seeds_read_ahead_and_meet_poison() {
        let several = std::thread::available_parallelism().is_ok_and(|n| n.get() > 1);
        for (name, input) in scan_seeds() {
            let outcome = run(&input, Flavor::ScanAhead);
            assert_eq!(outcome.read_ahead, several, "{name}: read ahead");
            if name.starts_with("poison") {
                assert!(outcome.scan_media_errors >= 1, "{name}: {outcome:?}");
            }
        }
    }

    /// A large value's get meets the poison in its one-pass copy and fails with a media error
    /// (the scenario's oracle checks every other read).
    #[test]
    fn the_large_value_seed_meets_poison_in_the_one_pass_copy() {
        let (_, input) = seeds().into_iter().find(|(name, _)| name.starts_with("large")).unwrap();
        assert_eq!(input[0] % 8, 0, "the seed starts with a put");
        let outcome = run(&input, Flavor::Poison);
        assert!(outcome.media_errors >= 1, "the poisoned large value did not fail its get");
    }

    #[test]
    fn the_seeds_meet_real_sigbus_and_leave_no_file_behind() {
        let media_errors: u64 =
            seeds().iter().map(|(_, input)| run(input, Flavor::Poison).media_errors).sum();
        assert!(media_errors >= 2, "{media_errors} reads met real poison");
        let leftover =
            std::fs::read_dir(unique_path(Flavor::Poison).parent().expect("a directory"))
                .expect("the pool directory")
                .flatten()
                .filter(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.starts_with(&format!("mcstore-fuzz-mapped-{}-", std::process::id()))
                })
                .count();
        assert_eq!(leftover, 0);
    }
}
