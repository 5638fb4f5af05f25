//! The replica-set state machine shared by the proptest state machine (`tests/machine.rs`) and
//! the `poison_ops` fuzz target: a store on one or two `SimMedium` members, driven by [`Step`]s
//! (writes, syncs, crashes at a fence, reopens, poison, compaction, a failing replica, scrubs)
//! and checked against a model after every step.
//!
//! INVARIANT (the oracle): a read never returns a value the model does not allow for its key; an
//! acknowledged write survives every crash and reopen; a typed error appears only where no good
//! copy can exist (see [`Machine::errors_allowed`]); nothing panics.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use mcstore_engine::{Db, Error, Options, Policy};
use mcstore_pmem::{CrashMode, Medium, MemberId, SimMedium, SimOp};
use mcstore_recovery::format::{SUPERBLOCK_BYTES, SUPERBLOCK_SLOT_OFFSETS};

use crate::model::{Bytes, db_contents, to_batch};
use crate::pools::small_options;

/// A failed check, with what was being checked.
pub type Failure = String;

/// Cache-line size of SimMedium poison.
const LINE: u64 = 64;

/// One transition of the machine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// `put(key, value)`.
    Put {
        /// The key.
        key: Bytes,
        /// The value.
        value: Bytes,
    },
    /// `remove(key)`.
    Remove {
        /// The key.
        key: Bytes,
    },
    /// `apply_batch`: `Some` puts, `None` removes, in order.
    Batch(Vec<(Bytes, Option<Bytes>)>),
    /// A transaction: reads `from`, writes `to` = that value (or nothing) followed by `b"+"`.
    Transaction {
        /// The key read.
        from: Bytes,
        /// The key written.
        to: Bytes,
    },
    /// `sync()`.
    Sync,
    /// Power loss during `put(key, value)`: the primary dies at its `fence`-th fence of the put
    /// (or right after it, if the put has fewer); every member's image is drawn from `seed`.
    Crash {
        /// Image seed (and the mode: odd → any subset of pending words, even → per-line prefix).
        seed: u64,
        /// Fence of the put (1-based) the primary dies at.
        fence: u8,
        /// The key of the in-flight put.
        key: Bytes,
        /// Its value.
        value: Bytes,
    },
    /// Close the store and open it again.
    Reopen,
    /// Poison the lines covering `[offset, +len)` of member `member % members` (offsets wrap).
    InjectPoison {
        /// The member.
        member: u8,
        /// Start, in bytes (modulo the pool size).
        offset: u64,
        /// Length in bytes (1..=256 used).
        len: u64,
    },
    /// Clear every poisoned line of a member (its bytes stay destroyed).
    ClearPoison {
        /// The member.
        member: u8,
    },
    /// `compact()`.
    Compact,
    /// The replica's writes fail from now on (until the next reopen or crash; the machine
    /// counts it as possibly behind for the rest of the run).
    FailReplica,
    /// `scrub()`.
    Scrub,
}

/// How the machine is built.
#[derive(Clone)]
pub struct MachineConfig {
    /// Members: 1 (a plain pool) or 2 (primary and a replica).
    pub members: usize,
    /// Size of each member.
    pub pool_bytes: u64,
    /// The policy (User fallback must not be `Halt`).
    pub policy: Policy,
    /// Skip an injection that would leave some range with no good copy (both members damaged
    /// there, a failed replica, or a single member): then every read must succeed.
    pub keep_a_good_copy: bool,
}

impl Default for MachineConfig {
    fn default() -> Self {
        Self {
            members: 2,
            pool_bytes: 256 << 10,
            policy: Policy::default(),
            keep_a_good_copy: true,
        }
    }
}

