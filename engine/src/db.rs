//! `Db`: the handle users hold, its shared state, and the read side — lookups through the
//! commit barrier, iterators, stats. Writes are in `write.rs` (committed by `commit.rs`), open
//! and close in `open.rs`, background threads in `background.rs`.
//!
//! INVARIANT: readers take no lock: a lookup is a lock-free index probe, then a
//! machine-check-safe copy of the record, verified (`read.rs`); a read that does not verify is
//! looked up once more before the policy applies. A value is returned only from a record read
//! with a clean register that verified.

use std::ops::{Bound, RangeBounds};
use std::path::PathBuf;
use std::sync::Arc;

use mcstore_pmem::Medium;
use mcstore_recovery::RecoveryReport;
use mcstore_recovery::format::{Geometry, Uuid};
use parking_lot::Mutex;

use crate::background::Background;
use crate::commit::CommitQueue;
use crate::error::Result;
use crate::index::{Index, Location};
use crate::iter::{Iter, Keys};
use crate::latch::Latch;
use crate::options::{Durability, Options};
use crate::read::{read_value_into, user_fallback};
use crate::stats::{Counters, Stats};
use crate::value::Value;

/// An open store: a cheap `Clone + Send + Sync` handle. Dropping the last handle (iterators
/// count) stops the background threads, persists, marks a clean shutdown and releases the
/// pool's lock before returning.
#[derive(Clone)]
pub struct Db {
    pub(crate) inner: Arc<Handle>,
    /// Durability of writes made through this handle (`with_durability`).
    pub(crate) durability: Durability,
}

/// What the handles share: the store and its background threads. Its drop joins the threads
/// (which hold only the store, never a handle), then closes the store.
pub(crate) struct Handle {
    pub core: Arc<Inner>,
    pub background: Mutex<Option<Background>>,
}

impl std::ops::Deref for Handle {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.core
    }
}

/// The shared state of an open store.
pub(crate) struct Inner {
    pub medium: Arc<dyn Medium>,
    pub path: Option<PathBuf>,
    pub mode: &'static str,
    pub options: Options,
    pub geometry: Geometry,
    pub set_uuid: Uuid,
    pub index: Index,
    /// The group-commit queue and, behind its lock, the log's space (`None` when read-only).
    pub commit: CommitQueue,
    pub latch: Arc<Latch>,
    pub report: Arc<RecoveryReport>,
    pub opener_pid: u32,
    pub counters: Counters,
    pub closed: std::sync::atomic::AtomicBool,
    /// Reader epochs: a segment is reclaimed only after every older reader left.
    pub epochs: crate::epoch::Epochs,
    /// One compaction pass at a time.
    pub compaction: Mutex<crate::compact::CompactionState>,
    /// The replica set the medium writes through, if the store has replicas (`replicas.rs`).
    pub replicas: Option<crate::replicas::Replicas>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("path", &self.inner.path)
            .field("mode", &self.inner.mode)
            .field("keys", &self.inner.index.len())
            .field("durability", &self.durability)
            .field("failed", &self.inner.latch.is_tripped())
            .finish()
    }
}

