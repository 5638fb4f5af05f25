//! Replica sets in the store: `Options::replicas`, creating and opening the replica members
//! beside the primary, the read path's retry from a replica, `Db::scrub`, and the replica
//! counters in `stats()`. The device-level set is `mcstore_pmem::PoolSet`; the formatted set is
//! `mcstore_recovery::replica::ReplicaSet` (`docs/replicas.md`).
//!
//! INVARIANT: with replicas, every write goes through the set (all in-sync members persisted
//! before the barrier publishes), recovery repairs the primary from a replica as it scans, and a
//! bad read is retried from a replica before the User fallback — only bytes that verify as the
//! record asked for are ever returned.

mod single;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mcstore_pmem::poolset::HealOutcome;
use mcstore_pmem::{Domain, ErrorRegister, MapOptions, MappedMedium, Medium, MemberId};
use mcstore_recovery::CreateParams;
use mcstore_recovery::replica::{
    OpenReport, OpenSetOptions, ReplicaSet, ScrubReport, ScrubberOptions,
};

use crate::db::{Db, Inner};
use crate::error::{Error, Result};
use crate::index::Location;
use crate::open::open_medium;
use crate::options::Options;
use crate::read::retry_from_replica;

impl Options {
    /// Replica files (any iterable of paths): members 1, 2, ... after the primary, written in
    /// lockstep with it. `Db::create` creates them with the primary; `Db::open` requires them
    /// (see [`Options::replicas_degraded`]). Empty (the default): no replica set.
    #[must_use]
    pub fn replicas<I, P>(mut self, paths: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: Into<PathBuf>,
    {
        self.replicas = paths.into_iter().map(Into::into).collect();
        self
    }

    /// Open with missing, foreign or unreadable replicas left out (stale, reported) instead of
    /// refusing the open (default: refuse).
    #[must_use]
    pub fn replicas_degraded(mut self, allow: bool) -> Self {
        self.replicas_degraded = allow;
        self
    }

    /// Run the replica set's background scrubber (early poison notices drained and healed,
    /// stale members persisted, rate-limited full scrubs); `None` (the default): off. Only with
    /// replicas, and only when background work is allowed (`background(true)`).
    #[must_use]
    pub fn scrubber(mut self, scrubber: Option<ScrubberOptions>) -> Self {
        self.scrubber = scrubber;
        self
    }
}

/// The store's replica set. Dropping it stops (and joins) the background scrubber first, so the
/// set — and with it the member files' locks — goes when the store does.
pub(crate) struct Replicas(pub(crate) Arc<ReplicaSet>);

impl std::ops::Deref for Replicas {
    type Target = Arc<ReplicaSet>;