/// What a run did (for figures and for tests that the machine is not vacuous).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MachineSummary {
    /// Steps run.
    pub steps: u64,
    /// Writes acknowledged.
    pub acknowledged: u64,
    /// Crashes recovered from.
    pub crashes: u64,
    /// Crashes that fired inside the in-flight put.
    pub crashes_in_flight: u64,
    /// Poison injections carried out.
    pub injections: u64,
    /// Reads checked against the model.
    pub reads_checked: u64,
    /// Typed errors seen where the oracle allowed them.
    pub allowed_errors: u64,
}

/// The machine: members, store, model and damage bookkeeping.
pub struct Machine {
    config: MachineConfig,
    members: Vec<Arc<SimMedium>>,
    db: Option<Db>,
    /// Key → the values (`None`: absent) it may have; one unless a write failed or crashed.
    allowed: BTreeMap<Bytes, BTreeSet<Option<Bytes>>>,
    /// Per member, every line ever poisoned (its bytes were destroyed).
    damaged: Vec<BTreeSet<u64>>,
    /// The replica was failed at some point of the run.
    replica_failed: bool,
    /// A crash came while a superblock slot of the primary was damaged. A superblock update the
    /// crash cut short may then have reached the replica twice where the primary's damaged
    /// slot took none: the replica is two generations ahead, opens stale (docs/replicas.md),
    /// and the primary's damaged slot, which may hold the newest generation, has no copy.
    crashed_with_primary_superblock_damaged: bool,
    /// A write returned an error since the last crash or reopen (the store may be latched).
    write_failed: bool,
    summary: MachineSummary,
}

impl Machine {
    /// A new store on fresh members.
    pub fn new(config: MachineConfig) -> Result<Self, Failure> {
        assert!((1..=2).contains(&config.members), "one or two members");
        let members: Vec<Arc<SimMedium>> = (0..config.members)
            .map(|i| Arc::new(SimMedium::with_member(config.pool_bytes, MemberId(i as u8))))
            .collect();
        let options = options(&config);
        let db = if members.len() == 1 {
            Db::create_on(dyn_medium(&members[0]), options)
        } else {
            Db::create_on_replicas(members.iter().map(dyn_medium).collect(), options)
        }
        .map_err(|e| format!("create: {e}"))?;
        Ok(Self {
            damaged: vec![BTreeSet::new(); members.len()],
            config,
            members,
            db: Some(db),
            allowed: BTreeMap::new(),
            replica_failed: false,
            crashed_with_primary_superblock_damaged: false,
            write_failed: false,
            summary: MachineSummary::default(),
        })
    }

    /// Run `steps` on a new machine, checking the invariants after each.
    pub fn run(config: MachineConfig, steps: &[Step]) -> Result<MachineSummary, Failure> {
        let mut machine = Self::new(config)?;
        for (i, step) in steps.iter().enumerate() {
            machine.step(step).map_err(|e| format!("step {i} {step:?}: {e}"))?;
            machine.check().map_err(|e| format!("after step {i} {step:?}: {e}"))?;
            if machine.db.is_none() {
                break;
            }
        }
        Ok(machine.summary)
    }

    /// Whether a typed error is acceptable now: some range may have no good copy (a single
    /// member with damage, both members damaged at one line, a failed or stale replica beside a
    /// damaged primary, retry switched off), or a write failed (and may have latched the store).
    pub fn errors_allowed(&self) -> bool {
        if self.write_failed {
            return true;
        }
        let primary_damaged = !self.damaged[0].is_empty();
        let retry =
            self.config.policy.user.retry_replica && self.config.policy.engine.retry_replica;
        let replica_bad = self.replica_failed
            || self.db.as_ref().is_some_and(|db| db.stats().replicas_not_in_sync > 0);
        match self.damaged.get(1) {
            None => primary_damaged,
            Some(replica) => {
                (primary_damaged && (replica_bad || !retry))
                    || self.damaged[0].intersection(replica).next().is_some()
            }
        }
    }

