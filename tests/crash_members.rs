//! Crashes of one replica member at a time: a two-member set (`Db::create_on_replicas` on
//! `SimMedium`s) runs an operation — a put, an open of a member left behind (stale), an open
//! that reconciles a member whose copy of the last put was lost (`replica.reconcile_data`,
//! `replica.reconcile_lines`), a scrub and a read that repair poison from the other member — and
//! each member is crashed, alone, at every fence it reaches. The crashed member's images (both
//! modes, sampled) with the other members' images must reopen to the model before or after the
//! operation, not failed, and reopen again (recovery idempotent) to the same contents.
//! `crash::every_fence_of_every_workload_recovers_to_an_allowed_state` adds these sites to its
//! registry check and figures.

use std::collections::BTreeSet;
use std::sync::Arc;

use mcstore::pmem::{CrashMode, FenceSite, Medium, MemberId, SimMedium};
use mcstore::recovery::format::{Geometry, SegmentId};
use mcstore::recovery::sites;
use mcstore::{Db, Options};
use mcstore_testkit::images::ImageSet;
use mcstore_testkit::model::{Model, Op, apply_db, db_contents};
use mcstore_testkit::pools::{SEGMENT_BYTES, small_options};

/// Members of the set.
const MEMBERS: u8 = 2;
/// Images per crash point and mode (sampled; the first ones are the no-store and all-store ones).
const IMAGES_PER_MODE: usize = 12;

/// The operation each member is crashed in.
#[derive(Clone, Copy, Debug)]
enum Scenario {
    /// A put on the healthy set (records and tail on both members).
    Put,
    /// Open after member 1 missed the primary's last put and close (it is behind): reconcile.
    OpenBehind,
    /// Scrub after a line of a record on the primary was poisoned: repair from member 1.
    ScrubPoisoned,
    /// Open after a lockstep put reached the primary but member 1's copy of it was lost (same
    /// superblock generation, tails differ): reconcile member 1's data and lines.
    OpenTorn,
    /// Reads of every key after a line of a record on the primary was poisoned: the read
    /// retries from member 1 and repairs the primary.
    ReadPoisoned,
}

/// Scenarios, in the order they run.
const SCENARIOS: [Scenario; 5] = [
    Scenario::Put,
    Scenario::OpenBehind,
    Scenario::ScrubPoisoned,
    Scenario::OpenTorn,
    Scenario::ReadPoisoned,
];

/// Sites the scenario's operation must reach on some member (so each is crashed at).
fn required_sites(scenario: Scenario) -> &'static [FenceSite] {
    match scenario {
        Scenario::Put => &[sites::RECORD_PERSIST, sites::TAIL_PUBLISH],
        Scenario::OpenBehind => &[sites::SUPERBLOCK_WRITE],
        Scenario::OpenTorn => &[sites::RECONCILE_DATA, sites::RECONCILE_LINES],
        Scenario::ScrubPoisoned | Scenario::ReadPoisoned => &[sites::PMEM_REPAIR],
    }
}

/// Setup puts (keys 0..SETUP_KEYS).
const SETUP_KEYS: u32 = 12;

/// What a scenario reached and checked.
#[derive(Debug, Default)]
pub struct MemberSummary {
    /// Sites a crash fired at (on any member).
    pub sites_crashed: BTreeSet<FenceSite>,
    /// Distinct images checked.
    pub images: u64,
}

fn options() -> Options {
    small_options()
}

fn pool_bytes() -> u64 {
    Geometry::for_segment_size(SEGMENT_BYTES).map(|g| g.pool_len_for(3)).unwrap_or(256 << 10)
}

fn put(i: u32, len: usize) -> Op {
    Op::Put { key: format!("key{i:03}").into_bytes(), value: vec![i as u8; len] }
}

fn dyns(sims: &[Arc<SimMedium>]) -> Vec<Arc<dyn Medium>> {
    sims.iter().map(|s| s.clone() as Arc<dyn Medium>).collect()
}

fn given(sims: &[Arc<SimMedium>]) -> Vec<Option<Arc<dyn Medium>>> {
    sims.iter().map(|s| Some(s.clone() as Arc<dyn Medium>)).collect()
}

