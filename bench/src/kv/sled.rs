//! sled under the bench: every write call is followed by `flush()`, sled's fsync of its log —
//! its durable setting (sled has no per-write sync flag).

use std::path::Path;

use super::{Kv, KvResult, dir_bytes, err};
use crate::keys::Key;

/// sled as a `Kv`.
pub struct Sled {
    db: sled::Db,
    dir: std::path::PathBuf,
}

impl Sled {
    /// Create a database in `dir`.
    pub fn create(dir: &Path) -> KvResult<Self> {
        let db = sled::open(dir).map_err(|e| err("sled open")(&e))?;
        Ok(Self { db, dir: dir.to_path_buf() })
    }

    fn flush(&self) -> KvResult<()> {
        self.db.flush().map(drop).map_err(|e| err("sled flush")(&e))
    }
}

impl Kv for Sled {
    fn put(&self, key: &[u8], value: &[u8]) -> KvResult<()> {
        self.db.insert(key, value).map_err(|e| err("sled insert")(&e))?;
        self.flush()
    }

    fn put_batch(&self, pairs: &[(Key, &[u8])]) -> KvResult<()> {
        let mut batch = sled::Batch::default();
        for (k, v) in pairs {
            batch.insert(&k[..], *v);
        }
        self.db.apply_batch(batch).map_err(|e| err("sled apply_batch")(&e))?;
        self.flush()
    }

    fn get(&self, key: &[u8], out: &mut Vec<u8>) -> KvResult<bool> {
        match self.db.get(key).map_err(|e| err("sled get")(&e))? {
            Some(v) => {
                out.clear();
                out.extend_from_slice(&v);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn scan(&self, start: &[u8], limit: usize) -> KvResult<(usize, usize)> {
        let (mut items, mut bytes) = (0, 0);
        for item in self.db.range(start..).take(limit) {
            let (k, v) = item.map_err(|e| err("sled range")(&e))?;
            items += 1;
            bytes += k.len() + v.len();
        }
        Ok((items, bytes))
    }

    fn remove(&self, key: &[u8]) -> KvResult<()> {
        self.db.remove(key).map_err(|e| err("sled remove")(&e))?;
        self.flush()
    }

    fn space_bytes(&self) -> KvResult<u64> {
        dir_bytes(&self.dir)
    }
}
