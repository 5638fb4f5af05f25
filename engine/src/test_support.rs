//! Helpers shared by the unit tests: small pools on a `SimMedium` or in /dev/shm, and
//! `Forwarding`, a `SimMedium` behind a medium that records what the engine asks of it.

use std::sync::Arc;

use mcstore_pmem::{Domain, ErrorRegister, FenceSite, Medium, MemberId, SimMedium};
use parking_lot::Mutex;

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

/// A `SimMedium` behind a forwarding medium that records the engine's flushes and
/// write-throughs, and reports the bad-block list the test sets (as a replica set reports its
/// quarantine), so what the engine does with the medium is visible.
pub(crate) struct Forwarding {
    /// The medium every call goes to.
    pub(crate) sim: Arc<SimMedium>,
    /// What `writes_through` answers (the engine then writes large values through).
    pub(crate) writes_through: bool,
    /// Every `flush(offset, len)`, in order.
    pub(crate) flushes: Mutex<Vec<(u64, u64)>>,
    /// Every `write_through(offset, data)` as `(offset, data.len())`, in order.
    pub(crate) through: Mutex<Vec<(u64, u64)>>,
    /// What `bad_blocks` reports.
    pub(crate) bad: Mutex<Vec<(u64, u64)>>,
    /// How long each fence takes (an `msync`-speed medium: groups outlast a writer's spin).
    pub(crate) fence_delay: std::time::Duration,
}

impl Forwarding {
    /// Forward to `sim`; `writes_through` is what the medium says of write-through.
    pub(crate) fn new(sim: Arc<SimMedium>, writes_through: bool) -> Arc<Self> {
        Self::with_fence_delay(sim, writes_through, std::time::Duration::ZERO)
    }

    /// Forward to `sim`, each fence taking `delay`.
    pub(crate) fn slow_fences(sim: Arc<SimMedium>, delay: std::time::Duration) -> Arc<Self> {
        Self::with_fence_delay(sim, false, delay)
    }

    fn with_fence_delay(
        sim: Arc<SimMedium>,
        writes_through: bool,
        fence_delay: std::time::Duration,
    ) -> Arc<Self> {
        Arc::new(Self {
            sim,
            writes_through,
            flushes: Mutex::default(),
            through: Mutex::default(),
            bad: Mutex::default(),
            fence_delay,
        })
    }
}

impl Medium for Forwarding {
    fn len(&self) -> u64 {
        self.sim.len()
    }
    fn member(&self) -> MemberId {
        self.sim.member()
    }
    fn write(&self, offset: u64, data: &[u8]) -> mcstore_pmem::Result<()> {
        self.sim.write(offset, data)
    }
    fn write_through(&self, offset: u64, data: &[u8]) -> mcstore_pmem::Result<()> {
        self.through.lock().push((offset, data.len() as u64));
        self.sim.write_through(offset, data)
    }
    fn writes_through(&self) -> bool {
        self.writes_through
    }
    fn store_u64(&self, offset: u64, value: u64) -> mcstore_pmem::Result<()> {
        self.sim.store_u64(offset, value)
    }
    fn flush(&self, offset: u64, len: u64) -> mcstore_pmem::Result<()> {
        self.flushes.lock().push((offset, len));
        self.sim.flush(offset, len)
    }
    fn fence(&self, site: FenceSite) -> mcstore_pmem::Result<()> {
        std::thread::sleep(self.fence_delay);
        self.sim.fence(site)
    }
    fn read(
        &self,
        offset: u64,
        dst: &mut [u8],
        register: &mut ErrorRegister,
        domain: Domain,
    ) -> mcstore_pmem::Result<()> {
        self.sim.read(offset, dst, register, domain)
    }
    fn grow(&self, new_len: u64) -> mcstore_pmem::Result<()> {
        self.sim.grow(new_len)
    }
    fn bad_blocks(&self) -> Vec<(u64, u64)> {
        self.bad.lock().clone()
    }
}
