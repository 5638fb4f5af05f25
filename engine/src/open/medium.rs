//! `open_medium`: the open sequence on a medium, as its steps — recover (`recover`), apply the
//! Engine policy to the damage recovery found (`apply_engine_policy`), plan a salvage, rebuild the
//! log's space (`recovered_space`) and the index (`index_walked` from a full scan's unsorted
//! entries, `build_index` from sorted ones), resume the log when writable
//! (`resume`), build the store, clean up a salvage, start the background threads.
//!
//! INVARIANT: damage no replica repaired reaches the store only through the Engine policy (or a
//! salvage open); a pool recovery allows only read-only is never opened writable.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use mcstore_pmem::Medium;
use mcstore_recovery::SegmentInfo;
use mcstore_recovery::format::{Geometry, RecordKind};
use mcstore_recovery::replica::ReplicaSet;
use mcstore_recovery::scan::{
    self, IndexEntry, Recovered, ScanOptions, SegmentStatus, ShutdownEvidence, WalkedEntries,
};
use parking_lot::Mutex;

use super::resume::{resume_writing, writer_start};
use super::salvage::Salvage;
use crate::background::Background;
use crate::commit::CommitQueue;
use crate::db::{Db, Handle, Inner};
use crate::error::{Error, Result};
use crate::index::{Index, Location, Preparing};
use crate::latch::Latch;
use crate::options::Options;
use crate::policy::EngineFallback;
use crate::space::SpaceMap;
use crate::stats::Counters;

