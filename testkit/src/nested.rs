//! Crashes during recovery (nested, depth 2): a crash image is opened with a crash at each fence
//! of that open (superblock update, tail clears, reconcile), and every image of the crashed
//! open must recover to exactly the contents the uncrashed open recovered.
//!
//! INVARIANT: recovery converges — whatever fence of an open the power fails at, the next open
//! sees the same store as the open that was interrupted would have (idempotent recovery).

use std::collections::BTreeSet;

use mcstore_engine::{Db, Options};
use mcstore_pmem::{CrashMode, FenceSite};

use crate::images::ImageSet;
use crate::model::{Bytes, db_contents};
use crate::pools::{as_medium, image_medium};

/// A failed check, with what was being checked.
pub type Failure = String;

/// How many images of each crashed open to check.
#[derive(Clone, Copy, Debug)]
pub struct NestedConfig {
    /// Images per crash point of the open and mode (sampled unless the mode allows fewer).
    pub images_per_mode: usize,
    /// Seed of the samples (mixed with the fence number).
    pub seed: u64,
}

impl Default for NestedConfig {
    fn default() -> Self {
        Self { images_per_mode: 6, seed: 0x6e65_7374_6564_2132 }
    }
}

/// What one nested run did.
#[derive(Clone, Debug, Default)]
pub struct NestedSummary {
    /// Fences of the open (= nested crash points).
    pub fences: u64,
    /// Distinct images of crashed opens recovered and checked.
    pub images: u64,
    /// Images of crashed opens generated, duplicates included.
    pub offered: u64,
    /// Sites a nested crash fired at.
    pub sites_crashed: BTreeSet<FenceSite>,
}

/// Open `image` with a crash at each fence of the open; every image of each crashed open must
/// reopen clean, not failed, with contents equal to `want` (what the uncrashed open recovered).
/// Images already in `seen` are skipped (and new ones added to it).
pub fn crash_recovery(
    image: &[u8],
    options: &Options,
    want: &[(Bytes, Bytes)],
    config: &NestedConfig,
    seen: &mut ImageSet,
) -> Result<NestedSummary, Failure> {
    let mut summary = NestedSummary::default();
    // Dry run: the fences of the open, and its contents (the caller's `want`).
    let sim = image_medium(image.to_vec());
    let db = Db::open_on(as_medium(&sim), options.clone()).map_err(|e| format!("open: {e}"))?;
    let log = sim.fence_log();
    let contents = db_contents(&db).map_err(|e| format!("iterating: {e}"))?;
    if contents != want {
        return Err("an open of the same image recovered different contents".into());
    }
    // The close is not part of the open: stop the dry run's medium first.
    sim.freeze();
    drop(db);
    summary.fences = log.len() as u64;
    for (k, site) in (1..).zip(&log) {
        let sim = image_medium(image.to_vec());
        sim.crash_at_fence(Some(k));
        let opened = Db::open_on(as_medium(&sim), options.clone());
        match sim.crashed_at() {
            Some((at, crashed)) if at == k && crashed == *site => {
                summary.sites_crashed.insert(crashed);
            }
            other => return Err(format!("open's fence {k} ({site:?}) fired as {other:?}")),
        }
        drop(opened);
        for mode in [CrashMode::PerLinePrefix, CrashMode::AnySubset] {
            let seed = config.seed ^ k.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            for (i, nested) in sim.crash_images(mode, config.images_per_mode, seed).enumerate() {
                summary.offered += 1;
                if !seen.insert(&nested) {
                    continue;
                }
                summary.images += 1;
                reopen_converges(nested, options, want).map_err(|e| {
                    format!("open crashed at its fence {k} ({site:?}), {mode:?} image {i}: {e}")
                })?;
            }
        }
    }
    Ok(summary)
}

/// Open an image of a crashed open: clean, not failed, contents exactly `want`.
fn reopen_converges(
    image: Vec<u8>,
    options: &Options,
    want: &[(Bytes, Bytes)],
) -> Result<(), Failure> {
    let medium = image_medium(image);
    let db = Db::open_on(as_medium(&medium), options.clone()).map_err(|e| format!("open: {e}"))?;
    let report = db.recovery_report();
    if !report.is_clean() || report.damage_found != 0 {
        return Err(format!("damage reported after a crash during recovery: {report}"));
    }
    if db.stats().failed {
        return Err("the store is failed after a crash during recovery".into());
    }
    let contents = db_contents(&db).map_err(|e| format!("iterating: {e}"))?;
    if contents != want {
        return Err(format!(
            "did not converge: {} keys, the interrupted open recovered {}",
            contents.len(),
            want.len()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use mcstore_recovery::sites;

    use super::*;
    use crate::pools::{sim_db, small_options};

    /// A store with a put whose tail publish was cut: an image with the put torn.
    fn torn_image() -> Vec<u8> {
        let (sim, db) = sim_db(256 << 10, small_options()).unwrap();
        db.put("a", vec![1u8; 100]).unwrap();
        sim.crash_at_fence(Some(sim.fences_seen() + 2));
        assert!(db.put("b", vec![2u8; 300]).is_err());
        sim.crash_images(CrashMode::AnySubset, 1, 7).next().unwrap()
    }

    #[test]
    fn a_crash_at_every_fence_of_an_open_converges() {
        let image = torn_image();
        let db = Db::open_on(as_medium(&image_medium(image.clone())), small_options()).unwrap();
        let want = db_contents(&db).unwrap();
        drop(db);
        let mut seen = ImageSet::new();
        let summary =
            crash_recovery(&image, &small_options(), &want, &NestedConfig::default(), &mut seen)
                .unwrap();
        assert!(summary.fences >= 1);
        assert!(summary.sites_crashed.contains(&sites::SUPERBLOCK_WRITE));
        assert!(summary.images >= 2 && summary.images as usize == seen.distinct());
    }

    #[test]
    fn contents_other_than_the_open_recovered_fail() {
        let image = torn_image();
        let wrong = vec![(b"phantom".to_vec(), b"x".to_vec())];
        let mut seen = ImageSet::new();
        let error =
            crash_recovery(&image, &small_options(), &wrong, &NestedConfig::default(), &mut seen);
        assert!(error.unwrap_err().contains("different contents"));
        let failed = reopen_converges(image, &small_options(), &wrong).unwrap_err();
        assert!(failed.contains("did not converge"), "{failed}");
    }
}
