//! Opening a store: create or open the medium, recover, apply the Engine policy to what recovery
//! found, bulk-load the index, mark the pool in use (closing is `close.rs`).
//!
//! INVARIANT: a writable open marks the pool in use (clean-shutdown flag cleared) before any write
//! is accepted, so a crash from then on is seen as an unclean shutdown.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use mcstore_pmem::{MapOptions, MappedMedium, Medium};
use mcstore_recovery::format::{FormatError, RecordKind, SegmentId};
use mcstore_recovery::replica::ReplicaSet;
use mcstore_recovery::scan::{
    self, IndexEntry, Recovered, ScanOptions, SegmentStatus, ShutdownEvidence,
};
use mcstore_recovery::{CreateParams, pool};
use parking_lot::Mutex;

use crate::background::Background;
use crate::commit::CommitQueue;
use crate::db::{Db, Handle, Inner};
use crate::error::{Error, Result};
use crate::index::{Index, Location};
use crate::latch::Latch;
use crate::options::Options;
use crate::policy::EngineFallback;
use crate::space::SpaceMap;
use crate::stats::Counters;
use crate::writer::{LogWriter, OpenSegment, WriterStart};

/// Granularity pool sizes are rounded up to.
const POOL_SIZE_ALIGN: u64 = mcstore_pmem::limits::PAGE_SIZE;

impl Db {
    /// Create a new pool file at `path` of `options.size_bytes` and open it
    /// (`Error::AlreadyExists` if the file exists).
    pub fn create(path: impl AsRef<Path>, options: Options) -> Result<Db> {
        let path = path.as_ref();
        options.validate(false)?;
        let len = options.size_bytes.next_multiple_of(POOL_SIZE_ALIGN);
        let map = map_options(&options, len);
        let medium = MappedMedium::create(path, len, &map)
            .map_err(|error| Error::pmem("creating the pool file", error))?;
        let mode = medium.mode().as_str();
        let created = if options.replicas.is_empty() {
            let medium: Arc<dyn Medium> = Arc::new(medium);
            format_pool(medium.as_ref(), &options).and_then(|()| {
                open_medium(medium, Some(path.to_path_buf()), mode, options, false, None)
            })
        } else {
            let replicas = options.replicas.clone();
            crate::replicas::create_set(medium, len, &map, &options).and_then(|set| {
                let at = Some(path.to_path_buf());
                let opened = open_medium(set.medium(), at, mode, options, false, Some(set));
                if opened.is_err() {
                    for replica in &replicas {
                        let _ = std::fs::remove_file(replica);
                    }
                }
                opened
            })
        };
        if created.is_err() {
            // Not a pool: do not leave a file that every later open would refuse.
            let _ = std::fs::remove_file(path);
        }
        created
    }

    /// Open the pool file at `path` (`Error::NotFound` if absent). The pool grows to
    /// `options.size_bytes` if that was set and the pool is smaller (unless read-only).
    pub fn open(path: impl AsRef<Path>, options: Options) -> Result<Db> {
        let path = path.as_ref();
        options.validate(false)?;
        let current = std::fs::metadata(path).map_or(0, |m| m.len());
        let map = map_options(&options, current);
        let medium = MappedMedium::open(path, &map)
            .map_err(|error| Error::pmem("opening the pool file", error))?;
        let mode = medium.mode().as_str();
        let wanted = options.size_bytes.next_multiple_of(POOL_SIZE_ALIGN);
        let len = medium.len();
        if !options.read_only && options.size_explicit && len < wanted {
            medium.grow(wanted).map_err(|error| match error {
                mcstore_pmem::Error::OutOfSpace { .. } => {
                    Error::OutOfSpace { needed: wanted - len, pool_bytes: len, max_bytes: wanted }
                }
                other => Error::pmem("growing the pool to size_bytes", other),
            })?;
        }
        if options.replicas.is_empty() {
            return open_medium(
                Arc::new(medium),
                Some(path.to_path_buf()),
                mode,
                options,
                false,
                None,
            );
        }
        let (set, _) = crate::replicas::open_set(medium, &map, &options)?;
        open_medium(set.medium(), Some(path.to_path_buf()), mode, options, false, Some(set))
    }