    fn deref(&self) -> &Arc<ReplicaSet> {
        &self.0
    }
}

impl Drop for Replicas {
    fn drop(&mut self) {
        self.0.stop_scrubber();
        // Members marked stale since the last scrub are recorded as such for the next open
        // (best effort: a read-only store, or a failed write here, leaves the table as it was;
        // the open's reconcile and generation checks still apply).
        if self.0.states_changed() {
            let _ = self.0.persist_states();
        }
    }
}

/// Start the background scrubber on `set` if `options` ask for one.
fn start_scrubber(set: &Arc<ReplicaSet>, options: &Options) -> Result<()> {
    match options.scrubber {
        Some(scrubber) if options.background && !options.read_only => set
            .start_scrubber(scrubber)
            .map_err(|error| replica_error("starting the scrubber", error)),
        _ => Ok(()),
    }
}

pub(crate) fn replica_error(
    context: &str,
    error: mcstore_recovery::replica::ReplicaError,
) -> Error {
    use mcstore_recovery::replica::ReplicaError as R;
    match error {
        R::Pmem(inner) => Error::pmem(context, inner),
        R::Recovery(inner) => Error::recovery(context, inner),
        other => Error::Io { context: context.to_string(), source: Box::new(other) },
    }
}

fn set_options(options: &Options) -> OpenSetOptions {
    OpenSetOptions {
        allow_degraded: options.replicas_degraded,
        read_only: options.read_only,
        on_member_failure: options.replicas_on_failure,
        ..OpenSetOptions::default()
    }
}

/// Create the replica files of `options` beside a new `primary` of `len` bytes and format the
/// set. On failure the replica files created here are removed.
pub(crate) fn create_set(
    primary: MappedMedium,
    len: u64,
    map: &MapOptions,
    options: &Options,
) -> Result<Arc<ReplicaSet>> {
    let mut members: Vec<Arc<dyn Medium>> = vec![Arc::new(primary)];
    let mut created: Vec<&Path> = Vec::new();
    let result = (|| {
        for (i, path) in options.replicas.iter().enumerate() {
            let member = MemberId(u8::try_from(i + 1).unwrap_or(u8::MAX));
            let medium = MappedMedium::create(path, len, &map.clone().member(member))
                .map_err(|error| Error::pmem("creating a replica file", error))?;
            created.push(path);
            members.push(Arc::new(medium));
        }
        let params =
            CreateParams { segment_size_bytes: options.segment_size_bytes, ..Default::default() };
        ReplicaSet::create(members, &params, set_options(options))
            .map_err(|error| replica_error("formatting the replica set", error))
    })();
    if result.is_err() {
        for path in created {
            let _ = std::fs::remove_file(path);
        }
    }
    let set = Arc::new(result?);
    start_scrubber(&set, options)?;
    Ok(set)
}

/// Open the replica files of `options` beside `primary` and open the set (members checked,
/// reconciled to the primary, known bad blocks repaired). A replica file that is absent is a
/// missing member.
pub(crate) fn open_set(
    primary: MappedMedium,
    map: &MapOptions,
    options: &Options,
) -> Result<(Arc<ReplicaSet>, OpenReport)> {
    let mut members: Vec<Option<Arc<dyn Medium>>> = vec![Some(Arc::new(primary))];
    for (i, path) in options.replicas.iter().enumerate() {
        let member = MemberId(u8::try_from(i + 1).unwrap_or(u8::MAX));
        match MappedMedium::open(path, &map.clone().member(member)) {
            Ok(medium) => members.push(Some(Arc::new(medium))),
            Err(mcstore_pmem::Error::NotFound { .. }) => members.push(None),
            Err(_) if options.replicas_degraded => members.push(None),
            Err(error) => return Err(Error::pmem("opening a replica file", error)),
        }
    }
    let (set, report) = ReplicaSet::open(members, set_options(options))
        .map_err(|error| replica_error("opening the replica set", error))?;
    let set = Arc::new(set);
    start_scrubber(&set, options)?;
    Ok((set, report))
}

impl Inner {
    /// The barrier's middle choice for a bad read of `key`: retry from a replica (when the
    /// store has one and the User policy says so). `true`: `buf` holds the verified value.
    pub(crate) fn retry_from_replica(
        &self,
        key: &[u8],
        location: Location,
        buf: &mut Vec<u8>,
    ) -> Result<bool> {
        let Some(set) = &self.replicas else { return Ok(false) };
        if !self.options.policy.user.retry_replica || set.poolset().member_count() < 2 {
            return Ok(false);
        }
        Ok(retry_from_replica(set.poolset(), &self.set_uuid, key, location, buf)?.is_some())
    }
}

impl Inner {
    /// Compaction's copy (Engine domain) met poison: heal every unit `register` recorded from a
    /// replica (when the store has one and the Engine policy says so), then re-read
    /// `[start, +buf.len())`. `true`: `buf` now read clean (its records are still verified by
    /// the caller, so a replica's bad bytes are never laundered).
    pub(crate) fn heal_read_from_replica(
        &self,
        register: &ErrorRegister,
        start: u64,
        buf: &mut [u8],
    ) -> bool {
        let Some(set) = &self.replicas else { return false };
        if !self.options.policy.engine.retry_replica || register.overflowed() {
            return false;
        }
        for fault in register.faults() {
            let healed = set.poolset().heal(MemberId(0), fault.offset, fault.len, &|_| true);
            if !matches!(healed, Ok(HealOutcome::Healed { .. })) {
                return false;
            }
        }
        let mut again = ErrorRegister::deferred();
        self.medium.read(start, buf, &mut again, Domain::Engine).is_ok() && again.is_clean()
    }
}

impl Db {
    /// Read every live byte of every member through the machine-check-safe copy, repair what is
    /// poisoned from another member, and quarantine (persisted) what no member holds; then
    /// drain the asynchronous poison notices and heal those too. Without replicas every live
    /// byte of the one member is read the same way and every committed record that read clean
    /// is verified; nothing can heal there, so each poisoned unit is reported unrepaired (and
    /// added to a mapped pool's `.badblocks` sidecar), each record that does not verify in
    /// `ScrubReport::corrupt`.
    pub fn scrub(&self) -> Result<ScrubReport> {
        self.scrub_with_progress(|_| {})
    }