impl Db {
    /// The value of `key`, if present.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Value>> {
        let mut buf = Vec::new();
        Ok(self.inner.read(key.as_ref(), &mut buf, "get")?.then(|| Value::from(buf)))
    }

    /// Copy the value of `key` into `out` (replacing its contents); `false` if absent. Does not
    /// allocate once `out` has the capacity of the record.
    pub fn get_into(&self, key: impl AsRef<[u8]>, out: &mut Vec<u8>) -> Result<bool> {
        self.inner.read(key.as_ref(), out, "get_into")
    }

    /// Whether `key` is present (an index lookup; the value is not read).
    pub fn contains_key(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        Ok(self.version(key)?.is_some())
    }

    /// The version of `key`: the LSN of its current record, `None` while it is absent. Every write
    /// of a key (put, remove, a clear) gives it a new version, so one version seen at two times
    /// means the key was not written in between — except for an absent key, which may have been
    /// written and removed again meanwhile. Reads the index only (no media access). For
    /// optimistic checks across calls (the server's WATCH); within one transaction use
    /// [`Transaction::version`](crate::Transaction::version).
    pub fn version(&self, key: impl AsRef<[u8]>) -> Result<Option<u64>> {
        self.inner.latch.check()?;
        Counters::add(&self.inner.counters.reads, 1);
        Ok(self.inner.index.get(key.as_ref()).map(|location| location.lsn))
    }

    /// Iterate over the keys in `range`, ascending (or descending with `.rev()`). Each item is a
    /// committed version; keys written during the iteration may or may not appear.
    pub fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> Iter {
        let own = |bound: Bound<&K>| bound.map(|k| Arc::<[u8]>::from(k.as_ref()));
        Iter::new(self.clone(), own(range.start_bound()), own(range.end_bound()))
    }

    /// The keys in `range` without their values, ascending (`.rev()` for descending): the
    /// in-memory index alone, so no item reads the medium or meets a media error. Keys removed
    /// before their turn are skipped; keys written during the iteration may or may not appear.
    /// Refused when the store has failed (as `contains_key`).
    pub fn keys<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> Result<Keys> {
        self.inner.latch.check()?;
        let own = |bound: Bound<&K>| bound.map(|k| Arc::<[u8]>::from(k.as_ref()));
        Ok(Keys::new(self.clone(), own(range.start_bound()), own(range.end_bound())))
    }

    /// The keys starting with `prefix`, without their values (as [`Db::keys`]).
    pub fn keys_with_prefix(&self, prefix: impl AsRef<[u8]>) -> Result<Keys> {
        self.inner.latch.check()?;
        let prefix = prefix.as_ref();
        let high = match prefix_successor(prefix) {
            Some(end) => Bound::Excluded(Arc::from(end)),
            None => Bound::Unbounded,
        };
        Ok(Keys::new(self.clone(), Bound::Included(Arc::from(prefix)), high))
    }

    /// Iterate over the keys starting with `prefix`.
    pub fn prefix(&self, prefix: impl AsRef<[u8]>) -> Iter {
        let prefix = prefix.as_ref();
        let high = match prefix_successor(prefix) {
            Some(end) => Bound::Excluded(Arc::from(end)),
            None => Bound::Unbounded,
        };
        Iter::new(self.clone(), Bound::Included(Arc::from(prefix)), high)
    }

    /// Iterate over every key.
    pub fn iter(&self) -> Iter {
        Iter::new(self.clone(), Bound::Unbounded, Bound::Unbounded)
    }

    /// Number of live keys.
    pub fn len(&self) -> usize {
        self.inner.index.len()
    }

    /// Whether no key is live.
    pub fn is_empty(&self) -> bool {
        self.inner.index.is_empty()
    }

    /// A handle to the same store whose writes use `durability` (`Immediate`: acknowledged =
    /// durable; `Eventual`: durable within `Options::flush_interval`; `None`: at `sync()`,
    /// close, a segment roll or a later `Immediate` write). See `docs/concurrency.md`.
    #[must_use]
    pub fn with_durability(&self, durability: Durability) -> Db {
        Db { inner: Arc::clone(&self.inner), durability }
    }

    /// The durability of this handle's writes.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// Make every write acknowledged before this call durable (whatever its durability).
    pub fn sync(&self) -> Result<()> {
        self.inner.latch.check()?;
        self.inner.persist_reserved(true)
    }

    /// What recovery found when this store was opened.
    pub fn recovery_report(&self) -> &RecoveryReport {
        &self.inner.report
    }

    /// The options the store was opened with.
    pub fn options(&self) -> &Options {
        &self.inner.options
    }

    /// The pool file, if the store was opened from a path.
    pub fn path(&self) -> Option<&std::path::Path> {
        self.inner.path.as_deref()
    }

    /// A snapshot of the store's state and counters.
    pub fn stats(&self) -> Stats {
        Stats::collect(&self.inner, self.durability)
    }
}