    /// Open the pool at `path`, creating it if absent or if a creation there never finished
    /// (a crash before its first superblock was whole: it holds nothing).
    pub fn open_or_create(path: impl AsRef<Path>, options: Options) -> Result<Db> {
        let path = path.as_ref();
        let create = |options: Options| match Db::create(path, options.clone()) {
            // Someone else created it between our open and create.
            Err(Error::AlreadyExists { .. }) => Db::open(path, options),
            other => other,
        };
        match Db::open(path, options.clone()) {
            Err(Error::NotFound { .. }) => create(options),
            Err(Error::UnsupportedFormat { .. })
                if options.replicas.is_empty() && never_created(path) =>
            {
                std::fs::remove_file(path).map_err(|source| Error::Io {
                    context: format!("removing the unfinished pool {}", path.display()),
                    source: Box::new(source),
                })?;
                create(options)
            }
            other => other,
        }
    }

    /// Format `medium` as a new pool and open it (tests and fuzzing: a `SimMedium`). The
    /// medium's length is the pool size; `size_bytes` is ignored, `max_size_bytes` applies.
    pub fn create_on(medium: Arc<dyn Medium>, options: Options) -> Result<Db> {
        options.validate(true)?;
        format_pool(medium.as_ref(), &options)?;
        open_medium(medium, None, "custom", options, true, None)
    }

    /// Open the pool on `medium` (tests and fuzzing: a `SimMedium` or a crash image).
    pub fn open_on(medium: Arc<dyn Medium>, options: Options) -> Result<Db> {
        options.validate(true)?;
        open_medium(medium, None, "custom", options, true, None)
    }

    /// Close this handle. The last handle persists, marks a clean shutdown and releases the
    /// pool's lock, returning what failed; other handles keep the store open (then this only
    /// reports the failed state).
    pub fn close(self) -> Result<()> {
        match Arc::try_unwrap(self.inner) {
            Ok(handle) => handle.close(),
            Err(shared) => shared.latch.check(),
        }
    }
}

/// Whether the file at `path` is what a crashed `Db::create` leaves (`pool::never_created`).
fn never_created(path: &Path) -> bool {
    use std::io::Read;
    let mut area = vec![0u8; mcstore_recovery::limits::SUPERBLOCK_AREA_BYTES as usize];
    let read = std::fs::File::open(path).and_then(|mut file| file.read_exact(&mut area));
    read.is_ok() && pool::never_created(&area)
}

fn map_options(options: &Options, current_len: u64) -> MapOptions {
    MapOptions::new()
        .mode(options.mode.into())
        .max_len(options.max_len(current_len, false).next_multiple_of(POOL_SIZE_ALIGN))
        .read_only(options.read_only)
}

fn format_pool(medium: &dyn Medium, options: &Options) -> Result<()> {
    let params =
        CreateParams { segment_size_bytes: options.segment_size_bytes, ..Default::default() };
    match pool::create(medium, &params) {
        Ok(_) => Ok(()),
        // A pool too small for one segment is the caller's input, not a damaged pool.
        Err(mcstore_recovery::Error::Format(FormatError::BadGeometry { reason })) => {
            Err(Error::InvalidOptions { reason })
        }
        Err(error) => Err(Error::recovery("formatting the pool", error)),
    }
}