    /// [`Db::scrub`] with a progress callback (after each live range of each member).
    pub fn scrub_with_progress(
        &self,
        progress: impl Fn(mcstore_recovery::replica::ScrubProgress),
    ) -> Result<ScrubReport> {
        self.inner.latch.check()?;
        let Some(set) = &self.inner.replicas else {
            return single::scrub(&self.inner, &progress);
        };
        if set.states_changed() {
            set.persist_states()
                .map_err(|error| replica_error("persisting member states", error))?;
        }
        let mut report = set
            .scrub(&progress)
            .map_err(|error| replica_error("scrubbing the replica set", error))?;
        let notices = set
            .scrub_notices()
            .map_err(|error| replica_error("scrubbing notified ranges", error))?;
        report.findings.extend(notices.findings);
        report.unmatched_notices += notices.unmatched_notices;
        Ok(report)
    }

    /// The replica set, if the store has one (member states, quarantine, resilver).
    pub fn replica_set(&self) -> Option<&Arc<ReplicaSet>> {
        self.inner.replicas.as_deref()
    }

    /// Segments the allocator will never write again because they overlap a range the medium
    /// reports bad (a replica set's quarantine, unrepaired bad blocks), in id order. They stay
    /// used: never rolled into, compacted or reclaimed. Empty for a read-only store.
    pub fn quarantined_segments(&self) -> Vec<u32> {
        let st = self.inner.commit.lock();
        st.writer
            .as_ref()
            .map(|w| w.quarantined_segments().iter().copied().collect())
            .unwrap_or_default()
    }

    /// Format `members` (the primary first; member `i` reports `MemberId(i)`) as a new replica
    /// set and open a store on it (tests and fuzzing: `SimMedium`s). `options.replicas` is
    /// ignored; the primary's length is the pool size.
    pub fn create_on_replicas(members: Vec<Arc<dyn Medium>>, options: Options) -> Result<Db> {
        options.validate(true)?;
        let params =
            CreateParams { segment_size_bytes: options.segment_size_bytes, ..Default::default() };
        let set = ReplicaSet::create(members, &params, set_options(&options))
            .map_err(|error| replica_error("formatting the replica set", error))?;
        let set = Arc::new(set);
        start_scrubber(&set, &options)?;
        open_medium(set.medium(), None, "custom", options, true, Some(set))
    }

    /// Open a store on the replica set of `members` (`None`: a missing member), checked and
    /// reconciled as [`Db::open`] does with replica files.
    pub fn open_on_replicas(members: Vec<Option<Arc<dyn Medium>>>, options: Options) -> Result<Db> {
        options.validate(true)?;
        let (set, _) = ReplicaSet::open(members, set_options(&options))
            .map_err(|error| replica_error("opening the replica set", error))?;
        let set = Arc::new(set);
        start_scrubber(&set, &options)?;
        open_medium(set.medium(), None, "custom", options, true, Some(set))
    }
}

#[cfg(test)]
mod tests {
    use mcstore_pmem::SimMedium;
    use mcstore_recovery::format::MemberState;

