//! The crash-at-every-fence driver: run a workload on a `SimMedium`, crash at each fence of its
//! in-flight operation, take every crash image (both modes; exhaustive up to a bound, sampled
//! from a fixed seed beyond), deduplicate them, and recover each one against the model.
//!
//! The oracle, per image: `open` succeeds with no damage and not failed; the contents equal one
//! of the allowed states — the model before or after the in-flight operation, or for a sequence
//! of relaxed writes made durable by one `sync`, the model after a prefix of that sequence (the
//! recovered log is a prefix of log order holding every acknowledged op; each op whole or
//! absent); point reads agree; recovering the recovered image again gives the same contents; and
//! for the first images of each crash point, a crash at every fence of that recovery converges
//! ([`crate::nested`]). After the operation returns, every image must show all of it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use mcstore_engine::{Db, Durability, Error, Options};
use mcstore_pmem::{CrashMode, FenceSite, SimMedium};
use mcstore_recovery::limits::SUPERBLOCK_AREA_BYTES;
use mcstore_recovery::pool;

use crate::images::ImageSet;
use crate::model::{Bytes, Model, Op, apply_db, db_contents};
use crate::nested::{self, NestedConfig};
use crate::pools::{as_medium, image_medium};

/// A failed check, with what was being checked.
pub type Failure = String;

/// How many images to check per crash point.
#[derive(Clone, Copy, Debug)]
pub struct CrashConfig {
    /// Enumerate every image when a mode allows at most this many.
    pub exhaustive_max: u128,
    /// Otherwise check this many samples (the no-store and all-stores images first).
    pub samples: usize,
    /// Seed of the samples (mixed with the crash point, so each point draws its own).
    pub seed: u64,
    /// Per crash point and mode, the first this many distinct images also have their recovery
    /// crashed at every fence (depth 2, [`crate::nested`]); 0: none.
    pub nested: usize,
    /// Images per crashed recovery.
    pub nested_config: NestedConfig,
}

impl Default for CrashConfig {
    fn default() -> Self {
        Self {
            exhaustive_max: 4096,
            samples: 384,
            seed: 0x6d63_7374_6f72_6521,
            nested: 1,
            nested_config: NestedConfig::default(),
        }
    }
}

impl CrashConfig {
    /// The defaults, with `samples` from `MCSTORE_CRASH_SAMPLES` when set (CI may raise it).
    pub fn from_env() -> Self {
        let samples = std::env::var("MCSTORE_CRASH_SAMPLES").ok().and_then(|s| s.parse().ok());
        let default = Self::default();
        Self { samples: samples.unwrap_or(default.samples), ..default }
    }
}

/// The operation a workload crashes inside.
#[derive(Clone, Debug)]
pub enum InFlight {
    /// A write through the API (`Put`, `Remove`, `Batch`, ...).
    Op(Op),
    /// Reopening the cleanly closed pool (recovery, then the "in use" superblock update).
    Open,
    /// Dropping the last handle (the clean-shutdown superblock update).
    Close,
    /// Formatting a new pool (`Db::create_on`).
    Create,
    /// One compaction pass (`Db::compact`): copies through the group commit, then reclaim.
    Compact,
    /// These writes with `Durability::None` (acknowledged, not durable), then one `sync()`:
    /// a crash anywhere in between may keep any prefix of them, never a gap.
    Relaxed(Vec<Op>),
    /// `db.transaction` that reads these keys and writes each one the value the next key held
    /// (the last the first's; an absent value removes): a read-write transaction, atomic.
    Transaction(Vec<Bytes>),
}

/// A workload: acknowledged setup operations, then one operation crashed at each of its fences.
#[derive(Clone, Debug)]
pub struct Workload {
    /// Name, for messages and figures.
    pub name: &'static str,
    /// Size of the `SimMedium`.
    pub pool_bytes: u64,
    /// If set, the medium and the store may grow to this size.
    pub max_pool_bytes: Option<u64>,
    /// Options the store is created and reopened with.
    pub options: Options,
    /// Operations acknowledged before the crash point (each must succeed).
    pub setup: Vec<Op>,
    /// The operation crashed in.
    pub in_flight: InFlight,
    /// Sites the in-flight operation must reach (each is then crashed at).
    pub sites: Vec<FenceSite>,
}

