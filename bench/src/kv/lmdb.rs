//! LMDB (through heed) under the bench: default environment flags, so every write transaction's
//! commit is synchronous (LMDB fsyncs its data file at commit); one transaction per write call.
//!
//! The one `unsafe` call of the bench's Rust code is heed's environment constructor, fenced here.

use std::path::Path;

use heed::types::Bytes;
use heed::{Database, Env, EnvOpenOptions};

use super::{Kv, KvResult, dir_bytes, err};
use crate::keys::Key;

/// LMDB as a `Kv`.
pub struct Lmdb {
    env: Env,
    db: Database<Bytes, Bytes>,
    dir: std::path::PathBuf,
}

impl Lmdb {
    /// Create an environment in `dir` with a map large enough for `data_bytes` of data.
    pub fn create(dir: &Path, data_bytes: u64) -> KvResult<Self> {
        let map_bytes = (data_bytes.saturating_mul(4)).max(256 << 20).next_multiple_of(1 << 20);
        let mut options = EnvOpenOptions::new();
        options.map_size(usize::try_from(map_bytes).map_err(|e| err("lmdb map size")(&e))?);
        #[expect(unsafe_code, reason = "heed's environment constructor is unsafe; see SAFETY")]
        // SAFETY: the directory is fresh and private to this handle: no other process or handle
        // modifies the files under the map, and no transaction outlives `self`.
        let env = unsafe { options.open(dir) }.map_err(|e| err("lmdb open")(&e))?;
        let mut txn = env.write_txn().map_err(|e| err("lmdb write_txn")(&e))?;
        let db =
            env.create_database(&mut txn, None).map_err(|e| err("lmdb create_database")(&e))?;
        txn.commit().map_err(|e| err("lmdb commit")(&e))?;
        Ok(Self { env, db, dir: dir.to_path_buf() })
    }

    fn write(&self, f: impl FnOnce(&mut heed::RwTxn<'_>) -> heed::Result<()>) -> KvResult<()> {
        let mut txn = self.env.write_txn().map_err(|e| err("lmdb write_txn")(&e))?;
        f(&mut txn).map_err(|e| err("lmdb write")(&e))?;
        txn.commit().map_err(|e| err("lmdb commit")(&e))
    }
}

impl Kv for Lmdb {
    fn put(&self, key: &[u8], value: &[u8]) -> KvResult<()> {
        self.write(|txn| self.db.put(txn, key, value))
    }

    fn put_batch(&self, pairs: &[(Key, &[u8])]) -> KvResult<()> {
        self.write(|txn| {
            for (k, v) in pairs {
                self.db.put(txn, &k[..], v)?;
            }
            Ok(())
        })
    }

    fn get(&self, key: &[u8], out: &mut Vec<u8>) -> KvResult<bool> {
        let txn = self.env.read_txn().map_err(|e| err("lmdb read_txn")(&e))?;
        match self.db.get(&txn, key).map_err(|e| err("lmdb get")(&e))? {
            Some(v) => {
                out.clear();
                out.extend_from_slice(v);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn scan(&self, start: &[u8], limit: usize) -> KvResult<(usize, usize)> {
        let txn = self.env.read_txn().map_err(|e| err("lmdb read_txn")(&e))?;
        let range = (std::ops::Bound::Included(start), std::ops::Bound::Unbounded);
        let (mut items, mut bytes) = (0, 0);
        for item in self.db.range(&txn, &range).map_err(|e| err("lmdb range")(&e))?.take(limit) {
            let (k, v) = item.map_err(|e| err("lmdb range")(&e))?;
            items += 1;
            bytes += k.len() + v.len();
        }
        Ok((items, bytes))
    }

    fn read_modify_write(
        &self,
        key: &[u8],
        f: &mut dyn FnMut(Option<&[u8]>) -> Vec<u8>,
    ) -> KvResult<()> {
        self.write(|txn| {
            let current = self.db.get(txn, key)?.map(<[u8]>::to_vec);
            let new = f(current.as_deref());
            self.db.put(txn, key, &new)
        })
    }

    fn remove(&self, key: &[u8]) -> KvResult<()> {
        self.write(|txn| self.db.delete(txn, key).map(drop))
    }

    fn space_bytes(&self) -> KvResult<u64> {
        dir_bytes(&self.dir)
    }
}
