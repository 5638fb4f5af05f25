//! fjall under the bench: one keyspace; every write call is followed by
//! `Database::persist(PersistMode::SyncAll)` (batches commit with that durability), fjall's fsync
//! of its journal.

use std::path::Path;

use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use super::{Kv, KvResult, dir_bytes, err};
use crate::keys::Key;

/// fjall as a `Kv`.
pub struct Fjall {
    db: Database,
    keyspace: Keyspace,
    dir: std::path::PathBuf,
}

impl Fjall {
    /// Create a database in `dir`.
    pub fn create(dir: &Path) -> KvResult<Self> {
        let db = Database::builder(dir).open().map_err(|e| err("fjall open")(&e))?;
        let keyspace = db
            .keyspace("kv", KeyspaceCreateOptions::default)
            .map_err(|e| err("fjall keyspace")(&e))?;
        Ok(Self { db, keyspace, dir: dir.to_path_buf() })
    }

    fn persist(&self) -> KvResult<()> {
        self.db.persist(PersistMode::SyncAll).map_err(|e| err("fjall persist")(&e))
    }
}

impl Kv for Fjall {
    fn put(&self, key: &[u8], value: &[u8]) -> KvResult<()> {
        self.keyspace.insert(key, value).map_err(|e| err("fjall insert")(&e))?;
        self.persist()
    }

    fn put_batch(&self, pairs: &[(Key, &[u8])]) -> KvResult<()> {
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncAll));
        for (k, v) in pairs {
            batch.insert(&self.keyspace, &k[..], *v);
        }
        batch.commit().map_err(|e| err("fjall batch")(&e))
    }

    fn get(&self, key: &[u8], out: &mut Vec<u8>) -> KvResult<bool> {
        match self.keyspace.get(key).map_err(|e| err("fjall get")(&e))? {
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
        for guard in self.keyspace.range(start..).take(limit) {
            let (k, v) = guard.into_inner().map_err(|e| err("fjall range")(&e))?;
            items += 1;
            bytes += k.len() + v.len();
        }
        Ok((items, bytes))
    }

    fn remove(&self, key: &[u8]) -> KvResult<()> {
        self.keyspace.remove(key).map_err(|e| err("fjall remove")(&e))?;
        self.persist()
    }

    fn space_bytes(&self) -> KvResult<u64> {
        dir_bytes(&self.dir)
    }
}