/// Recover `medium`, apply the Engine policy to damage, and build the store.
pub(crate) fn open_medium(
    medium: Arc<dyn Medium>,
    path: Option<PathBuf>,
    mode: &'static str,
    options: Options,
    sized_by_medium: bool,
    replicas: Option<Arc<ReplicaSet>>,
) -> Result<Db> {
    // Engine domain, middle choice: the scan repairs damage in the primary from a replica.
    let repairer = replicas
        .as_ref()
        .filter(|_| options.policy.engine.retry_replica)
        .map(|set| set.repairer() as Arc<dyn mcstore_recovery::Repairer>);
    // Clean-shutdown evidence: the index snapshot beside a pool file, and the device's
    // unsafe-shutdown count if configured (docs/format.md, "Clean shutdown and the fast open").
    let shutdown = ShutdownEvidence {
        snapshot: path.as_deref().map(|p| scan::load_snapshot(&scan::snapshot_path(p))),
        unsafe_shutdown_count: options
            .unsafe_shutdown_count_path
            .as_deref()
            .map(scan::read_unsafe_shutdown_count),
    };
    let scan = ScanOptions {
        on_progress: options.on_recovery_progress.clone(),
        mode: mode.to_string(),
        repairer,
        shutdown,
        salvage: options.salvage,
    };
    let recovered = mcstore_recovery::scan::recover(medium.as_ref(), &scan)
        .map_err(|error| Error::recovery("recovering the pool", error))?;
    if let Some(reason) = &recovered.report.read_only_reason
        && !options.read_only
    {
        return Err(Error::UnsupportedFormat {
            reason: format!("{reason}: the pool can be opened read-only only"),
            source: None,
        });
    }
    let latch = Arc::new(Latch::default());
    // A salvage open takes what no member could repair as dropped (listed in the report)
    // instead of handing it to the fallback.
    let salvaged = options.salvage && !recovered.damage.is_empty();
    if !recovered.damage.is_empty() && !salvaged {
        // Engine domain: what no replica could repair during the scan goes to the fallback.
        match options.policy.engine.fallback {
            // At open, `Halt` returns the report instead of aborting.
            EngineFallback::Fail | EngineFallback::Halt => {
                return Err(Error::Damaged(Box::new(recovered.report)));
            }
            EngineFallback::Latch => latch.trip(format!(
                "recovery found {} damaged range(s); see recovery_report()",
                recovered.damage.len()
            )),
        }
    }
    let Recovered {
        mut superblock,
        geometry,
        segments,
        mut open_segment,
        entries,
        next_lsn,
        next_segment_seq,
        mut report,
        damage,
        ..
    } = recovered;
    report.salvaged = salvaged;
    let salvage = if salvaged {
        Salvage::plan(&damage, &segments, &entries, &geometry)
    } else {
        Salvage::default()
    };
    // Never append into a damaged segment: the first write rolls to a fresh one.
    if open_segment.is_some_and(|id| salvage.segments.contains_key(&id.0)) {
        open_segment = None;
    }
    // INVARIANT: never issue a sequence recovery saw (persisted with the next superblock write).
    superblock.highest_segment_seq =
        superblock.highest_segment_seq.max(next_segment_seq.saturating_sub(1));
    // Space: every in-use segment's committed tail is used; live = the indexed puts. A
    // recovered segment may hold records of any age (min LSN unknown: 0).
    let mut space = SpaceMap::default();
    for s in segments.iter().filter(|s| s.status == SegmentStatus::InUse) {
        space.set_seq(s.id.0, s.seq);
        if s.tail > 0 {
            space.set_used(s.id.0, s.tail);
            space.note_lsn(s.id.0, 0);
        }
    }
    // A salvaged segment whose tail word was bad holds the records the salvage walk read: used
    // (its whole data area, the tail being unknown) until it is cleaned below.
    for s in segments.iter().filter(|s| s.status == SegmentStatus::Damaged && s.seq != 0) {
        if salvage.segments.contains_key(&s.id.0) {
            space.set_seq(s.id.0, s.seq);
            space.set_used(s.id.0, geometry.data_capacity());
            space.note_lsn(s.id.0, 0);
        }
    }
    let index_started = std::time::Instant::now();
    for e in entries.iter().filter(|e| e.kind == RecordKind::Put) {
        if let Some(id) = geometry.segment_of(e.offset) {
            space.add_live(id.0, u64::from(e.len));
        }
    }
    // Straight from recovery's entries (short keys inline there and in the index: no
    // allocation per key); tombstones and the clear marker are not indexed.
    let index = Index::bulk_load_by(entries, |e| {
        let location =
            Location { offset: e.offset, len: e.len, segment_seq: e.segment_seq, lsn: e.lsn.0 };
        (e.kind == RecordKind::Put).then_some((&e.key[..], location))
    });
    report.index_duration = index_started.elapsed();
    let set_uuid = superblock.set_uuid;
    let writer = if options.read_only || latch.is_tripped() {
        None
    } else {
        let open = open_segment
            .and_then(|id| segments.iter().find(|s| s.id == id))
            .map(|s| OpenSegment { id: s.id, seq: s.seq, tail: s.tail });
        // Free: never used, or reclaimed by compaction (a header over an empty tail) unless it
        // is the segment to append to.
        let reclaimed = |s: &mcstore_recovery::SegmentInfo| {
            s.status == SegmentStatus::InUse && s.tail == 0 && Some(s.id) != open_segment
        };
        let free: BTreeSet<u32> = segments
            .iter()
            .filter(|s| s.status == SegmentStatus::Free || reclaimed(s))
            .map(|s| s.id.0)
            .collect();
        let start = WriterStart {
            superblock,
            geometry,
            open,
            free,
            next_lsn: next_lsn.0,
            max_len: options.max_len(medium.len(), sized_by_medium),
        };
        // PERSIST: headers and tails recovery read may be visible but never flushed (a flush
        // failed earlier in this process); flushed here, durable at the next fence (growth's or
        // the in-use mark's below), before any record is appended over them.
        let in_use = segments.iter().filter(|s| s.status == SegmentStatus::InUse).map(|s| s.id);
        // A poisoned superblock slot is the next one written: its lines are rewritten (zeroed)
        // through the repair path first, or the store refuses there.
        for &(offset, len) in &salvage.superblock_poison {
            crate::compact::zero_poisoned(medium.as_ref(), offset, len).map_err(|reason| {
                Error::Damaged(Box::new(mcstore_recovery::scan::RecoveryReport {
                    open_reason: format!("salvage could not repair a superblock slot: {reason}"),
                    ..report.clone()
                }))
            })?;
        }
        pool::flush_adopted(medium.as_ref(), &geometry, in_use)
            .map_err(|error| Error::recovery("persisting the recovered segment metadata", error))?;
        let recorded = start.superblock.segment_count;
        let present = geometry.segment_count(medium.len());
        let mut writer = LogWriter::new(Arc::clone(&medium), Arc::clone(&latch), start);
        // Segments the file holds beyond the recorded count (the file grew at open, or a growth
        // crashed before recording them) are recovered as free; record them before use.
        if recorded != 0 {
            writer.record_growth(recorded, present)?;
        }
        let pid = std::process::id();
        // PERSIST: the pool is marked in use (SUPERBLOCK_WRITE) before any write is accepted,
        // so a crash from here on is seen as an unclean shutdown.
        writer.update_superblock(|sb| {
            sb.clean_shutdown = false;
            sb.opener_pid = pid;
        })?;
        // The snapshot describes the log as it was closed; from here on the log changes (its
        // segment marks would refuse it anyway). Removing it only saves space.
        if let Some(p) = &path {
            let _ = std::fs::remove_file(scan::snapshot_path(p));
        }
        Some(writer)
    };
    let durability = options.durability;
    let core = Arc::new(Inner {
        medium,
        path,
        mode,
        options,
        geometry,
        set_uuid,
        index,
        commit: CommitQueue::new(writer, space),
        latch,
        report: Arc::new(report),
        opener_pid: std::process::id(),
        counters: Counters::default(),
        closed: AtomicBool::new(false),
        epochs: crate::epoch::Epochs::default(),
        compaction: Mutex::new(crate::compact::CompactionState::default()),
        replicas: replicas.map(crate::replicas::Replicas),
    });
    let mut core = core;
    if salvaged {
        salvage.clean(&mut core);
    }
    let background = Mutex::new(Background::start(&core));
    Ok(Db { inner: Arc::new(Handle { core, background }), durability })
}