impl Inner {
    /// Read the current value of `key` into `buf` through the barrier; `false` if absent.
    pub(crate) fn read(&self, key: &[u8], buf: &mut Vec<u8>, site: &'static str) -> Result<bool> {
        Ok(self.read_versioned(key, buf, site)?.is_some())
    }

    /// Read the current value of `key` into `buf`; the LSN of the record read (`None`: absent).
    /// Lock-free: an index probe and a verified copy inside a reader epoch; a bad read looks
    /// up once more (the key may have moved: compaction, or an overwrite) before it counts as
    /// damage.
    pub(crate) fn read_versioned(
        &self,
        key: &[u8],
        buf: &mut Vec<u8>,
        site: &'static str,
    ) -> Result<Option<u64>> {
        self.latch.check()?;
        Counters::add(&self.counters.reads, 1);
        let _reader = self.epochs.enter();
        let mut attempt = 0;
        loop {
            let Some(location) = self.lookup(key) else { return Ok(None) };
            match read_value_into(self.medium.as_ref(), &self.set_uuid, key, location, buf)? {
                Ok(()) => return Ok(Some(location.lsn)),
                Err(_) if attempt == 0 => attempt += 1,
                Err(bad) => {
                    Counters::add(&self.counters.read_faults, 1);
                    if self.retry_from_replica(key, location, buf)? {
                        return Ok(Some(location.lsn));
                    }
                    buf.clear();
                    return Err(user_fallback(&self.options.policy, bad, key, site));
                }
            }
        }
    }

    /// Read `key` into `buf` as `read_versioned` does, but only where the read is clean and the
    /// record at most `max_len` bytes: the LSN and length of the record read, `Some(None)` if
    /// absent. A longer record, one that does not read cleanly (poison, damage), a medium error or
    /// a latched store give `None`, and no policy runs: the iterator's read-ahead leaves such a
    /// key to the caller's own read, in its turn.
    pub(crate) fn read_if_clean(
        &self,
        key: &[u8],
        buf: &mut Vec<u8>,
        max_len: u64,
    ) -> Option<Option<(u64, u64)>> {
        self.latch.check().ok()?;
        let _reader = self.epochs.enter();
        let Some(location) = self.lookup(key) else { return Some(None) };
        if u64::from(location.len) > max_len {
            return None;
        }
        match read_value_into(self.medium.as_ref(), &self.set_uuid, key, location, buf) {
            Ok(Ok(())) => {
                Counters::add(&self.counters.reads, 1);
                Some(Some((location.lsn, u64::from(location.len))))
            }
            Ok(Err(_)) | Err(_) => None,
        }
    }

    /// The current value of `key` as a `Value`.
    pub(crate) fn read_value(&self, key: &[u8], site: &'static str) -> Result<Option<Value>> {
        let mut buf = Vec::new();
        Ok(self.read(key, &mut buf, site)?.then(|| Value::from(buf)))
    }

    pub(crate) fn lookup(&self, key: &[u8]) -> Option<Location> {
        self.index.get(key)
    }
}

