//! RocksDB under the bench: default options (no compression compiled in), every write with
//! `WriteOptions::set_sync(true)` — the WAL is fsynced before the call returns.

use std::path::Path;

use rocksdb::{DB, Direction, IteratorMode, Options, WriteBatch, WriteOptions};

use super::{Kv, KvResult, dir_bytes, err};
use crate::keys::Key;

/// RocksDB as a `Kv`.
pub struct Rocks {
    db: DB,
    sync: WriteOptions,
    dir: std::path::PathBuf,
}

impl Rocks {
    /// Create a database in `dir`.
    pub fn create(dir: &Path) -> KvResult<Self> {
        let mut options = Options::default();
        options.create_if_missing(true);
        let db = DB::open(&options, dir).map_err(|e| err("rocksdb open")(&e))?;
        let mut sync = WriteOptions::default();
        sync.set_sync(true);
        Ok(Self { db, sync, dir: dir.to_path_buf() })
    }
}

impl Kv for Rocks {
    fn put(&self, key: &[u8], value: &[u8]) -> KvResult<()> {
        self.db.put_opt(key, value, &self.sync).map_err(|e| err("rocksdb put")(&e))
    }

    fn put_batch(&self, pairs: &[(Key, &[u8])]) -> KvResult<()> {
        let mut batch = WriteBatch::default();
        for (k, v) in pairs {
            batch.put(k, v);
        }
        self.db.write_opt(batch, &self.sync).map_err(|e| err("rocksdb write")(&e))
    }

    fn get(&self, key: &[u8], out: &mut Vec<u8>) -> KvResult<bool> {
        match self.db.get_pinned(key).map_err(|e| err("rocksdb get")(&e))? {
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
        let mode = IteratorMode::From(start, Direction::Forward);
        for item in self.db.iterator(mode).take(limit) {
            let (k, v) = item.map_err(|e| err("rocksdb iterator")(&e))?;
            items += 1;
            bytes += k.len() + v.len();
        }
        Ok((items, bytes))
    }

    fn remove(&self, key: &[u8]) -> KvResult<()> {
        self.db.delete_opt(key, &self.sync).map_err(|e| err("rocksdb delete")(&e))
    }

    fn space_bytes(&self) -> KvResult<u64> {
        dir_bytes(&self.dir)
    }
}
