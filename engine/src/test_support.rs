//! Helpers shared by the unit tests: small pools on a `SimMedium` or in /dev/shm.

use std::sync::Arc;

use mcstore_pmem::{Medium, SimMedium};

use crate::db::Db;
use crate::options::Options;

/// Segment size of test pools (the smallest the format allows).
pub(crate) const SEGMENT: u64 = 64 << 10;

/// Options for a small test pool: 64 KiB segments, no background work.
pub(crate) fn small_options() -> Options {
    Options::default().segment_size_bytes(SEGMENT).background(false)
}

/// A fresh store on a `SimMedium` of `len` bytes, and the medium.
pub(crate) fn sim_db(len: u64, options: Options) -> (Arc<SimMedium>, Db) {
    let sim = Arc::new(SimMedium::new(len));
    let medium: Arc<dyn Medium> = sim.clone();
    let db = Db::create_on(medium, options).expect("create_on a SimMedium");
    (sim, db)
}

/// Reopen the pool on `sim` (after the previous store was dropped).
pub(crate) fn reopen(sim: &Arc<SimMedium>, options: Options) -> Db {
    let medium: Arc<dyn Medium> = sim.clone();
    Db::open_on(medium, options).expect("open_on a SimMedium")
}

/// A temporary directory on tmpfs for mapped pools.
pub(crate) fn shm_dir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("mcstore-engine-").tempdir_in("/dev/shm").expect("tempdir")
}