/// What a salvage open cleans up once the store is built: the damaged segments (their
/// surviving entries and poisoned ranges) and the poisoned superblock slots.
#[derive(Debug, Default)]
struct Salvage {
    /// The damaged segments to clean, by id.
    segments: std::collections::BTreeMap<u32, DamagedSegment>,
    /// Segments with damage a move and reclaim cannot clear, with why.
    pinned: Vec<(u32, String)>,
    /// Poisoned superblock slots, `(offset, len)`.
    superblock_poison: Vec<(u64, u64)>,
}

/// One damaged segment a salvage open cleans.
#[derive(Debug, Default)]
struct DamagedSegment {
    /// Locations of recovery's index entries in it (the records to keep).
    locations: Vec<Location>,
    /// Its poisoned ranges, `(offset, len)`.
    poisoned: Vec<(u64, u64)>,
}

impl Salvage {
    /// Sort the dropped damage: segments to move out and reclaim, segments to leave alone.
    fn plan(
        damage: &[mcstore_recovery::scan::Damage],
        segments: &[mcstore_recovery::SegmentInfo],
        entries: &[IndexEntry],
        geometry: &mcstore_recovery::format::Geometry,
    ) -> Salvage {
        use mcstore_recovery::scan::DamageKind;
        let mut plan = Salvage::default();
        let mut refused = BTreeSet::new();
        for d in damage {
            match (&d.kind, d.segment) {
                (DamageKind::SuperblockSlot, _) => plan.superblock_poison.push((d.offset, d.len)),
                (
                    DamageKind::Media
                    | DamageKind::BadRecord
                    | DamageKind::BadTail
                    | DamageKind::BadSegmentHeader,
                    Some(id),
                ) if segments.get(id.0 as usize).is_some_and(|s| s.id == id) => {
                    let segment = plan.segments.entry(id.0).or_default();
                    if d.kind == DamageKind::Media {
                        segment.poisoned.push((d.offset, d.len));
                    }
                }
                // Foreign, misplaced, stale or duplicate segments, a truncated pool: what is
                // there is not this log's, or not known to be; nothing is moved or rewritten.
                (kind, Some(id)) => {
                    refused.insert((id.0, format!("{kind:?} damage is left as found")));
                }
                _ => {}
            }
        }
        for (id, why) in refused {
            plan.segments.remove(&id);
            plan.pinned.push((id, why));
        }
        for e in entries {
            if let Some(segment) =
                geometry.segment_of(e.offset).and_then(|id| plan.segments.get_mut(&id.0))
            {
                segment.locations.push(Location {
                    offset: e.offset,
                    len: e.len,
                    segment_seq: e.segment_seq,
                    lsn: e.lsn.0,
                });
            }
        }
        plan
    }