    use super::*;
    use crate::test_support::{SEGMENT, shm_dir, small_options};

    const LEN: u64 = SEGMENT * 5;

    fn sims(n: u8) -> Vec<Arc<SimMedium>> {
        (0..n).map(|i| Arc::new(SimMedium::with_member(LEN, MemberId(i)))).collect()
    }

    fn dyns(sims: &[Arc<SimMedium>]) -> Vec<Arc<dyn Medium>> {
        sims.iter().map(|s| s.clone() as Arc<dyn Medium>).collect()
    }

    fn value(i: u32) -> Vec<u8> {
        format!("value-{i:04}-").repeat(8).into_bytes()
    }

    fn filled(sims: &[Arc<SimMedium>]) -> Db {
        let db = Db::create_on_replicas(dyns(sims), small_options()).unwrap();
        for i in 0..40 {
            db.put(format!("key{i}"), value(i)).unwrap();
        }
        db
    }

    fn location(db: &Db, key: &str) -> Location {
        db.inner.lookup(key.as_bytes()).unwrap()
    }

    #[test]
    fn a_get_over_a_poisoned_primary_is_served_from_a_replica_and_repairs_it() {
        let sims = sims(2);
        let db = filled(&sims);
        let at = location(&db, "key7");
        sims[0].inject_poison(at.offset + 20, 1).unwrap();
        assert_eq!(db.get("key7").unwrap().unwrap(), value(7));
        assert!(sims[0].poisoned_ranges().is_empty());
        let stats = db.stats();
        assert_eq!((stats.replica_members, stats.replica_retries), (2, 1));
        assert!(stats.replica_repairs >= 1 && stats.bytes_repaired >= 4096);
        assert_eq!(stats.read_faults, 1);
        // Clean from now on: no further retry.
        assert_eq!(db.get("key7").unwrap().unwrap(), value(7));
        assert_eq!(db.stats().replica_retries, 1);
    }

    #[test]
    fn no_good_copy_is_a_media_error_never_wrong_data() {
        let sims = sims(2);
        let db = filled(&sims);
        let at = location(&db, "key3");
        for sim in &sims {
            sim.inject_poison(at.offset, 1).unwrap();
        }
        assert!(matches!(db.get("key3"), Err(Error::Media { .. })));
        // A copy that reads clean but does not verify is no source either.
        let at = location(&db, "key30");
        sims[0].inject_poison(at.offset + 40, 1).unwrap();
        sims[1].write(at.offset + 40, b"X").unwrap();
        assert!(db.get("key30").is_err());
        assert_eq!(db.get("key31").unwrap().unwrap(), value(31));
    }

    #[test]
    fn the_background_scrubber_heals_a_replica() {
        let sims = sims(2);
        let scrubber = ScrubberOptions {
            interval: std::time::Duration::ZERO,
            notice_poll: std::time::Duration::from_millis(1),
            bytes_per_sec: None,
        };
        let options = small_options().background(true).scrubber(Some(scrubber));
        let db = Db::create_on_replicas(dyns(&sims), options).unwrap();
        db.put("k", value(1)).unwrap();
        sims[1].inject_poison(location(&db, "k").offset, 1).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while !sims[1].poisoned_ranges().is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        assert!(sims[1].poisoned_ranges().is_empty());
        assert!(db.stats().replica_repairs >= 1);
    }