    /// Carry out one step (writes are checked against the model as they return).
    pub fn step(&mut self, step: &Step) -> Result<(), Failure> {
        self.summary.steps += 1;
        let Some(db) = self.db.clone() else { return Ok(()) };
        match step {
            Step::Put { key, value } => {
                self.write(&[(key.clone(), Some(value.clone()))], db.put(key, value))
            }
            Step::Remove { key } => self.write(&[(key.clone(), None)], db.remove(key).map(drop)),
            Step::Batch(entries) => self.write(entries, db.apply_batch(to_batch(entries))),
            Step::Transaction { from, to } => self.transaction(&db, from, to),
            Step::Sync => self.tolerate(db.sync(), "sync"),
            Step::Compact => self.tolerate(db.compact().map(drop), "compact"),
            Step::Scrub => self.tolerate(db.scrub().map(drop), "scrub"),
            Step::FailReplica => {
                if let Some(replica) = self.members.get(1) {
                    self.replica_failed = true;
                    replica.fail_nth(SimOp::Write, 1, true);
                }
                Ok(())
            }
            Step::InjectPoison { member, offset, len } => {
                self.inject(usize::from(*member) % self.members.len(), *offset, *len)
            }
            Step::ClearPoison { member } => {
                let sim = &self.members[usize::from(*member) % self.members.len()];
                for range in sim.poisoned_ranges() {
                    sim.clear_poison(range.start, range.end - range.start)
                        .map_err(|e| format!("clear_poison: {e}"))?;
                }
                Ok(())
            }
            Step::Reopen => {
                drop(db);
                self.db = None;
                self.reopen(self.members.clone())
            }
            Step::Crash { seed, fence, key, value } => {
                drop(db);
                self.crash(*seed, *fence, key, value)
            }
        }
    }

    /// Account for a write's result: acknowledged → the model takes it; an error → typed and
    /// allowed, and the keys may now hold either value.
    fn write(
        &mut self,
        entries: &[(Bytes, Option<Bytes>)],
        result: mcstore_engine::Result<()>,
    ) -> Result<(), Failure> {
        let mut batch: BTreeMap<&Bytes, &Option<Bytes>> = BTreeMap::new();
        for (key, value) in entries {
            batch.insert(key, value);
        }
        match result {
            Ok(()) => {
                self.summary.acknowledged += 1;
                for (key, value) in batch {
                    self.allowed.insert(key.clone(), BTreeSet::from([value.clone()]));
                }
                Ok(())
            }
            Err(error) => {
                self.write_error(&error)?;
                for (key, value) in batch {
                    self.allowed_mut(key).insert(value.clone());
                }
                Ok(())
            }
        }
    }

    fn transaction(&mut self, db: &Db, from: &Bytes, to: &Bytes) -> Result<(), Failure> {
        let result = db.transaction(|tx| {
            let read = tx.get(from)?;
            let mut value = read.map(|v| v.to_vec()).unwrap_or_default();
            value.push(b'+');
            tx.put(to, &value);
            Ok(value)
        });
        match result {
            Ok(value) => {
                let read = Some(value[..value.len() - 1].to_vec()).filter(|v| !v.is_empty());
                let allowed = self.allowed_mut(from);
                // The transaction read a value the model allows (absent reads as empty).
                let empty_read = read.is_none() && allowed.contains(&Some(vec![]));
                if !empty_read && !allowed.contains(&read) {
                    return Err(format!("transaction read {read:?}, model allows {allowed:?}"));
                }
                self.summary.acknowledged += 1;
                self.allowed.insert(to.clone(), BTreeSet::from([Some(value)]));
                Ok(())
            }
            Err(error) => {
                self.write_error(&error)?;
                // The written value depends on what was read: any allowed value of `from`.
                let values: Vec<Option<Bytes>> = self
                    .allowed_mut(from)
                    .iter()
                    .map(|v| {
                        let mut v = v.clone().unwrap_or_default();
                        v.push(b'+');
                        Some(v)
                    })
                    .collect();
                self.allowed_mut(to).extend(values);
                Ok(())
            }
        }
    }