    /// Move out and reclaim every planned segment (a writable store only), and record the
    /// outcome in the store's report. `core` is not shared yet (no background thread runs).
    fn clean(self, core: &mut Arc<Inner>) {
        let mut reclaimed = Vec::new();
        let mut pinned: Vec<_> =
            self.pinned.into_iter().map(|(id, why)| (SegmentId(id), why)).collect();
        let writable = core.commit.lock().writer.is_some();
        for (id, segment) in self.segments {
            if !writable {
                pinned.push((SegmentId(id), "the store is read-only or failed".into()));
                continue;
            }
            match core.salvage_segment(id, &segment.locations, &segment.poisoned) {
                Ok(()) => reclaimed.push(SegmentId(id)),
                Err(why) => pinned.push((SegmentId(id), why)),
            }
        }
        if let Some(report) = Arc::get_mut(core).and_then(|inner| Arc::get_mut(&mut inner.report)) {
            report.salvage_reclaimed = reclaimed;
            report.salvage_pinned = pinned;
        }
    }
}

#[cfg(test)]
mod tests {
    use mcstore_pmem::{Medium, SimMedium};
    use mcstore_recovery::format::SegmentId;

    use super::*;
    use crate::policy::Policy;
    use crate::test_support::{SEGMENT, reopen, shm_dir, sim_db, small_options};