fn from_images(images: &[Vec<u8>]) -> Vec<Arc<SimMedium>> {
    images
        .iter()
        .zip(0u8..)
        .map(|(image, i)| Arc::new(SimMedium::from_image(image.clone(), MemberId(i))))
        .collect()
}

/// The members, the open store (if any) and the model before the operation.
type Prepared = (Vec<Arc<SimMedium>>, Option<Db>, Model);

/// A fresh set with the scenario's setup applied: the members, the open store (if the
/// operation needs one), the model and the operation's effect on it.
fn prepare(scenario: Scenario) -> Result<Prepared, String> {
    let sims: Vec<Arc<SimMedium>> =
        (0..MEMBERS).map(|i| Arc::new(SimMedium::with_member(pool_bytes(), MemberId(i)))).collect();
    let db = Db::create_on_replicas(dyns(&sims), options()).map_err(|e| format!("create: {e}"))?;
    let mut model = Model::new();
    for i in 0..SETUP_KEYS {
        let op = put(i, 40 + 20 * i as usize);
        model.apply(&op);
        apply_db(&db, &op).map_err(|e| format!("setup put {i}: {e}"))?;
    }
    match scenario {
        Scenario::Put => Ok((sims, Some(db), model)),
        Scenario::OpenBehind => {
            // Member 1 keeps the image of a clean close; the primary goes on (one more put,
            // another close), as if member 1's copies of those stores were lost.
            drop(db);
            let behind = sims[1].persistent_image();
            let db = Db::open_on_replicas(given(&sims), options()).map_err(|e| format!("{e}"))?;
            let op = put(12, 100);
            model.apply(&op);
            apply_db(&db, &op).map_err(|e| format!("put on the primary: {e}"))?;
            drop(db);
            let images = vec![sims[0].persistent_image(), behind];
            Ok((from_images(&images), None, model))
        }
        Scenario::ScrubPoisoned | Scenario::ReadPoisoned => {
            // A line inside the first segment's records (the primary's copy only).
            let g = Geometry::for_segment_size(SEGMENT_BYTES).map_err(|e| e.to_string())?;
            let line = g.data_start(SegmentId(0)) + 256;
            sims[0].inject_poison(line, 64).map_err(|e| format!("poison: {e}"))?;
            Ok((sims, Some(db), model))
        }
        Scenario::OpenTorn => {
            // Member 1's image before the put; the primary's after it (acknowledged, not
            // closed): both carry the same superblock generation, only the tails differ.
            let behind = sims[1].persistent_image();
            let op = put(SETUP_KEYS, 500);
            model.apply(&op);
            apply_db(&db, &op).map_err(|e| format!("the torn put: {e}"))?;
            let images = vec![sims[0].persistent_image(), behind];
            sims.iter().for_each(|s| s.freeze());
            drop(db);
            Ok((from_images(&images), None, model))
        }
    }
}

/// Run the scenario's operation; the model after it. `Err` only for wrong data read.
fn in_flight(
    scenario: Scenario,
    sims: &[Arc<SimMedium>],
    db: Option<Db>,
    model: &Model,
) -> Result<Model, String> {
    let mut after = model.clone();
    match scenario {
        Scenario::Put => {
            let op = put(99, 300);
            after.apply(&op);
            if let Some(db) = db {
                let _ = apply_db(&db, &op);
            }
        }
        Scenario::OpenBehind | Scenario::OpenTorn => {
            let _ = Db::open_on_replicas(given(sims), options());
        }
        Scenario::ScrubPoisoned => {
            if let Some(db) = db {
                let _ = db.scrub();
            }
        }
        Scenario::ReadPoisoned => {
            if let Some(db) = db {
                for (key, want) in model.contents() {
                    // A failed read (the medium died) is allowed; a wrong value never.
                    if let Ok(got) = db.get(&key)
                        && got.as_deref() != Some(want.as_slice())
                    {
                        return Err(format!("read {} returned wrong data", key.escape_ascii()));
                    }
                }
            }
        }
    }
    Ok(after)
}