/// What a run did.
#[derive(Clone, Debug, Default)]
pub struct CrashSummary {
    /// Fences of the in-flight operation (= crash points).
    pub fences: u64,
    /// Distinct images recovered and checked.
    pub images: u64,
    /// Images generated, duplicates included.
    pub images_offered: u64,
    /// (crash point, mode) pairs enumerated exhaustively.
    pub exhaustive: u64,
    /// (crash point, mode) pairs sampled.
    pub sampled: u64,
    /// Sites the in-flight operation reached.
    pub sites_reached: BTreeSet<FenceSite>,
    /// Sites a crash fired at.
    pub sites_crashed: BTreeSet<FenceSite>,
    /// Recoveries crashed at every fence of theirs (depth 2).
    pub nested_runs: u64,
    /// Distinct images of crashed recoveries checked (included in `images`).
    pub nested_images: u64,
    /// Sites a crash during recovery fired at.
    pub nested_sites_crashed: BTreeSet<FenceSite>,
    /// Per site: how often the in-flight operation reached it, and how often a crash fired there.
    pub site_counts: BTreeMap<FenceSite, SiteCount>,
}

/// Reaches of one fence site and crashes at it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SiteCount {
    /// Times the in-flight operation reached the site (in the dry run).
    pub reaches: u64,
    /// Times a crash fired at it.
    pub crashes: u64,
}

/// The state before the in-flight operation.
struct Prepared {
    sim: Arc<SimMedium>,
    db: Option<Db>,
    model: Model,
}

/// Run `workload` under `config`: a dry run, then a crash at every fence of the in-flight
/// operation, every image checked. `Err` names the first check that failed.
pub fn run(workload: &Workload, config: &CrashConfig) -> Result<CrashSummary, Failure> {
    let name = workload.name;
    let mut summary = CrashSummary::default();
    // Dry run: count the fences and learn their sites; the model after the operation.
    let prepared = prepare(workload)?;
    let states = allowed_states(&workload.in_flight, &prepared.model);
    let Some(after) = states.last() else { return Err(format!("{name}: no allowed state")) };
    let sim = Arc::clone(&prepared.sim);
    let start = sim.fences_seen();
    // One set per workload: an image met at two crash points is recovered and counted once.
    let mut seen = ImageSet::new();
    let acknowledged = run_in_flight(workload, prepared, true)?;
    // Acknowledged: every image of the state right after it shows all of it.
    sim.freeze();
    check_images(workload, &sim, config, 0, &Allowed::new([after]), &mut seen, &mut summary)
        .map_err(|e| format!("{name}: after acknowledgement: {e}"))?;
    drop(acknowledged);
    let log = sim.fence_log();
    let sites: Vec<FenceSite> = log.get(start as usize..).unwrap_or_default().to_vec();
    summary.fences = sites.len() as u64;
    summary.sites_reached = sites.iter().copied().collect();
    for site in &sites {
        summary.site_counts.entry(*site).or_default().reaches += 1;
    }
    for wanted in &workload.sites {
        if !summary.sites_reached.contains(wanted) {
            return Err(format!("{name}: the in-flight operation never reached {wanted:?}"));
        }
    }
    let expected = Allowed::new(states.iter());
    for (k, site) in (1..).zip(&sites) {
        let prepared = prepare(workload)?;
        let sim = Arc::clone(&prepared.sim);
        let n0 = sim.fences_seen();
        if n0 != start {
            return Err(format!("{name}: setup is not deterministic ({n0} fences, then {start})"));
        }
        sim.crash_at_fence(Some(n0 + k));
        let acknowledged = run_in_flight(workload, prepared, false);
        match sim.crashed_at() {
            Some((at, crashed_site)) if at == n0 + k && crashed_site == *site => {
                summary.sites_crashed.insert(crashed_site);
                summary.site_counts.entry(crashed_site).or_default().crashes += 1;
            }
            other => {
                return Err(format!("{name}: crash {k} at {site:?} fired as {other:?}"));
            }
        }
        match acknowledged {
            Ok(Some(_)) if !matches!(workload.in_flight, InFlight::Close) => {
                return Err(format!("{name}: acknowledged although crashed at fence {k}"));
            }
            _ => {}
        }
        check_images(workload, &sim, config, k, &expected, &mut seen, &mut summary)
            .map_err(|e| format!("{name}: crash at fence {k} ({site:?}): {e}"))?;
    }
    Ok(summary)
}