    #[test]
    fn a_replica_failing_at_runtime_is_stale_after_reopen() {
        let sims = sims(3);
        let db = filled(&sims);
        sims[2].fail_nth(mcstore_pmem::SimOp::Write, 1, true);
        db.put("after", "failure").unwrap();
        assert_eq!(db.stats().replicas_not_in_sync, 1);
        drop(db);
        sims[2].clear_failures();
        let members = dyns(&sims).into_iter().map(Some).collect();
        let db = Db::open_on_replicas(members, small_options()).unwrap();
        let states = db.replica_set().unwrap().states();
        assert_eq!(states, vec![MemberState::InSync, MemberState::InSync, MemberState::Stale]);
        assert_eq!(db.get("after").unwrap().unwrap(), b"failure");
    }

    /// Compaction's copy meets poison on the primary: the unit is healed from the replica and
    /// the segment is reclaimed (without replicas it would stay pinned).
    #[test]
    fn compaction_reads_through_poison_by_healing_from_a_replica() {
        let sims: Vec<Arc<SimMedium>> =
            (0..2).map(|i| Arc::new(SimMedium::with_member(2 << 20, MemberId(i)))).collect();
        let db = Db::create_on_replicas(dyns(&sims), small_options()).unwrap();
        for round in 0..30u32 {
            for k in 0..20u32 {
                db.put(k.to_be_bytes(), vec![(round + k) as u8; 600]).unwrap();
            }
        }
        let first = db.inner.geometry.data_start(mcstore_recovery::format::SegmentId(0));
        sims[0].inject_poison(first, 64).unwrap();
        let summary = db.compact().unwrap();
        assert_eq!(summary.unreadable_segments, 0, "{summary:?}");
        assert!(summary.segments_reclaimed >= 3, "{summary:?}");
        assert_eq!(db.stats().compaction_unreadable, 0);
        assert!(db.stats().replica_repairs >= 1);
        for k in 0..20u32 {
            assert_eq!(db.get(k.to_be_bytes()).unwrap().unwrap(), vec![(29 + k) as u8; 600]);
        }
    }

    #[test]
    fn retry_off_goes_straight_to_the_fallback() {
        let sims = sims(2);
        let policy =
            crate::policy::Policy::default().user(false, crate::policy::UserFallback::Fail);
        let db = Db::create_on_replicas(dyns(&sims), small_options().policy(policy)).unwrap();
        db.put("k", "v").unwrap();
        sims[0].inject_poison(location(&db, "k").offset, 1).unwrap();
        assert!(matches!(db.get("k"), Err(Error::Media { .. })));
        assert_eq!(db.stats().replica_retries, 0);
    }

    #[test]
    fn recovery_through_damage_repairs_the_primary_and_scrub_heals_replicas() {
        let sims = sims(3);
        let db = filled(&sims);
        let (a, b) = (location(&db, "key5"), location(&db, "key25"));
        drop(db);
        sims[0].inject_poison(a.offset, 1).unwrap();
        let db = Db::open_on_replicas(dyns(&sims).into_iter().map(Some).collect(), small_options())
            .unwrap();
        let report = db.recovery_report();
        assert_eq!((report.damage_found, report.damage_repaired), (1, 1));
        assert!(report.damage.is_empty());
        assert_eq!(db.get("key5").unwrap().unwrap(), value(5));
        sims[2].inject_poison(b.offset, 100).unwrap();
        let scrub = db.scrub().unwrap();
        assert_eq!(scrub.members, 3);
        assert!(scrub.repaired() >= 1 && scrub.unrepaired().is_empty(), "{scrub:?}");
        assert!(sims[2].poisoned_ranges().is_empty());
    }