    /// A write may fail where a read may, and when the pool is full. Unknown poison on the
    /// primary (in a free segment the log rolls into) faults the store that reaches it, but the
    /// pool set heals the page from an in-sync replica first, so with a replica that fails the
    /// write only when the replica's copy of that page is damaged too (heals copy whole pages).
    fn write_error(&mut self, error: &Error) -> Result<(), Failure> {
        if !self.errors_allowed()
            && !self.a_page_damaged_on_both()
            && !matches!(error, Error::OutOfSpace { .. })
        {
            return Err(format!("write failed with a good copy everywhere: {error}"));
        }
        self.summary.allowed_errors += 1;
        // OutOfSpace writes nothing; anything else may have left a partial, latched state.
        if !matches!(error, Error::OutOfSpace { .. }) {
            self.write_failed = true;
        }
        Ok(())
    }

    /// Whether some page holds damage on both members (not necessarily on the same line): no
    /// member can then supply a clean whole page to heal the primary's from.
    fn a_page_damaged_on_both(&self) -> bool {
        const PAGE: u64 = 4096;
        let Some(replica) = self.damaged.get(1) else { return false };
        let pages: BTreeSet<u64> = replica.iter().map(|line| line * LINE / PAGE).collect();
        self.damaged[0].iter().any(|line| pages.contains(&(line * LINE / PAGE)))
    }

    /// Whether a replica has damage in one of its superblock slots.
    fn a_replica_superblock_damaged(&self) -> bool {
        self.damaged.iter().skip(1).any(superblock_damaged)
    }

    /// Sync, compact and scrub may fail where a read may: also when some page is damaged on both
    /// members (heals copy whole pages, so the open may have latched the store over it).
    fn tolerate(&mut self, result: mcstore_engine::Result<()>, what: &str) -> Result<(), Failure> {
        match result {
            Ok(()) => Ok(()),
            Err(error) if self.errors_allowed() || self.a_page_damaged_on_both() => {
                self.summary.allowed_errors += 1;
                let _ = error;
                Ok(())
            }
            Err(error) => Err(format!("{what} failed with a good copy everywhere: {error}")),
        }
    }

    fn allowed_mut(&mut self, key: &Bytes) -> &mut BTreeSet<Option<Bytes>> {
        self.allowed.entry(key.clone()).or_insert_with(|| BTreeSet::from([None]))
    }

    fn inject(&mut self, member: usize, offset: u64, len: u64) -> Result<(), Failure> {
        let pool = self.config.pool_bytes;
        let offset = offset % pool;
        let len = (len % 256 + 1).min(pool - offset);
        let lines: BTreeSet<u64> = (offset / LINE..=(offset + len - 1) / LINE).collect();
        if self.config.keep_a_good_copy {
            let other = self.damaged.get(1 - member.min(1)).filter(|_| self.members.len() == 2);
            let leaves_no_copy = match other {
                None => true,
                Some(other) => {
                    other.iter().any(|line| lines.contains(line))
                        || (member == 0 && self.replica_failed)
                        || self.db.as_ref().is_some_and(|db| db.stats().replicas_not_in_sync > 0)
                }
            };
            if leaves_no_copy {
                return Ok(());
            }
        }
        self.members[member].inject_poison(offset, len).map_err(|e| format!("inject: {e}"))?;
        self.damaged[member].extend(lines);
        self.summary.injections += 1;
        Ok(())
    }