/// A fresh medium with the setup applied (and, for `Open` and `Create`, no store open).
fn prepare(workload: &Workload) -> Result<Prepared, Failure> {
    let name = workload.name;
    let mut sim = SimMedium::new(workload.pool_bytes);
    if let Some(max) = workload.max_pool_bytes {
        sim = sim.with_max_len(max);
    }
    let sim = Arc::new(sim);
    let mut model = Model::new();
    if matches!(workload.in_flight, InFlight::Create) {
        return Ok(Prepared { sim, db: None, model });
    }
    let db = Db::create_on(as_medium(&sim), workload.options.clone())
        .map_err(|e| format!("{name}: create_on: {e}"))?;
    for (i, op) in workload.setup.iter().enumerate() {
        let want = model.apply(op);
        let got = apply_db(&db, op).map_err(|e| format!("{name}: setup op {i} {op:?}: {e}"))?;
        if got != want {
            return Err(format!("{name}: setup op {i}: got {got:?}, model says {want:?}"));
        }
    }
    let db = match workload.in_flight {
        InFlight::Open => {
            drop(db);
            None
        }
        _ => Some(db),
    };
    Ok(Prepared { sim, db, model })
}

/// The states a crash inside `in_flight` may recover to, starting from `before`, in log order;
/// the last one is the state after it was acknowledged.
pub fn allowed_states(in_flight: &InFlight, before: &Model) -> Vec<Model> {
    let mut states = vec![before.clone()];
    let mut model = before.clone();
    match in_flight {
        InFlight::Op(op) => {
            model.apply(op);
            states.push(model);
        }
        InFlight::Relaxed(ops) => {
            for op in ops {
                model.apply(op);
                states.push(model.clone());
            }
        }
        InFlight::Transaction(keys) => {
            model.apply(&rotation(keys, before));
            states.push(model);
        }
        InFlight::Open | InFlight::Close | InFlight::Create | InFlight::Compact => {}
    }
    states
}

/// What the rotating transaction over `keys` writes, as a batch, given the state it reads.
fn rotation(keys: &[Bytes], model: &Model) -> Op {
    let next = keys.iter().cycle().skip(1);
    Op::Batch(
        keys.iter().zip(next).map(|(key, from)| (key.clone(), model.get(from).cloned())).collect(),
    )
}