    #[test]
    fn replica_files_are_created_written_in_lockstep_and_required_at_open() {
        let dir = shm_dir();
        let (primary, r1, r2) =
            (dir.path().join("pool"), dir.path().join("replica1"), dir.path().join("replica2"));
        let options = small_options().mode(crate::options::Mode::ForcedPmem).size_bytes(LEN);
        // A running scrubber must not keep the members (and their locks) past the store.
        let scrubber = ScrubberOptions {
            interval: std::time::Duration::ZERO,
            notice_poll: std::time::Duration::from_millis(1),
            bytes_per_sec: None,
        };
        let with_scrubber = options.clone().background(true).scrubber(Some(scrubber));
        let db = Db::create(&primary, with_scrubber.replicas([&r1, &r2])).unwrap();
        db.put("lockstep", "everywhere").unwrap();
        assert_eq!(db.stats().replica_members, 3);
        drop(db);
        // Each replica alone is a pool holding the same data.
        let read_only = options.clone().read_only(true);
        let db = Db::open(&primary, read_only.clone().replicas([&r1, &r2])).unwrap();
        assert_eq!(db.get("lockstep").unwrap().unwrap(), b"everywhere");
        assert_eq!(db.stats().replica_members, 3);
        drop(db);
        for replica in [&r1, &r2] {
            let alone = Db::open(replica, read_only.clone()).unwrap();
            assert_eq!(alone.get("lockstep").unwrap().unwrap(), b"everywhere");
        }
        std::fs::remove_file(&r2).unwrap();
        let err = Db::open(&primary, options.clone().replicas([&r1, &r2])).unwrap_err();
        assert!(err.to_string().contains("member 2 is missing"), "{err}");
        let db = Db::open(&primary, options.clone().replicas([&r1, &r2]).replicas_degraded(true))
            .unwrap();
        assert_eq!(db.stats().replicas_not_in_sync, 1);
        let states = db.replica_set().unwrap().states();
        assert_eq!(states, vec![MemberState::InSync, MemberState::InSync, MemberState::Stale]);
        assert_eq!(db.get("lockstep").unwrap().unwrap(), b"everywhere");
    }

    /// Real SIGBUS: emulated poison on the mapped primary destroys the page; the get is served
    /// from the replica file and the primary is rewritten.
    #[test]
    fn a_get_over_real_poison_on_a_mapped_primary_is_repaired() {
        let dir = shm_dir();
        let open = |i: u8| {
            let map =
                MapOptions::new().mode(mcstore_pmem::ModeRequest::ForcedPmem).member(MemberId(i));
            Arc::new(MappedMedium::create(&dir.path().join(format!("m{i}")), LEN, &map).unwrap())
        };
        let (primary, replica) = (open(0), open(1));
        let members: Vec<Arc<dyn Medium>> = vec![primary.clone(), replica];
        let db = Db::create_on_replicas(members, small_options()).unwrap();
        for i in 0..40 {
            db.put(format!("key{i}"), value(i)).unwrap();
        }
        let at = location(&db, "key11");
        primary.inject_poison(at.offset, 1).unwrap();
        assert_eq!(db.get("key11").unwrap().unwrap(), value(11));
        assert!(primary.poisoned_ranges().is_empty());
        assert_eq!(db.stats().replica_retries, 1);
    }

    #[test]
    fn stats_count_the_segments_a_scrub_quarantined() {
        let sims = sims(2);
        let db = filled(&sims);
        assert_eq!(db.stats().segments_quarantined, 0);
        // The last segment's header line, lost on both members: scrub quarantines it and the
        // allocator drops the segment from the free set at the next roll.
        let g = db.inner.geometry;
        let last = mcstore_recovery::format::SegmentId(g.segment_count(LEN) - 1);
        for sim in &sims {
            sim.inject_poison(g.segment_offset(last), 64).unwrap();
        }
        let report = db.scrub().unwrap();
        assert!(!report.unrepaired().is_empty(), "{report:?}");
        let rolls = db.stats().segment_rolls;
        for i in 0..40 {
            db.put(format!("roll{i}"), vec![b'r'; 2000]).unwrap();
        }
        assert!(db.stats().segment_rolls > rolls);
        let stats = db.stats();
        assert_eq!(db.quarantined_segments(), vec![last.0]);
        assert_eq!(stats.segments_quarantined, 1, "{stats:?}");
    }
}