/// Crash each member at each fence of the scenario's operation; check every image.
fn run(scenario: Scenario) -> Result<MemberSummary, String> {
    let mut summary = MemberSummary::default();
    let (sims, db, before) = prepare(scenario)?;
    let starts: Vec<u64> = sims.iter().map(|s| s.fences_seen()).collect();
    let after = in_flight(scenario, &sims, db, &before)?;
    let logs: Vec<Vec<FenceSite>> = sims
        .iter()
        .zip(&starts)
        .map(|(s, &start)| s.fence_log().get(start as usize..).unwrap_or_default().to_vec())
        .collect();
    if logs.iter().all(Vec::is_empty) {
        return Err(format!("{scenario:?}: the operation reached no fence"));
    }
    for wanted in required_sites(scenario) {
        if !logs.iter().flatten().any(|site| site == wanted) {
            return Err(format!("{scenario:?}: the operation never reached {wanted:?}"));
        }
    }
    for (member, log) in logs.iter().enumerate() {
        for (k, site) in (1..).zip(log) {
            let (sims, db, _) = prepare(scenario)?;
            let n0 = sims[member].fences_seen();
            sims[member].crash_at_fence(Some(n0 + k));
            in_flight(scenario, &sims, db, &before)
                .map_err(|e| format!("{scenario:?}: member {member} fence {k}: {e}"))?;
            match sims[member].crashed_at() {
                Some((_, crashed)) if crashed == *site => {
                    summary.sites_crashed.insert(crashed);
                }
                other => {
                    return Err(format!(
                        "{scenario:?}: member {member} fence {k} ({site:?}) fired as {other:?}"
                    ));
                }
            }
            let others: Vec<Vec<u8>> = sims.iter().map(|s| s.persistent_image()).collect();
            let mut seen = ImageSet::new();
            for mode in [CrashMode::PerLinePrefix, CrashMode::AnySubset] {
                for image in sims[member].crash_images(mode, IMAGES_PER_MODE, k) {
                    if !seen.insert(&image) {
                        continue;
                    }
                    summary.images += 1;
                    let mut images = others.clone();
                    images[member] = image;
                    check(&images, &[&before, &after]).map_err(|e| {
                        format!(
                            "{scenario:?}: member {member} crashed at {k} ({site:?}) {mode:?}: {e}"
                        )
                    })?;
                }
            }
        }
    }
    Ok(summary)
}

/// Open the set of `images`; its contents must equal one of `expected`, and opening the
/// members' images right after that open (a crash just after recovery) gives the same contents.
fn check(images: &[Vec<u8>], expected: &[&Model]) -> Result<(), String> {
    let sims = from_images(images);
    let db = Db::open_on_replicas(given(&sims), options()).map_err(|e| format!("open: {e}"))?;
    if db.stats().failed {
        return Err("the reopened store is failed".into());
    }
    let contents = db_contents(&db).map_err(|e| format!("iterating: {e}"))?;
    if !expected.iter().any(|m| m.contents() == contents) {
        return Err(format!("{} keys recovered, matching no allowed state", contents.len()));
    }
    let recovered: Vec<Vec<u8>> = sims.iter().map(|s| s.persistent_image()).collect();
    sims.iter().for_each(|s| s.freeze());
    drop(db);
    let again = from_images(&recovered);
    let db = Db::open_on_replicas(given(&again), options())
        .map_err(|e| format!("second recovery: open: {e}"))?;
    let second = db_contents(&db).map_err(|e| format!("second recovery: iterating: {e}"))?;
    if db.stats().failed || second != contents {
        return Err(format!("second recovery: {} keys (was {})", second.len(), contents.len()));
    }
    Ok(())
}

/// Every scenario; the union of the sites crashed at. Called by the crash test.
pub fn run_all() -> Result<MemberSummary, String> {
    let mut total = MemberSummary::default();
    for scenario in SCENARIOS {
        let summary = run(scenario)?;
        total.sites_crashed.extend(summary.sites_crashed);
        total.images += summary.images;
    }
    Ok(total)
}