/// Run the in-flight operation. `Ok(Some(db))` when it was acknowledged and left a store open;
/// `Ok(None)` when it was acknowledged and left none (Close). `check` (dry run only) compares
/// the operation's results with the model's.
fn run_in_flight(
    workload: &Workload,
    prepared: Prepared,
    check: bool,
) -> Result<Option<Db>, Failure> {
    let Prepared { sim, db, model } = prepared;
    let name = workload.name;
    let options = workload.options.clone();
    match &workload.in_flight {
        InFlight::Op(op) => {
            let db = db.ok_or_else(|| format!("{name}: no store"))?;
            let want = model.clone().apply(op);
            let got = apply_db(&db, op).map_err(|e| format!("{name}: in-flight {op:?}: {e}"))?;
            if check && got != want {
                return Err(format!("{name}: in-flight: got {got:?}, model says {want:?}"));
            }
            Ok(Some(db))
        }
        InFlight::Relaxed(ops) => {
            let db = db.ok_or_else(|| format!("{name}: no store"))?;
            let lazy = db.with_durability(Durability::None);
            let mut model = model;
            for (i, op) in ops.iter().enumerate() {
                let want = model.apply(op);
                let got = apply_db(&lazy, op).map_err(|e| format!("{name}: relaxed {i}: {e}"))?;
                if check && got != want {
                    return Err(format!("{name}: relaxed {i}: got {got:?}, model says {want:?}"));
                }
            }
            drop(lazy);
            db.sync().map_err(|e| format!("{name}: sync: {e}"))?;
            Ok(Some(db))
        }
        InFlight::Transaction(keys) => {
            let db = db.ok_or_else(|| format!("{name}: no store"))?;
            let read = db
                .transaction(|tx| {
                    let mut values = Vec::with_capacity(keys.len());
                    for key in keys {
                        values.push(tx.get(key)?);
                    }
                    for (key, value) in keys.iter().zip(values.iter().cycle().skip(1)) {
                        match value {
                            Some(value) => tx.put(key, value),
                            None => tx.remove(key),
                        }
                    }
                    Ok(values)
                })
                .map_err(|e| format!("{name}: transaction: {e}"))?;
            let want: Vec<Option<Bytes>> = keys.iter().map(|k| model.get(k).cloned()).collect();
            let got: Vec<Option<Bytes>> =
                read.iter().map(|v| v.as_deref().map(<[u8]>::to_vec)).collect();
            if check && got != want {
                return Err(format!("{name}: the transaction read {got:?}, model says {want:?}"));
            }
            Ok(Some(db))
        }
        InFlight::Open => {
            let db = Db::open_on(as_medium(&sim), options).map_err(|e| format!("{name}: {e}"))?;
            Ok(Some(db))
        }
        InFlight::Close => {
            drop(db);
            Ok(None)
        }
        InFlight::Create => {
            let db = Db::create_on(as_medium(&sim), options).map_err(|e| format!("{name}: {e}"))?;
            Ok(Some(db))
        }
        InFlight::Compact => {
            let db = db.ok_or_else(|| format!("{name}: no store"))?;
            let summary = db.compact().map_err(|e| format!("{name}: compact: {e}"))?;
            if check && summary.segments_reclaimed == 0 {
                return Err(format!("{name}: the compaction reclaimed nothing: {summary:?}"));
            }
            Ok(Some(db))
        }
    }
}

/// Check the images of `sim`'s current (crashed or frozen) state in both modes.
fn check_images(
    workload: &Workload,
    sim: &SimMedium,
    config: &CrashConfig,
    point: u64,
    expected: &Allowed,
    seen: &mut ImageSet,
    summary: &mut CrashSummary,
) -> Result<(), Failure> {
    for mode in [CrashMode::PerLinePrefix, CrashMode::AnySubset] {
        let count = sim.image_count(mode);
        let limit = if count <= config.exhaustive_max {
            summary.exhaustive += 1;
            usize::try_from(config.exhaustive_max).unwrap_or(usize::MAX)
        } else {
            summary.sampled += 1;
            config.samples
        };
        let seed = config.seed ^ point.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut nested_left = config.nested;
        for (i, image) in sim.crash_images(mode, limit, seed).enumerate() {
            summary.images_offered += 1;
            if !seen.insert(&image) {
                continue;
            }
            summary.images += 1;
            let keep = (nested_left > 0).then(|| image.clone());
            let recovered = recover_image(workload, image, expected, point > 0)
                .map_err(|e| format!("{mode:?} image {i} of {count}: {e}"))?;
            if let (Some(image), Some(contents)) = (keep, recovered) {
                nested_left -= 1;
                let nested = nested::crash_recovery(
                    &image,
                    &workload.options,
                    &contents,
                    &config.nested_config,
                    seen,
                )
                .map_err(|e| format!("{mode:?} image {i} of {count}, nested: {e}"))?;
                summary.nested_runs += 1;
                summary.nested_images += nested.images;
                summary.images_offered += nested.offered;
                summary.images += nested.images;
                summary.nested_sites_crashed.extend(nested.sites_crashed);
            }
        }
    }
    Ok(())
}

/// Recover one image and check it against the models it may equal. `crashed`: the image is of a
/// crash inside the operation (not after its acknowledgement).
pub fn check_image(
    workload: &Workload,
    image: Vec<u8>,
    expected: &[&Model],
    crashed: bool,
) -> Result<(), Failure> {
    recover_image(workload, image, &Allowed::new(expected.iter().copied()), crashed).map(drop)
}

/// The allowed states as contents, and every key any of them holds: computed once per crash
/// point, not once per image.
pub struct Allowed {
    states: Vec<Vec<(Bytes, Bytes)>>,
    keys: BTreeSet<Bytes>,
}

