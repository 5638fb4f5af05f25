//! The rig every poison-matrix driver builds a cell on: the members (SimMedium, or MappedMedium
//! files in /dev/shm), each wrapped in a read probe, the store over them with the cell's policy,
//! poison placed at the cell's position on the cell's members, and the checks shared by drivers
//! (the member healed, the `.badblocks` sidecar cleared, the probes clean).
//!
//! INVARIANT: the rig keeps its own handles on the media, so a store can be dropped and opened
//! again on the very same members (their poison, bytes and sidecar intact).

use std::ops::Range;
use std::sync::Arc;

use mcstore::pmem::{
    BadBlocks, MapOptions, MappedMedium, Medium, MemberId, ModeRequest, SimMedium,
};
use mcstore::{Db, EngineFallback, Error, Options, Policy, UserFallback};
use mcstore_testkit::matrix::probe::{ProbedMedium, ReadCounts};
use mcstore_testkit::matrix::{Backend, Cell, Member, PolicyCase, Position, ReadSite};
use mcstore_testkit::pools::small_options;

use crate::support::shm_dir;

/// Bytes per page of emulated poison on a MappedMedium.
pub const PAGE: u64 = 4096;
/// Bytes per line of poison on a SimMedium.
pub const LINE: u64 = 64;
/// Environment variable naming the file a `Halt` hook writes its report to (child runs).
pub const HALT_MARKER: &str = "MCSTORE_MATRIX_HALT_MARKER";

/// The members of one cell's pool and the store on them.
pub struct Rig {
    /// The cell.
    pub cell: Cell,
    /// What the probes saw (shared by every member, across reopens).
    pub counts: Arc<ReadCounts>,
    sims: Vec<Arc<SimMedium>>,
    mapped: Vec<Arc<MappedMedium>>,
    /// The store (None while closed).
    pub db: Option<Db>,
    _dir: Option<tempfile::TempDir>,
}

/// The policy of a cell's policy case.
pub fn policy(case: PolicyCase) -> Policy {
    let policy = match case {
        PolicyCase::RetryThenFail => {
            Policy::default().user(true, UserFallback::Fail).engine(true, EngineFallback::Fail)
        }
        PolicyCase::FailNoReplica => {
            Policy::default().user(false, UserFallback::Fail).engine(false, EngineFallback::Fail)
        }
        PolicyCase::Latch => {
            Policy::default().user(true, UserFallback::Fail).engine(true, EngineFallback::Latch)
        }
        PolicyCase::Halt => {
            Policy::default().user(true, UserFallback::Halt).engine(true, EngineFallback::Halt)
        }
    };
    policy.on_halt(|report| {
        if let Some(marker) = std::env::var_os(HALT_MARKER) {
            let _ = std::fs::write(marker, report.to_string());
        }
    })
}

/// How many members a cell's pool has: a retry past a poisoned replica needs a third.
pub fn member_count(cell: &Cell) -> usize {
    if cell.site == ReadSite::ReplicaRead && cell.member == Member::Replica {
        3
    } else {
        cell.policy.members()
    }
}

impl Rig {
    /// A new pool of `len` bytes per member for `cell`, with a store open on it.
    pub fn create(cell: Cell, len: u64) -> Rig {
        Rig::create_with(cell, len, |options| options)
    }

    /// [`Rig::create`] with the store's options adjusted by `adjust` (reopens keep the cell's
    /// plain options).
    pub fn create_with(cell: Cell, len: u64, adjust: fn(Options) -> Options) -> Rig {
        let n = member_count(&cell);
        let counts = ReadCounts::new();
        let mut rig = match cell.backend {
            Backend::Sim => {
                let sims = (0..n)
                    .map(|i| Arc::new(SimMedium::with_member(len, MemberId(i as u8))))
                    .collect();
                Rig { cell, counts, sims, mapped: Vec::new(), db: None, _dir: None }
            }
            Backend::Mapped => {
                let dir = shm_dir();
                let mapped = (0..n)
                    .map(|i| {
                        let path = dir.path().join(format!("member{i}"));
                        let map = MapOptions::new()
                            .mode(ModeRequest::ForcedPmem)
                            .max_len(len)
                            .member(MemberId(i as u8));
                        Arc::new(MappedMedium::create(&path, len, &map).expect("member file"))
                    })
                    .collect();
                Rig { cell, counts, sims: Vec::new(), mapped, db: None, _dir: Some(dir) }
            }
        };
        let options = adjust(rig.options());
        let members = rig.probed();
        let db = if members.len() == 1 {
            Db::create_on(members.into_iter().next().expect("one member"), options)
        } else {
            Db::create_on_replicas(members, options)
        };
        rig.db = Some(db.expect("create the store"));
        rig
    }

    /// The store's options: small test pools with the cell's policy.
    pub fn options(&self) -> Options {
        small_options().policy(policy(self.cell.policy))
    }

    fn probed(&self) -> Vec<Arc<dyn Medium>> {
        match self.cell.backend {
            Backend::Sim => self.sims.iter().map(|s| ProbedMedium::sim(s, &self.counts)).collect(),
            Backend::Mapped => {
                self.mapped.iter().map(|m| ProbedMedium::mapped(m, &self.counts)).collect()
            }
        }
    }