/// The smallest key greater than every key starting with `prefix` (`None`: no such key).
fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use mcstore_pmem::{Domain, Medium, MemberId};

    use super::*;
    use crate::error::Error;
    use crate::test_support::{reopen, sim_db, small_options};

    const POOL: u64 = 512 << 10;

    /// With background work on, a point table whose growth's copy is done while no write comes
    /// is published by the flusher's tick: the store does not hold both tables until its next
    /// write.
    #[test]
    fn the_flusher_ends_a_growth_that_no_write_ends() {
        let tick = std::time::Duration::from_millis(5);
        // The compactor off: its moves are writes, which end a growth too.
        let options = small_options().background(true).flush_interval(tick);
        let (_sim, db) = sim_db(POOL, options.compaction_interval(None));
        let mut n = 0u32;
        while !db.inner.index.growing() {
            db.put(n.to_be_bytes(), "v").unwrap();
            n += 1;
            assert!(n < 2000, "no growth in the background");
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while db.inner.index.growing() {
            assert!(std::time::Instant::now() < deadline, "the growth never ended");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        for i in 0..n {
            assert_eq!(db.get(i.to_be_bytes()).unwrap().as_deref(), Some(&b"v"[..]), "key {i}");
        }
    }

    #[test]
    fn reopen_after_drop_keeps_every_write() {
        let (sim, db) = sim_db(POOL, small_options());
        for i in 0..500u32 {
            db.put(i.to_be_bytes(), i.to_string()).unwrap();
        }
        for i in (0..500u32).step_by(3) {
            db.remove(i.to_be_bytes()).unwrap();
        }
        assert!(db.stats().segment_rolls >= 1);
        let handle = db.clone();
        drop(db);
        handle.put("last", "write").unwrap();
        drop(handle);
        let db = reopen(&sim, small_options());
        assert!(db.recovery_report().clean_shutdown);
        assert_eq!(db.get("last").unwrap().unwrap(), b"write");
        for i in 0..500u32 {
            let want = (i % 3 != 0).then(|| i.to_string());
            let got = db.get(i.to_be_bytes()).unwrap();
            assert_eq!(got.as_deref(), want.as_deref().map(str::as_bytes), "key {i}");
        }
        assert_eq!(db.len(), 1 + 500 - 167);
        db.close().unwrap();
    }

    #[test]
    fn poisoned_value_fails_with_its_key_and_other_keys_read_fine() {
        let (sim, db) = sim_db(POOL, small_options());
        for key in ["k1", "k2", "k3"] {
            db.put(key, vec![key.as_bytes()[1]; 300]).unwrap();
        }
        let location = db.inner.index.get(b"k2").unwrap();
        // A line strictly inside k2's record (it spans more than three lines).
        let line = (location.offset + 128) & !63;
        assert!(line + 64 <= location.offset + u64::from(location.len));
        sim.inject_poison(line, 64).unwrap();
        match db.get("k2") {
            Err(Error::Media { domain, member, offset, len, key }) => {
                assert_eq!((domain, member, offset, len), (Domain::User, MemberId(0), line, 64));
                assert_eq!(key.as_deref(), Some(&b"k2"[..]));
            }
            other => panic!("expected Error::Media, got {other:?}"),
        }
        assert_eq!(db.get("k1").unwrap().unwrap(), vec![b'1'; 300]);
        assert_eq!(db.get("k3").unwrap().unwrap(), vec![b'3'; 300]);
        // Operations that read fail before writing; delete does not read.
        let written = db.stats().records_written;
        assert!(matches!(db.remove("k2"), Err(Error::Media { .. })));
        assert!(matches!(db.insert("k2", "x"), Err(Error::Media { .. })));
        assert_eq!(db.stats().records_written, written);
        assert!(!db.stats().failed);
        assert_eq!(db.stats().read_faults, 3);
        assert!(db.delete("k2").unwrap());
        assert_eq!(db.get("k2").unwrap(), None);
        db.put("k2", "fresh").unwrap();
        assert_eq!(db.get("k2").unwrap().unwrap(), b"fresh");
    }

    /// Real SIGBUS: emulated poison on a mapped pool in /dev/shm is met by the machine-check-safe
    /// copy; the read fails with the key, other keys read fine, and the store carries on.
    #[test]
    fn mapped_poison_fails_the_read_naming_the_key() {
        let dir = crate::test_support::shm_dir();
        let map = mcstore_pmem::MapOptions::new().mode(mcstore_pmem::ModeRequest::ForcedPmem);
        let mapped = Arc::new(
            mcstore_pmem::MappedMedium::create(&dir.path().join("pool"), 1 << 20, &map).unwrap(),
        );
        let medium: Arc<dyn Medium> = mapped.clone();
        let db = Db::create_on(medium, small_options()).unwrap();
        db.put("before", "b").unwrap();
        db.put("victim", vec![7u8; 3 * 4096]).unwrap();
        db.put("after", "a").unwrap();
        let location = db.inner.index.get(b"victim").unwrap();
        let page = location.offset.next_multiple_of(4096);
        assert!(page + 4096 <= location.offset + u64::from(location.len));
        mapped.inject_poison(page, 4096).unwrap();
        match db.get("victim") {
            Err(Error::Media { domain: Domain::User, offset, len, key, .. }) => {
                assert_eq!((offset, len), (page, 4096));
                assert_eq!(key.as_deref(), Some(&b"victim"[..]));
            }
            other => panic!("expected Error::Media, got {other:?}"),
        }
        assert_eq!(db.get("before").unwrap().unwrap(), b"b");
        assert_eq!(db.get("after").unwrap().unwrap(), b"a");
        db.put("later", "l").unwrap();
        assert_eq!(db.get("later").unwrap().unwrap(), b"l");
        assert!(!db.stats().failed);
    }

    /// `Halt` on a poisoned value: the hook runs, then the process aborts. Run in a child (this
    /// test binary re-executed), since the abort kills the process.
    #[test]
    fn user_halt_runs_the_hook_then_aborts() {
        const ROLE: &str = "MCSTORE_ENGINE_TEST_CHILD";
        if std::env::var_os(ROLE).is_some() {
            let policy = crate::policy::Policy::default()
                .user(true, crate::policy::UserFallback::Halt)
                .on_halt(|report| eprintln!("halt hook: {report}"));
            let (sim, db) = sim_db(POOL, small_options().policy(policy));
            db.put("victim", vec![1u8; 300]).unwrap();
            let location = db.inner.index.get(b"victim").unwrap();
            sim.inject_poison((location.offset + 128) & !63, 64).unwrap();
            let _ = db.get("victim");
            eprintln!("not reached: get returned");
            return;
        }
        let exe = std::env::current_exe().unwrap();
        let output = std::process::Command::new(exe)
            .args(["--exact", "db::tests::user_halt_runs_the_hook_then_aborts", "--nocapture"])
            .env(ROLE, "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            output.status.signal(),
            Some(libc_sigabrt()),
            "status {:?}: {stderr}",
            output.status
        );
        assert!(stderr.contains("halt hook: mcstore halting"), "{stderr}");
        assert!(stderr.contains("key victim"), "{stderr}");
        assert!(!stderr.contains("not reached"), "{stderr}");
    }

    /// SIGABRT's number on Linux (no libc dependency in this crate).
    fn libc_sigabrt() -> i32 {
        6
    }

    #[test]
    fn read_only_store_refuses_writes() {
        let (sim, db) = sim_db(POOL, small_options());
        db.put("a", "1").unwrap();
        drop(db);
        let db = reopen(&sim, small_options().read_only(true));
        assert_eq!(db.get("a").unwrap().unwrap(), b"1");
        assert!(matches!(db.put("b", "2"), Err(Error::ReadOnly)));
        assert!(matches!(db.remove("a"), Err(Error::ReadOnly)));
        let fences = sim.fences_seen();
        drop(db);
        assert_eq!(sim.fences_seen(), fences, "a read-only close writes nothing");
    }

    #[test]
    fn handles_are_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<Db>();
        let (_sim, db) = sim_db(2 << 20, small_options());
        std::thread::scope(|scope| {
            for writer in 0..2u8 {
                let db = db.clone();
                scope.spawn(move || {
                    for i in 0..300u32 {
                        db.put([&[writer][..], &i.to_be_bytes()].concat(), i.to_le_bytes())
                            .unwrap();
                    }
                });
            }
            let reader = db.clone();
            scope.spawn(move || {
                for i in 0..300u32 {
                    // Either not yet written or exactly the written value.
                    if let Some(v) = reader.get([&[0u8][..], &i.to_be_bytes()].concat()).unwrap() {
                        assert_eq!(v, i.to_le_bytes().to_vec());
                    }
                }
            });
        });
        assert_eq!(db.len(), 600);
    }
}