impl Allowed {
    /// The contents of `models`.
    pub fn new<'a>(models: impl IntoIterator<Item = &'a Model>) -> Self {
        let states: Vec<Vec<(Bytes, Bytes)>> = models.into_iter().map(Model::contents).collect();
        let keys = states.iter().flatten().map(|(k, _)| k.clone()).collect();
        Self { states, keys }
    }
}

/// [`check_image`], returning the recovered contents (`None`: a crash while formatting left no
/// pool, which is allowed).
fn recover_image(
    workload: &Workload,
    image: Vec<u8>,
    expected: &Allowed,
    crashed: bool,
) -> Result<Option<Vec<(Bytes, Bytes)>>, Failure> {
    let creating = crashed && matches!(workload.in_flight, InFlight::Create);
    // A crash while formatting leaves a whole pool or one never created (no magic; zero but
    // slot A's body): never a torn first superblock.
    let area = usize::try_from(SUPERBLOCK_AREA_BYTES).unwrap_or(usize::MAX);
    let none = creating && image.get(..area).is_some_and(pool::never_created);
    let medium = image_medium(image);
    let db = match Db::open_on(as_medium(&medium), workload.options.clone()) {
        Ok(db) => db,
        // Nothing was acknowledged, and the error is typed.
        Err(Error::UnsupportedFormat { .. } | Error::Corrupt { .. }) if none => {
            return Ok(None);
        }
        Err(e) => return Err(format!("open: {e}")),
    };
    let contents = check_recovered(&db, expected, true)?;
    // Recover the recovered pool again (as if it crashed right after opening): same contents.
    let again = image_medium(medium.persistent_image());
    drop(db);
    let db = Db::open_on(as_medium(&again), workload.options.clone())
        .map_err(|e| format!("second recovery: open: {e}"))?;
    let second = check_recovered(&db, expected, false)?;
    if second != contents {
        return Err(format!(
            "second recovery changed the contents: {} keys, then {}",
            contents.len(),
            second.len()
        ));
    }
    Ok(Some(contents))
}

/// A recovered store: clean report, not failed, contents equal to one of `expected` (returned);
/// with `point_reads`, `get` of every key of the allowed states agrees with the iteration.
fn check_recovered(
    db: &Db,
    expected: &Allowed,
    point_reads: bool,
) -> Result<Vec<(Bytes, Bytes)>, Failure> {
    let report = db.recovery_report();
    if !report.is_clean() || report.damage_found != 0 {
        return Err(format!("damage reported for a pure crash: {report}"));
    }
    if db.stats().failed {
        return Err("the recovered store is failed".into());
    }
    let contents = db_contents(db).map_err(|e| format!("iterating: {e}"))?;
    if !expected.states.contains(&contents) {
        return Err(describe_mismatch(&contents, &expected.states));
    }
    if db.len() != contents.len() {
        return Err(format!("len {} but {} keys iterated", db.len(), contents.len()));
    }
    if !point_reads {
        return Ok(contents);
    }
    for key in &expected.keys {
        let got = db.get(key).map_err(|e| format!("get {}: {e}", key.escape_ascii()))?;
        // INVARIANT: iteration is ascending by key.
        let want = contents.binary_search_by(|(k, _)| k.cmp(key)).ok().map(|i| &contents[i].1);
        if got.as_deref() != want.map(Vec::as_slice) {
            return Err(format!("get {} disagrees with iteration", key.escape_ascii()));
        }
    }
    Ok(contents)
}

fn describe_mismatch(contents: &[(Bytes, Bytes)], expected: &[Vec<(Bytes, Bytes)>]) -> Failure {
    let mut text = format!("recovered {} keys matching no allowed state;", contents.len());
    for (i, want) in expected.iter().enumerate() {
        let missing = want.iter().filter(|kv| !contents.contains(kv)).count();
        let extra = contents.iter().filter(|kv| !want.contains(kv)).count();
        text.push_str(&format!(" vs state {i}: {missing} missing or different, {extra} extra;"));
    }
    text
}

#[cfg(test)]
mod tests {
    use mcstore_recovery::sites;

    use super::*;
    use crate::pools::small_options;

