//! mcstore under the bench: a pool in `ForcedPmem` mode (flush instructions on tmpfs), immediate
//! durability, created at the size the data needs (as LMDB's map size and a PMDK pool are), so a
//! timed loop never pays for growth; it may still grow beyond that.
//!
//! `McStore::with_eadr` maps the pool with eADR semantics (flushes skipped, fences kept) for the
//! W10 persistence tax; nothing else uses it.

use std::path::Path;
use std::sync::Arc;

use mcstore::pmem::{MapOptions, MappedMedium, ModeRequest};
use mcstore::{Batch, Db, Mode, Options};

use super::{Kv, KvResult, err};
use crate::keys::Key;

/// Pool file name inside the bench directory.
pub const POOL_FILE: &str = "mcstore.pool";

/// A pool with room for `data_bytes` of payload: records carry headers and padding, and the log
/// keeps superseded versions until compaction reclaims them, so allow 4× and at least 64 MiB.
pub fn pool_bytes_for(data_bytes: u64) -> u64 {
    (data_bytes.saturating_mul(4)).max(64 << 20).next_multiple_of(2 << 20)
}

/// The engine options every bench pool uses.
pub fn options(data_bytes: u64) -> Options {
    Options::default()
        .mode(Mode::ForcedPmem)
        .size_bytes(pool_bytes_for(data_bytes))
        .max_size_bytes(pool_bytes_for(data_bytes).saturating_mul(2))
}

/// mcstore as a `Kv`.
#[derive(Debug)]
pub struct McStore {
    db: Db,
}

impl McStore {
    /// Create a pool in `dir`.
    pub fn create(dir: &Path, data_bytes: u64) -> KvResult<Self> {
        let db = Db::create(dir.join(POOL_FILE), options(data_bytes))
            .map_err(|e| err("mcstore create")(&e))?;
        Ok(Self { db })
    }

    /// Create a pool in `dir` mapped with eADR semantics when `eadr` (flush instructions skipped).
    pub fn with_eadr(dir: &Path, data_bytes: u64, eadr: bool) -> KvResult<Self> {
        let len = pool_bytes_for(data_bytes);
        let map = MapOptions::default()
            .mode(ModeRequest::ForcedPmem)
            .allow_forced_pmem_on_any_fs(true)
            .eadr(Some(eadr))
            .max_len(len);
        let medium = MappedMedium::create(&dir.join(POOL_FILE), len, &map)
            .map_err(|e| err("mcstore map")(&e))?;
        let db = Db::create_on(Arc::new(medium), options(data_bytes))
            .map_err(|e| err("mcstore create_on")(&e))?;
        Ok(Self { db })
    }
}

impl Kv for McStore {
    fn put(&self, key: &[u8], value: &[u8]) -> KvResult<()> {
        self.db.put(key, value).map_err(|e| err("mcstore put")(&e))
    }

    fn put_batch(&self, pairs: &[(Key, &[u8])]) -> KvResult<()> {
        let mut batch = Batch::default();
        for (k, v) in pairs {
            batch.push_put(k, v);
        }
        self.db.apply_batch(batch).map_err(|e| err("mcstore batch")(&e))
    }

    fn get(&self, key: &[u8], out: &mut Vec<u8>) -> KvResult<bool> {
        self.db.get_into(key, out).map_err(|e| err("mcstore get")(&e))
    }

    fn scan(&self, start: &[u8], limit: usize) -> KvResult<(usize, usize)> {
        count(self.db.range(start..).take(limit))
    }

    fn scan_one_core(&self, start: &[u8], limit: usize) -> Option<KvResult<(usize, usize)>> {
        Some(count(self.db.range(start..).read_ahead(false).take(limit)))
    }

    fn read_modify_write(
        &self,
        key: &[u8],
        f: &mut dyn FnMut(Option<&[u8]>) -> Vec<u8>,
    ) -> KvResult<()> {
        self.db.update(key, |v| Some(f(v))).map(drop).map_err(|e| err("mcstore update")(&e))
    }

    fn remove(&self, key: &[u8]) -> KvResult<()> {
        self.db.delete(key).map(drop).map_err(|e| err("mcstore delete")(&e))
    }

    fn compact(&self) -> KvResult<String> {
        let s = self.db.compact().map_err(|e| err("mcstore compact")(&e))?;
        Ok(format!("{s:?}"))
    }

    fn space_bytes(&self) -> KvResult<u64> {
        let s = self.db.stats();
        let used_segments = u64::from(s.segments_total - s.segments_free);
        Ok(used_segments * s.segment_size_bytes)
    }
}

/// The items of a scan and their keys' and values' bytes.
fn count(
    scan: impl Iterator<Item = mcstore::Result<(mcstore::Value, mcstore::Value)>>,
) -> KvResult<(usize, usize)> {
    let (mut items, mut bytes) = (0, 0);
    for item in scan {
        let (k, v) = item.map_err(|e| err("mcstore scan")(&e))?;
        items += 1;
        bytes += k.as_slice().len() + v.as_slice().len();
    }
    Ok((items, bytes))
}