/// Recover `medium`, apply the Engine policy to damage, and build the store.
pub(crate) fn open_medium(
    medium: Arc<dyn Medium>,
    path: Option<PathBuf>,
    mode: &'static str,
    options: Options,
    sized_by_medium: bool,
    replicas: Option<Arc<ReplicaSet>>,
) -> Result<Db> {
    let preparing = Arc::new(Mutex::new(None));
    let recovered =
        recover(medium.as_ref(), path.as_deref(), mode, &options, replicas.as_ref(), &preparing)?;
    let latch = Arc::new(Latch::default());
    let (recovered, salvaged) = apply_engine_policy(recovered, &options, &latch)?;
    let Recovered {
        mut superblock,
        geometry,
        segments,
        mut open_segment,
        entries,
        walked,
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
    let mut space = recovered_space(&segments, &salvage, &geometry);
    let index_started = std::time::Instant::now();
    let prepared = preparing.lock().take();
    let index = match walked {
        Some(walked) => {
            let (index, entries) = index_walked(walked, &geometry, &segments, &mut space, prepared);
            report.entries = entries as u64;
            index
        }
        None => build_index(entries, &geometry, &mut space, prepared),
    };
    report.index_duration = index_started.elapsed();
    let set_uuid = superblock.set_uuid;
    let writer = if options.read_only || latch.is_tripped() {
        None
    } else {
        let max_len = options.max_len(medium.len(), sized_by_medium);
        let start = writer_start(superblock, geometry, &segments, open_segment, next_lsn, max_len);
        Some(resume_writing(
            &medium,
            &latch,
            start,
            &segments,
            &salvage.superblock_poison,
            &report,
            path.as_deref(),
        )?)
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

/// Scan `medium` with the clean-shutdown evidence beside `path`, repairing from `replicas` where
/// the Engine policy retries a replica; a pool recovery allows only read-only is refused unless
/// the open is read-only. A full scan leaves in `preparing` the index's point table, being
/// allocated from the moment its walk ends.
fn recover(
    medium: &dyn Medium,
    path: Option<&Path>,
    mode: &str,
    options: &Options,
    replicas: Option<&Arc<ReplicaSet>>,
    preparing: &Arc<Mutex<Option<Preparing>>>,
) -> Result<Recovered> {
    // Engine domain, middle choice: the scan repairs damage in the primary from a replica.
    let repairer = replicas
        .filter(|_| options.policy.engine.retry_replica)
        .map(|set| set.repairer() as Arc<dyn mcstore_recovery::Repairer>);
    // Clean-shutdown evidence: the index snapshot beside a pool file, and the device's
    // unsafe-shutdown count if configured (docs/format.md, "Clean shutdown and the fast open").
    let shutdown = ShutdownEvidence {
        snapshot: path.map(|p| scan::load_snapshot(&scan::snapshot_path(p))),
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
        on_walked: Some(Arc::new({
            let preparing = Arc::clone(preparing);
            move |keys| *preparing.lock() = Index::prepare(keys)
        })),
        // The index is filled from the walk's entries as they are; a salvage open plans from
        // the sorted index instead (`Salvage::plan`).
        defer_index: !options.salvage,
    };
    let recovered = mcstore_recovery::scan::recover(medium, &scan)
        .map_err(|error| Error::recovery("recovering the pool", error))?;
    if let Some(reason) = &recovered.report.read_only_reason
        && !options.read_only
    {
        return Err(Error::UnsupportedFormat {
            reason: format!("{reason}: the pool can be opened read-only only"),
            source: None,
        });
    }
    Ok(recovered)
}

/// The Engine policy for the damage recovery could not repair: `Fail` and `Halt` return the
/// report, `Latch` trips `latch`. Returns `recovered` and whether this is a salvage open that
/// takes the damage as dropped instead.
fn apply_engine_policy(
    recovered: Recovered,
    options: &Options,
    latch: &Latch,
) -> Result<(Recovered, bool)> {
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
    Ok((recovered, salvaged))
}

/// The log's space as recovery found it, before the live bytes are counted.
fn recovered_space(segments: &[SegmentInfo], salvage: &Salvage, geometry: &Geometry) -> SpaceMap {
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
    // (its whole data area, the tail being unknown) until it is cleaned, once the store is built.
    for s in segments.iter().filter(|s| s.status == SegmentStatus::Damaged && s.seq != 0) {
        if salvage.segments.contains_key(&s.id.0) {
            space.set_seq(s.id.0, s.seq);
            space.set_used(s.id.0, geometry.data_capacity());
            space.note_lsn(s.id.0, 0);
        }
    }
    space
}

/// Index a full scan's unsorted entries (`Index::from_walked`) and count each segment's live
/// bytes into `space`; sorted first if their keys were far more than estimated (the caller
/// times this as the report's `index_duration`). Returns the index and the entries a sorted
/// index holds (the report's `entries`).
fn index_walked(
    walked: WalkedEntries,
    geometry: &Geometry,
    segments: &[SegmentInfo],
    space: &mut SpaceMap,
    prepared: Option<Preparing>,
) -> (Index, usize) {
    let segment_of = |offset: u64| geometry.segment_of(offset).map(|id| id.0 as usize);
    match Index::from_walked(walked, &segment_of, segments.len(), prepared) {
        Ok((index, live_bytes, entries)) => {
            for (id, bytes) in live_bytes.into_iter().enumerate().filter(|(_, b)| *b > 0) {
                space.add_live(id as u32, bytes);
            }
            (index, entries)
        }
        Err(walked) => {
            let entries = walked.into_index();
            let count = entries.len();
            (build_index(entries, geometry, space, None), count)
        }
    }
}

/// Count each segment's live bytes (the indexed puts) into `space` and bulk-load the index from
/// recovery's entries (the caller times both as the report's `index_duration`).
fn build_index(
    entries: Vec<IndexEntry>,
    geometry: &Geometry,
    space: &mut SpaceMap,
    prepared: Option<Preparing>,
) -> Index {
    for e in entries.iter().filter(|e| e.kind == RecordKind::Put) {
        if let Some(id) = geometry.segment_of(e.offset) {
            space.add_live(id.0, u64::from(e.len));
        }
    }
    // Straight from recovery's entries (short keys inline there and in the index: no
    // allocation per key); tombstones and the clear marker are not indexed.
    Index::bulk_load_by(
        entries,
        |e| {
            let location =
                Location { offset: e.offset, len: e.len, segment_seq: e.segment_seq, lsn: e.lsn.0 };
            (e.kind == RecordKind::Put).then_some((&e.key[..], location))
        },
        prepared,
    )
}

#[cfg(test)]
mod tests {
    use mcstore_pmem::SimMedium;
    use mcstore_recovery::format::SegmentId;

    use super::*;
    use crate::policy::Policy;
    use crate::test_support::{SEGMENT, reopen, sim_db, small_options};

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