    fn put_workload(sites: Vec<FenceSite>) -> Workload {
        let put = |key: &str, len| Op::Put { key: key.into(), value: vec![7; len] };
        Workload {
            name: "unit put",
            pool_bytes: 256 << 10,
            max_pool_bytes: None,
            options: small_options(),
            setup: vec![put("a", 10), put("b", 300)],
            in_flight: InFlight::Op(put("c", 100)),
            sites,
        }
    }

    #[test]
    fn a_put_is_crashed_at_both_of_its_fences() {
        let workload = put_workload(vec![sites::RECORD_PERSIST, sites::TAIL_PUBLISH]);
        let config = CrashConfig { samples: 8, ..CrashConfig::default() };
        let summary = run(&workload, &config).unwrap();
        assert_eq!(summary.fences, 2);
        assert_eq!(summary.sites_crashed, summary.sites_reached);
        let once = SiteCount { reaches: 1, crashes: 1 };
        assert_eq!(summary.site_counts.get(&sites::TAIL_PUBLISH), Some(&once));
        // The tail word alone is pending at TAIL_PUBLISH: two images per mode, exhaustive.
        assert!(summary.exhaustive >= 4);
        assert!(summary.images >= 4 && summary.images <= summary.images_offered);
    }

    #[test]
    fn a_relaxed_sequence_allows_each_prefix_and_no_gap() {
        let put = |key: &str| Op::Put { key: key.into(), value: vec![3; 50] };
        let mut workload = put_workload(vec![sites::RECORD_PERSIST, sites::TAIL_PUBLISH]);
        workload.in_flight = InFlight::Relaxed(vec![put("x"), put("y"), put("z")]);
        let prepared = prepare(&workload).unwrap();
        let states = allowed_states(&workload.in_flight, &prepared.model);
        assert_eq!(states.len(), 4);
        assert_eq!(states[3].len(), states[0].len() + 3);
        // A pool holding the setup and "y" without "x" is a gap in log order: refused.
        let db = prepared.db.unwrap();
        apply_db(&db, &put("y")).unwrap();
        let image = prepared.sim.persistent_image();
        let expected: Vec<&Model> = states.iter().collect();
        assert!(check_image(&workload, image, &expected, true).is_err());
        let summary = run(&workload, &CrashConfig { samples: 4, ..CrashConfig::default() });
        assert!(summary.unwrap().nested_runs >= 1);
    }

    #[test]
    fn a_transaction_rotates_the_values_it_read() {
        let keys = vec![b"a".to_vec(), b"b".to_vec(), b"none".to_vec()];
        let mut workload = put_workload(vec![sites::RECORD_PERSIST, sites::TAIL_PUBLISH]);
        workload.in_flight = InFlight::Transaction(keys);
        let prepared = prepare(&workload).unwrap();
        let states = allowed_states(&workload.in_flight, &prepared.model);
        let after = states.last().unwrap();
        assert_eq!(after.get(b"a"), Some(&vec![7; 300]));
        assert_eq!((after.get(b"b"), after.get(b"none")), (None, Some(&vec![7; 10])));
        let summary = run(&workload, &CrashConfig { samples: 4, nested: 0, ..Default::default() });
        assert_eq!(summary.unwrap().fences, 2);
    }

    #[test]
    fn a_crashed_create_leaves_a_whole_pool_or_none_never_a_torn_one() {
        let mut workload = put_workload(vec![]);
        workload.in_flight = InFlight::Create;
        let empty = Model::new();
        // Nothing written: a pool never created.
        assert!(check_image(&workload, vec![0; 256 << 10], &[&empty], true).is_ok());
        // Bytes where slot A's magic goes, without a superblock: torn, refused.
        let mut torn = vec![0u8; 256 << 10];
        torn[..8].copy_from_slice(b"garbage!");
        assert!(check_image(&workload, torn, &[&empty], true).is_err());
    }

    #[test]
    fn a_site_the_operation_never_reaches_fails_the_run() {
        let workload = put_workload(vec![sites::SEGMENT_HEADER]);
        let error = run(&workload, &CrashConfig { samples: 2, ..CrashConfig::default() });
        assert!(error.unwrap_err().contains("never reached"));
    }
}