    #[test]
    fn mapped_pool_create_open_and_lock() {
        let dir = shm_dir();
        let path = dir.path().join("pool");
        let options = small_options().size_bytes(1 << 20).mode(crate::Mode::ForcedPmem);
        let db = Db::create(&path, options.clone()).unwrap();
        assert_eq!(db.stats().mode, "forced-pmem");
        db.put("a", "1").unwrap();
        assert!(matches!(Db::create(&path, options.clone()), Err(Error::AlreadyExists { .. })));
        assert!(matches!(Db::open(&path, options.clone()), Err(Error::Locked { .. })));
        drop(db);
        // The lock is released by the time drop returns.
        let db = Db::open(&path, options.clone()).unwrap();
        assert!(db.recovery_report().clean_shutdown);
        assert_eq!(db.get("a").unwrap().unwrap(), b"1");
        db.close().unwrap();
        let missing = dir.path().join("missing");
        assert!(matches!(Db::open(&missing, options.clone()), Err(Error::NotFound { .. })));
        let db = Db::open_or_create(&missing, options.clone()).unwrap();
        db.put("b", "2").unwrap();
        drop(db);
        let db = Db::open_or_create(&missing, options).unwrap();
        assert_eq!(db.get("b").unwrap().unwrap(), b"2");
    }