    /// Open the store on `members` (fresh media after a crash, the same ones after a reopen).
    fn reopen(&mut self, members: Vec<Arc<SimMedium>>) -> Result<(), Failure> {
        for member in &members {
            member.clear_failures();
        }
        self.members = members;
        // `replica_failed` stays: what the replica missed while failing may still be missing
        // after the reopen (a range damaged on the primary then has no good copy).
        self.write_failed = false;
        let options = options(&self.config);
        let opened = if self.members.len() == 1 {
            Db::open_on(dyn_medium(&self.members[0]), options)
        } else {
            Db::open_on_replicas(
                self.members.iter().map(|m| Some(dyn_medium(m))).collect(),
                options,
            )
        };
        match opened {
            Ok(db) => {
                self.db = Some(db);
                self.settle()
            }
            // Heals copy whole pages (docs/replicas.md): with damage on both members in one
            // page, the open may find no clean page to repair the primary's from. A replica
            // whose superblock lost bytes may have no readable superblock: the set refuses it
            // (`MissingMember`, docs/replicas.md) unless opened degraded, which this is not.
            Err(error)
                if self.errors_allowed()
                    || self.a_page_damaged_on_both()
                    || self.a_replica_superblock_damaged()
                    || self.crashed_with_primary_superblock_damaged =>
            {
                // Nothing more can be checked: the machine stops here.
                self.summary.allowed_errors += 1;
                let _ = error;
                Ok(())
            }
            Err(error) => Err(format!("open failed with a good copy everywhere: {error}")),
        }
    }

    /// After recovery the durable state is decided: each key's allowed set shrinks to the value
    /// read (when it could be read).
    fn settle(&mut self) -> Result<(), Failure> {
        self.check()?;
        let Some(db) = &self.db else { return Ok(()) };
        for (key, allowed) in self.allowed.iter_mut() {
            if let Ok(value) = db.get(key) {
                *allowed = BTreeSet::from([value.map(|v| v.to_vec())]);
            }
        }
        Ok(())
    }

    fn crash(&mut self, seed: u64, fence: u8, key: &Bytes, value: &Bytes) -> Result<(), Failure> {
        let Some(db) = self.db.take() else { return Ok(()) };
        if self.damaged.first().is_some_and(superblock_damaged) {
            self.crashed_with_primary_superblock_damaged = true;
        }
        let primary = &self.members[0];
        let armed = primary.fences_seen() + u64::from(fence.max(1));
        primary.crash_at_fence(Some(armed));
        let result = db.put(key, value);
        let fired = primary.crashed_at().is_some();
        for member in &self.members {
            member.freeze();
        }
        match (&result, fired) {
            (Ok(()), true) => return Err("the put was acknowledged although it crashed".into()),
            (Ok(()), false) => {
                self.summary.acknowledged += 1;
                self.allowed.insert(key.clone(), BTreeSet::from([Some(value.clone())]));
            }
            (Err(_), true) => {
                self.summary.crashes_in_flight += 1;
                self.allowed_mut(key).insert(Some(value.clone()));
            }
            (Err(error), false) => {
                self.write_error(error)?;
                self.allowed_mut(key).insert(Some(value.clone()));
            }
        }
        drop(db);
        let mode = if seed & 1 == 0 { CrashMode::PerLinePrefix } else { CrashMode::AnySubset };
        let mut fresh = Vec::new();
        for (i, member) in self.members.iter().enumerate() {
            let image = member.crash_image(mode, seed.rotate_left(i as u32 * 17));
            let sim = Arc::new(SimMedium::from_image(image, MemberId(i as u8)));
            // Poison outlives power loss.
            for range in member.poisoned_ranges() {
                sim.inject_poison(range.start, range.end - range.start)
                    .map_err(|e| format!("re-inject: {e}"))?;
            }
            fresh.push(sim);
        }
        self.summary.crashes += 1;
        self.reopen(fresh)
    }

