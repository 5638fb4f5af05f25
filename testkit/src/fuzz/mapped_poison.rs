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

use std::collections::{BTreeMap, BTreeSet};
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
}

/// Tags from this one that would be puts put a large value ([`large_value`]).
const LARGE_PUT_TAG: u8 = 0xF0;

/// One step: tag `% 8` — 0–2 put (a large value when the tag is at least [`LARGE_PUT_TAG`]),
/// 3 remove, 4–5 poison a page (`[page: u8]`, modulo the pool's pages), 6 clear a page's poison,
/// 7 reopen.
fn decode_step(input: &mut Input<'_>) -> Step {
    let pages = MAPPED_POOL_BYTES / PAGE;
    let tag = input.byte();
    match tag % 8 {
        0..=2 if tag >= LARGE_PUT_TAG => Step::Put(input.key(), large_value(input)),
        0..=2 => Step::Put(input.key(), input.value()),
        3 => Step::Remove(input.key()),
        4 | 5 => Step::Poison(u64::from(input.byte()) % pages * PAGE),
        6 => Step::Clear(u64::from(input.byte()) % pages * PAGE),
        _ => Step::Reopen,
    }
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

/// A pool path no other process or run uses.
fn unique_path() -> PathBuf {
    static RUN: AtomicU64 = AtomicU64::new(0);
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let run = RUN.fetch_add(1, Ordering::Relaxed);
    dir.join(format!("mcstore-fuzz-mapped-{}-{run}", std::process::id()))
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
                    assert!(
                        !self.damaged.is_empty(),
                        "get {key:?} failed, nothing poisoned: {error}"
                    );
                    if let Error::Media { offset, len, .. } = error {
                        self.media_errors += 1;
                        assert!(db.stats().read_faults > faults, "a media error without a fault");
                        let first = offset / PAGE * PAGE;
                        let hit = (first..offset + len.max(1)).step_by(PAGE as usize);
                        let pages: Vec<u64> = hit.collect();
                        assert!(
                            pages.iter().any(|p| self.damaged.contains(p)),
                            "media error at {offset}+{len}, poisoned pages {:?}",
                            self.damaged
                        );
                    }
                }
            }
        }
    }
}

/// The `mapped_poison` body (needs /dev/shm or a tmpfs temporary directory).
pub fn mapped_poison(data: &[u8]) {
    run(data);
}

/// Run one scenario; the number of `Media` errors it met.
fn run(data: &[u8]) -> u64 {
    let mut input = Input::new(&data[..data.len().min(super::INPUT_BYTES_MAX)]);
    let file = PoolFile(unique_path());
    let map = MapOptions::new().mode(ModeRequest::ForcedPmem).max_len(MAPPED_POOL_BYTES);
    let medium = Arc::new(
        MappedMedium::create(&file.0, MAPPED_POOL_BYTES, &map).expect("a pool file in /dev/shm"),
    );
    let options = small_options();
    let shared: Arc<dyn Medium> = medium.clone();
    let db = Db::create_on(shared, options.clone()).expect("create_on a fresh mapped pool");
    let mut scenario = Scenario {
        medium,
        db: Some(db),
        options,
        allowed: BTreeMap::new(),
        damaged: BTreeSet::new(),
        media_errors: 0,
    };
    for _ in 0..STEPS_MAX {
        if input.is_empty() {
            break;
        }
        match decode_step(&mut input) {
            Step::Put(key, value) => scenario.write(&key, Some(&value)),
            Step::Remove(key) => scenario.write(&key, None),
            Step::Poison(page) => {
                scenario.medium.inject_poison(page, PAGE).expect("inject poison");
                scenario.damaged.insert(page);
            }
            Step::Clear(page) => scenario.medium.clear_poison(page, PAGE).expect("clear poison"),
            Step::Reopen => scenario.reopen(),
        }
        scenario.check();
    }
    let media_errors = scenario.media_errors;
    drop(scenario);
    drop(file);
    media_errors
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A large value's get meets the poison in its one-pass copy and fails with a media error
    /// (the scenario's oracle checks every other read).
    #[test]
    fn the_large_value_seed_meets_poison_in_the_one_pass_copy() {
        let (_, input) = seeds().into_iter().find(|(name, _)| name.starts_with("large")).unwrap();
        assert_eq!(input[0] % 8, 0, "the seed starts with a put");
        assert!(run(&input) >= 1, "the poisoned large value did not fail its get");
    }

    #[test]
    fn the_seeds_meet_real_sigbus_and_leave_no_file_behind() {
        let media_errors: u64 = seeds().iter().map(|(_, input)| run(input)).sum();
        assert!(media_errors >= 2, "{media_errors} reads met real poison");
        let leftover = std::fs::read_dir(unique_path().parent().expect("a directory"))
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