    /// The open store.
    pub fn db(&self) -> &Db {
        self.db.as_ref().expect("the store is open")
    }

    /// Drop the store (clean shutdown); the members stay.
    pub fn close(&mut self) {
        drop(self.db.take());
    }

    /// Open a store again on the same members, with the cell's policy.
    pub fn reopen(&mut self) -> mcstore::Result<()> {
        assert!(self.db.is_none(), "close first");
        let members = self.probed();
        let db = if members.len() == 1 {
            Db::open_on(members.into_iter().next().expect("one member"), self.options())
        } else {
            Db::open_on_replicas(members.into_iter().map(Some).collect(), self.options())
        }?;
        self.db = Some(db);
        Ok(())
    }

    /// The bytes of member `i` as a load through the mapping would see them.
    pub fn image(&self, i: usize) -> Vec<u8> {
        match self.cell.backend {
            Backend::Sim => self.sims[i].visible_image(),
            Backend::Mapped => std::fs::read(self.mapped[i].path()).expect("read the member file"),
        }
    }

    /// The unit of poison at `position` of `unit`: one line on SimMedium; on MappedMedium the
    /// first page wholly inside the unit, else the page holding its start.
    pub fn target(&self, unit: Range<u64>, position: Position) -> Range<u64> {
        match self.cell.backend {
            Backend::Sim => {
                let line = match position {
                    Position::First => unit.start,
                    Position::Middle => unit.start + (unit.end - unit.start) / 2,
                    Position::Last => unit.end - 1,
                } & !(LINE - 1);
                line..line + LINE
            }
            Backend::Mapped => {
                let inside = unit.start.next_multiple_of(PAGE);
                let page =
                    if inside + PAGE <= unit.end { inside } else { unit.start & !(PAGE - 1) };
                page..page + PAGE
            }
        }
    }

    /// The members the cell poisons.
    pub fn poisoned_members(&self) -> Vec<usize> {
        match self.cell.member {
            Member::Primary => vec![0],
            Member::Replica => vec![1],
            Member::All => (0..self.members()).collect(),
        }
    }

    /// Number of members.
    pub fn members(&self) -> usize {
        self.sims.len().max(self.mapped.len())
    }

    /// Poison `range` on member `i` (destructively); on MappedMedium it is also listed in the
    /// member's `.badblocks` sidecar, which a repair must clear.
    pub fn poison(&self, i: usize, range: Range<u64>) {
        match self.cell.backend {
            Backend::Sim => self.sims[i].inject_poison(range.start, range.end - range.start),
            Backend::Mapped => {
                let m = &self.mapped[i];
                let len = range.end - range.start;
                BadBlocks::add(&BadBlocks::sidecar_path(m.path()), (range.start, len))
                    .and_then(|()| m.inject_poison(range.start, len))
            }
        }
        .expect("inject poison");
    }

    /// Poison `range` on every member the cell names.
    pub fn poison_cell(&self, range: &Range<u64>) {
        for i in self.poisoned_members() {
            self.poison(i, range.clone());
        }
    }

    /// Whether member `i` holds poison overlapping `range` (or, on MappedMedium, still lists it
    /// in its `.badblocks` sidecar).
    pub fn still_bad(&self, i: usize, range: &Range<u64>) -> bool {
        let overlaps = |o: u64, l: u64| o < range.end && range.start < o + l;
        match self.cell.backend {
            Backend::Sim => {
                self.sims[i].poisoned_ranges().iter().any(|r| overlaps(r.start, r.end - r.start))
            }
            Backend::Mapped => {
                let m = &self.mapped[i];
                let listed = BadBlocks::load(&BadBlocks::sidecar_path(m.path()))
                    .map(|b| b.ranges())
                    .unwrap_or_default();
                m.poisoned_ranges().iter().chain(&listed).any(|&(o, l)| overlaps(o, l))
            }
        }
    }

    /// Assert the probes saw no missed poison and no false fault.
    pub fn assert_probes_clean(&self) {
        assert_eq!(
            (self.counts.missed(), self.counts.false_flags()),
            (0, 0),
            "{}: {:?}",
            self.cell,
            self.counts.problems()
        );
    }
}

/// `len` bytes no other key or value of the cell contains: consecutive bytes step by
/// `2 * seed + 1`, so patterns of different seeds (< 128) share no window longer than two bytes.
pub fn distinct(seed: u8, len: usize) -> Vec<u8> {
    assert!(seed < 128, "seeds 0..128 give distinct steps");
    let step = seed.wrapping_mul(2).wrapping_add(1);
    (0..len).map(|i| ((i % 251) as u8).wrapping_mul(step).wrapping_add(seed)).collect()
}

/// Whether `error` is the User fallback `Fail` for `key` (poison, or bytes that did not verify).
pub fn is_fail_for(error: &Error, key: &[u8]) -> bool {
    matches!(error, Error::Media { .. } | Error::Corrupt { .. }) && error.key() == Some(key)
}
