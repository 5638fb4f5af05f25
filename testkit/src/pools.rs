//! Small pools for tests: options with 64 KiB segments and no background work, stores on a
//! `SimMedium`, crash images reopened, and temporary directories on tmpfs for mapped pools.
//!
//! INVARIANT: every helper here uses the public API only (`Db::create_on` / `open_on`), so
//! what the tests see is what a user of the facade sees.

use std::sync::Arc;

use mcstore_engine::{Db, Options, Result};
use mcstore_pmem::{Medium, MemberId, SimMedium};

/// Segment size of test pools (the smallest the format allows, so rolls are frequent).
pub const SEGMENT_BYTES: u64 = 64 << 10;

/// Options for a small test pool: 64 KiB segments, no background work.
pub fn small_options() -> Options {
    Options::default().segment_size_bytes(SEGMENT_BYTES).background(false)
}

/// A fresh store on a new `SimMedium` of `len` bytes, and the medium.
pub fn sim_db(len: u64, options: Options) -> Result<(Arc<SimMedium>, Db)> {
    let sim = Arc::new(SimMedium::new(len));
    let db = Db::create_on(as_medium(&sim), options)?;
    Ok((sim, db))
}

/// Open the pool on `sim` again (the previous store must be dropped).
pub fn reopen(sim: &Arc<SimMedium>, options: Options) -> Result<Db> {
    Db::open_on(as_medium(&sim.clone()), options)
}

/// A medium holding `image` (a crash image or a mutated pool), as member 0.
pub fn image_medium(image: Vec<u8>) -> Arc<SimMedium> {
    Arc::new(SimMedium::from_image(image, MemberId(0)))
}

/// `sim` as the trait object `Db` takes.
pub fn as_medium(sim: &Arc<SimMedium>) -> Arc<dyn Medium> {
    let medium: Arc<dyn Medium> = sim.clone();
    medium
}