    /// The invariants: every key reads as the model allows (or fails, typed, where allowed);
    /// with nothing uncertain and no damage, iteration and `len` equal the model.
    pub fn check(&mut self) -> Result<(), Failure> {
        let Some(db) = self.db.clone() else { return Ok(()) };
        // A read retried from the replica repairs the primary's whole page (docs/replicas.md):
        // with damage on both members within one page the retry may find no clean page.
        let errors_allowed = self.errors_allowed() || self.a_page_damaged_on_both();
        for (key, allowed) in &self.allowed {
            self.summary.reads_checked += 1;
            match db.get(key) {
                Ok(value) => {
                    let value = value.map(|v| v.to_vec());
                    if !allowed.contains(&value) {
                        return Err(format!(
                            "get {} returned {:?}; the model allows {allowed:?}",
                            key.escape_ascii(),
                            value.map(|v| v.escape_ascii().to_string())
                        ));
                    }
                }
                Err(_) if errors_allowed => self.summary.allowed_errors += 1,
                Err(error) => {
                    return Err(format!(
                        "get {}: {error} (a good copy exists)",
                        key.escape_ascii()
                    ));
                }
            }
        }
        let certain = self.allowed.values().all(|values| values.len() == 1);
        if certain && !errors_allowed {
            let want: Vec<(Bytes, Bytes)> = self
                .allowed
                .iter()
                .filter_map(|(k, values)| values.first().cloned().flatten().map(|v| (k.clone(), v)))
                .collect();
            let got = db_contents(&db).map_err(|e| format!("iterating: {e}"))?;
            if got != want {
                return Err(format!(
                    "iteration gives {} keys, the model {}",
                    got.len(),
                    want.len()
                ));
            }
            if db.len() != want.len() {
                return Err(format!("len {} but the model has {}", db.len(), want.len()));
            }
        }
        Ok(())
    }
}

/// Whether any line of a superblock slot is among a member's damaged `lines`.
fn superblock_damaged(lines: &BTreeSet<u64>) -> bool {
    SUPERBLOCK_SLOT_OFFSETS.iter().any(|&at| {
        let end = (at + SUPERBLOCK_BYTES as u64).div_ceil(LINE);
        lines.range(at / LINE..end).next().is_some()
    })
}

fn options(config: &MachineConfig) -> Options {
    small_options().policy(config.policy.clone())
}

fn dyn_medium(sim: &Arc<SimMedium>) -> Arc<dyn Medium> {
    let medium: Arc<dyn Medium> = sim.clone();
    medium
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value: &str) -> Step {
        Step::Put { key: key.into(), value: value.into() }
    }

    #[test]
    fn a_crash_inside_a_put_keeps_what_was_acknowledged() {
        for fence in 1..=3 {
            for seed in 0..4 {
                let steps = vec![
                    put("a", "1"),
                    put("b", "2"),
                    Step::Crash { seed, fence, key: b"c".to_vec(), value: b"3".to_vec() },
                    Step::Remove { key: b"a".to_vec() },
                ];
                let summary = Machine::run(MachineConfig::default(), &steps).unwrap();
                assert_eq!(summary.crashes, 1);
                assert!(summary.acknowledged >= 3, "{summary:?}");
            }
        }
    }

    #[test]
    fn poison_on_one_member_is_never_an_error_and_the_check_catches_a_wrong_model() {
        let steps = vec![
            put("k", &"v".repeat(300)),
            Step::InjectPoison { member: 0, offset: 0, len: 255 },
            Step::InjectPoison { member: 1, offset: 0, len: 255 },
            Step::Reopen,
            Step::Scrub,
        ];
        let summary = Machine::run(MachineConfig::default(), &steps).unwrap();
        // The second injection overlaps the first on the other member: skipped.
        assert_eq!(summary.injections, 1);
        let mut machine = Machine::new(MachineConfig::default()).unwrap();
        machine.step(&put("x", "1")).unwrap();
        machine.allowed.insert(b"x".to_vec(), BTreeSet::from([Some(b"2".to_vec())]));
        assert!(machine.check().unwrap_err().contains("model allows"));
    }

    #[test]
    fn a_single_damaged_member_allows_typed_errors_only() {
        let config = MachineConfig { members: 1, keep_a_good_copy: false, ..Default::default() };
        let mut machine = Machine::new(config).unwrap();
        assert!(!machine.errors_allowed());
        machine.step(&put("k", "v")).unwrap();
        machine.step(&Step::InjectPoison { member: 0, offset: 200_000, len: 8 }).unwrap();
        assert!(machine.errors_allowed());
        machine.check().unwrap();
    }
}
