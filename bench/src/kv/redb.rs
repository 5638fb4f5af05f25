//! redb under the bench: one table of byte keys and values, one write transaction per write
//! call, committed with `Durability::Immediate` (redb's default, fsync at commit).

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{Kv, KvResult, dir_bytes, err};
use crate::keys::Key;

const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv");

/// redb as a `Kv`.
pub struct Redb {
    db: Database,
    dir: std::path::PathBuf,
}

impl Redb {
    /// Create a database file in `dir`.
    pub fn create(dir: &Path) -> KvResult<Self> {
        let db = Database::create(dir.join("redb.db")).map_err(|e| err("redb create")(&e))?;
        Ok(Self { db, dir: dir.to_path_buf() })
    }

    fn write(
        &self,
        f: impl FnOnce(&mut redb::Table<&[u8], &[u8]>) -> KvResult<()>,
    ) -> KvResult<()> {
        let txn = self.db.begin_write().map_err(|e| err("redb begin_write")(&e))?;
        {
            let mut table = txn.open_table(TABLE).map_err(|e| err("redb open_table")(&e))?;
            f(&mut table)?;
        }
        txn.commit().map_err(|e| err("redb commit")(&e))
    }
}

impl Kv for Redb {
    fn put(&self, key: &[u8], value: &[u8]) -> KvResult<()> {
        self.write(|t| t.insert(key, value).map(drop).map_err(|e| err("redb insert")(&e)))
    }

    fn put_batch(&self, pairs: &[(Key, &[u8])]) -> KvResult<()> {
        self.write(|t| {
            for (k, v) in pairs {
                t.insert(&k[..], *v).map_err(|e| err("redb insert")(&e))?;
            }
            Ok(())
        })
    }

    fn get(&self, key: &[u8], out: &mut Vec<u8>) -> KvResult<bool> {
        let txn = self.db.begin_read().map_err(|e| err("redb begin_read")(&e))?;
        let table = match txn.open_table(TABLE) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(false),
            Err(e) => return Err(err("redb open_table")(&e)),
        };
        match table.get(key).map_err(|e| err("redb get")(&e))? {
            Some(v) => {
                out.clear();
                out.extend_from_slice(v.value());
                Ok(true)
            }
            None => Ok(false),
        }
    }

    fn scan(&self, start: &[u8], limit: usize) -> KvResult<(usize, usize)> {
        let txn = self.db.begin_read().map_err(|e| err("redb begin_read")(&e))?;
        let table = txn.open_table(TABLE).map_err(|e| err("redb open_table")(&e))?;
        let (mut items, mut bytes) = (0, 0);
        for item in table.range(start..).map_err(|e| err("redb range")(&e))?.take(limit) {
            let (k, v) = item.map_err(|e| err("redb range")(&e))?;
            items += 1;
            bytes += k.value().len() + v.value().len();
        }
        Ok((items, bytes))
    }

    fn read_modify_write(
        &self,
        key: &[u8],
        f: &mut dyn FnMut(Option<&[u8]>) -> Vec<u8>,
    ) -> KvResult<()> {
        self.write(|t| {
            let current = t.get(key).map_err(|e| err("redb get")(&e))?.map(|v| v.value().to_vec());
            let new = f(current.as_deref());
            t.insert(key, &new[..]).map(drop).map_err(|e| err("redb insert")(&e))
        })
    }

    fn remove(&self, key: &[u8]) -> KvResult<()> {
        self.write(|t| t.remove(key).map(drop).map_err(|e| err("redb remove")(&e)))
    }

    fn space_bytes(&self) -> KvResult<u64> {
        dir_bytes(&self.dir)
    }
}