    #[test]
    fn open_grows_to_size_bytes_and_never_shrinks() {
        let dir = shm_dir();
        let path = dir.path().join("pool");
        let options = small_options().mode(crate::Mode::ForcedPmem);
        Db::create(&path, options.clone().size_bytes(512 << 10)).unwrap().close().unwrap();
        let db = Db::open(&path, options.clone().size_bytes(1 << 20)).unwrap();
        assert_eq!(db.stats().pool_bytes, 1 << 20);
        db.close().unwrap();
        let db = Db::open(&path, options.clone().size_bytes(256 << 10)).unwrap();
        assert_eq!(db.stats().pool_bytes, 1 << 20);
        db.close().unwrap();
        // Without an explicit size an open keeps the pool's size (the default is for create).
        let path = dir.path().join("small");
        Db::create(&path, options.clone().size_bytes(512 << 10)).unwrap().close().unwrap();
        let db = Db::open(&path, options).unwrap();
        assert_eq!(db.stats().pool_bytes, 512 << 10);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 512 << 10);
    }

    #[test]
    fn out_of_space_is_clean_and_not_latched_and_growth_helps() {
        // Superblocks and 3 segments of 64 KiB.
        let (sim, db) = sim_db(256 << 10, small_options());
        let value = vec![9u8; 4000];
        let mut written = 0u32;
        let error = loop {
            match db.put(written.to_be_bytes(), &value) {
                Ok(()) => written += 1,
                Err(error) => break error,
            }
        };
        assert!(matches!(error, Error::OutOfSpace { .. }), "{error:?}");
        assert!(written >= 45, "{written}");
        assert!(!db.stats().failed);
        assert_eq!(db.len(), written as usize);
        assert_eq!(db.get(0u32.to_be_bytes()).unwrap().unwrap(), value);
        assert!(matches!(db.put("x", &value), Err(Error::OutOfSpace { .. })));
        drop(db);
        // Same pool, allowed to grow: writes go on.
        let db = reopen(&sim, small_options().max_size_bytes(1 << 20));
        for i in written..written + 100 {
            db.put(i.to_be_bytes(), &value).unwrap();
        }
        assert!(db.stats().pool_bytes > 256 << 10);
        drop(db);
        let db = reopen(&sim, small_options());
        assert_eq!(db.len(), written as usize + 100);
        assert_eq!(db.get((written + 99).to_be_bytes()).unwrap().unwrap(), value);
    }

    #[test]
    fn poisoned_segment_header_at_open_follows_the_engine_policy() {
        let (sim, db) = sim_db(512 << 10, small_options());
        db.put("a", "1").unwrap();
        drop(db);
        let geometry = mcstore_recovery::format::Geometry::for_segment_size(SEGMENT).unwrap();
        sim.inject_poison(geometry.segment_offset(SegmentId(0)), 64).unwrap();
        // Latch (the default): open succeeds into the failed state, the report says why.
        let db = reopen(&sim, small_options());
        assert!(db.get("a").unwrap_err().is_failed());
        assert!(db.put("b", "2").unwrap_err().is_failed());
        assert!(db.stats().failed);
        assert!(db.recovery_report().damage_found > 0);
        drop(db);
        // Fail: open returns the report.
        let medium: Arc<dyn Medium> = sim.clone();
        let fail = small_options().policy(Policy::default().engine(true, EngineFallback::Fail));
        assert!(matches!(Db::open_on(medium, fail), Err(Error::Damaged(_))));
        // Halt at open: an Err with the report, not an abort.
        let medium: Arc<dyn Medium> = sim.clone();
        let halt = small_options().policy(Policy::default().engine(true, EngineFallback::Halt));
        assert!(matches!(Db::open_on(medium, halt), Err(Error::Damaged(_))));
    }

    #[test]
    fn too_small_a_pool_is_invalid_options() {
        let medium: Arc<dyn Medium> = Arc::new(SimMedium::new(96 << 10));
        assert!(matches!(
            Db::create_on(medium, small_options()),
            Err(Error::InvalidOptions { .. })
        ));
        let dir = shm_dir();
        let path = dir.path().join("pool");
        let tiny = small_options().size_bytes(64 << 10).mode(crate::Mode::ForcedPmem);
        assert!(matches!(Db::create(&path, tiny), Err(Error::InvalidOptions { .. })));
        assert!(!path.exists(), "a failed create leaves no file behind");
    }

    /// Regression: more replicas than a set holds reached `ReplicaSet::create`'s assert (a
    /// panic, after the replica files were created) instead of a typed error.
    #[test]
    fn too_many_replicas_is_invalid_options_not_a_panic() {
        let dir = shm_dir();
        let path = dir.path().join("pool");
        let replicas: Vec<_> = (0..crate::limits::REPLICAS_MAX + 1)
            .map(|i| dir.path().join(format!("r{i}")))
            .collect();
        let options = small_options().mode(crate::Mode::ForcedPmem).replicas(replicas.clone());
        assert!(matches!(Db::create(&path, options.clone()), Err(Error::InvalidOptions { .. })));
        assert!(matches!(Db::open(&path, options), Err(Error::InvalidOptions { .. })));
        assert!(!path.exists() && replicas.iter().all(|r| !r.exists()), "nothing created");
        let most = small_options().mode(crate::Mode::ForcedPmem).replicas(&replicas[..1]);
        Db::create(&path, most).unwrap().close().unwrap();
    }

    #[test]
    fn recovery_progress_is_reported_at_open() {
        let (sim, db) = sim_db(512 << 10, small_options());
        db.put("a", "1").unwrap();
        drop(db);
        let calls = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = Arc::clone(&calls);
        let options = small_options().on_recovery_progress(move |p| seen.lock().unwrap().push(p));
        let db = reopen(&sim, options);
        let calls = calls.lock().unwrap();
        let last = calls.last().expect("progress was reported");
        assert_eq!(last.segments_done, last.segments_total);
        assert_eq!(last.records, 1);
        assert_eq!(db.recovery_report().records, 1);
    }

    #[test]
    fn stats_describe_the_store() {
        let (_sim, db) = sim_db(512 << 10, small_options().durability(crate::Durability::Eventual));
        for i in 0..100u32 {
            db.put(i.to_be_bytes(), [1u8; 100]).unwrap();
        }
        db.get(5u32.to_be_bytes()).unwrap();
        let stats = db.stats();
        assert_eq!(stats.keys, 100);
        assert_eq!(stats.mode, "custom");
        assert_eq!(stats.durability, crate::Durability::Eventual);
        assert_eq!(stats.segment_size_bytes, SEGMENT);
        assert_eq!(stats.segments_total, 7);
        assert_eq!(stats.segment_rolls, 1);
        assert_eq!(stats.segments_free, 6);
        assert_eq!(stats.records_written, 100);
        assert_eq!(stats.reads, 1);
        assert!(stats.index_bytes_per_key >= 4);
        assert!(stats.open_segment_tail_bytes > 0 && !stats.failed && !stats.read_only);
        assert_eq!(stats.next_lsn, db.stats().next_lsn);
    }

    #[test]
    fn unformatted_medium_is_unsupported_format() {
        let medium: Arc<dyn Medium> = Arc::new(SimMedium::new(256 << 10));
        assert!(matches!(
            Db::open_on(medium, small_options()),
            Err(Error::UnsupportedFormat { .. })
        ));
    }
}
