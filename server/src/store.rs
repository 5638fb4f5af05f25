//! `Store`: what the string commands need from the engine, behind one trait so each command is
//! written once and runs either directly on the `Db` (each command atomic on its own: a
//! read-modify-write is a compare-and-swap loop) or inside a `Db::transaction` (EXEC: every
//! queued command sees and makes one serializable snapshot).
//!
//! INVARIANT: a read-modify-write writes only the value its closure computed from the value it
//! saw; if another writer changed the key in between, it reads again and recomputes.

use mcstore_engine::{Batch, Db, Error, Result, Transaction, Value};

use crate::limits::RMW_ATTEMPTS_MAX;
use crate::reply::Reply;

/// What a read-modify-write closure decides.
pub enum Write {
    /// Leave the key as it is.
    Keep,
    /// Set the key to this value.
    Put(Vec<u8>),
    /// Remove the key.
    Remove,
}

/// The closure of a read-modify-write: the current value → what to write and the reply.
pub type Modify<'a> = dyn FnMut(Option<&[u8]>) -> (Write, Reply) + 'a;

/// The engine operations the string commands use.
pub trait Store {
    /// The value of `key`.
    fn get(&mut self, key: &[u8]) -> Result<Option<Value>>;
    /// The values of `keys` read at one point in time (MGET); one result per key, so a key
    /// that cannot be read does not hide the others.
    fn get_many(&mut self, keys: &[Vec<u8>]) -> Result<Vec<Result<Option<Value>>>>;
    /// Whether `key` exists (without reading its value where the store can).
    fn contains(&mut self, key: &[u8]) -> Result<bool>;
    /// Set `key`.
    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()>;
    /// Remove `key` (without reading its value where the store can); whether it existed.
    fn delete(&mut self, key: &[u8]) -> Result<bool>;
    /// Set every pair, atomically.
    fn put_all(&mut self, pairs: &[(&[u8], &[u8])]) -> Result<()>;
    /// Set every pair atomically if none of the keys exists; whether they were set.
    fn put_all_absent(&mut self, pairs: &[(&[u8], &[u8])]) -> Result<bool>;
    /// Read-modify-write `key` atomically; the closure's reply.
    fn update(&mut self, key: &[u8], modify: &mut Modify<'_>) -> Result<Reply>;
    /// Remove every key (DEL k1 k2 …) at one point in time; how many existed (a key named twice
    /// counts once).
    fn delete_all(&mut self, keys: &[Vec<u8>]) -> Result<usize> {
        let mut removed = 0;
        for key in keys {
            removed += usize::from(self.delete(key)?);
        }
        Ok(removed)
    }
    /// How many of `keys` exist (EXISTS k1 k2 …: a key named twice counts twice), at one point
    /// in time.
    fn count_existing(&mut self, keys: &[Vec<u8>]) -> Result<usize> {
        let mut present = 0;
        for key in keys {
            present += usize::from(self.contains(key)?);
        }
        Ok(present)
    }
}

/// Commands run directly on the store, each atomic on its own.
pub struct DbStore<'a>(pub &'a Db);

impl Store for DbStore<'_> {
    fn get(&mut self, key: &[u8]) -> Result<Option<Value>> {
        self.0.get(key)
    }

    fn get_many(&mut self, keys: &[Vec<u8>]) -> Result<Vec<Result<Option<Value>>>> {
        if let [key] = keys {
            return Ok(vec![self.0.get(key)]);
        }
        // A read-only transaction: its reads are validated together at commit, so no write
        // lands between them (a write-only EXEC or MSET is seen whole or not at all).
        self.0.transaction(|tx| TxStore::new(tx).get_many(keys))
    }

    fn contains(&mut self, key: &[u8]) -> Result<bool> {
        self.0.contains_key(key)
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.0.put(key, value)
    }

    fn delete(&mut self, key: &[u8]) -> Result<bool> {
        self.0.delete(key)
    }

    fn put_all(&mut self, pairs: &[(&[u8], &[u8])]) -> Result<()> {
        let mut batch = Batch::default();
        for (key, value) in pairs {
            batch.push_put(key, value);
        }
        self.0.apply_batch(batch)
    }

    fn put_all_absent(&mut self, pairs: &[(&[u8], &[u8])]) -> Result<bool> {
        self.0.transaction(|tx| TxStore::new(tx).put_all_absent(pairs))
    }

    fn delete_all(&mut self, keys: &[Vec<u8>]) -> Result<usize> {
        match keys {
            [key] => Ok(usize::from(self.0.delete(key)?)),
            _ => self.0.transaction(|tx| TxStore::new(tx).delete_all(keys)),
        }
    }

    fn count_existing(&mut self, keys: &[Vec<u8>]) -> Result<usize> {
        match keys {
            [key] => Ok(usize::from(self.0.contains_key(key)?)),
            _ => self.0.transaction(|tx| TxStore::new(tx).count_existing(keys)),
        }
    }

    fn update(&mut self, key: &[u8], modify: &mut Modify<'_>) -> Result<Reply> {
        let mut current = self.0.get(key)?;
        for _ in 0..RMW_ATTEMPTS_MAX {
            let (write, reply) = modify(current.as_deref());
            let swapped = match write {
                Write::Keep => return Ok(reply),
                Write::Put(value) => self.0.compare_and_swap(key, current.as_ref(), Some(value)),
                Write::Remove => self.0.compare_and_swap(key, current.as_ref(), None::<&[u8]>),
            }?;
            match swapped {
                Ok(()) => return Ok(reply),
                Err(refused) => current = refused.current,
            }
        }
        Err(Error::Conflict { attempts: RMW_ATTEMPTS_MAX })
    }
}

/// Commands run inside a `Db::transaction` (EXEC). A read that meets a conflicting write is
/// remembered, so the transaction's closure can return the conflict and be run again.
pub struct TxStore<'t, 'db> {
    tx: &'t mut Transaction<'db>,
    /// A read reported a conflict: this attempt cannot commit.
    pub conflict: bool,
}

impl<'t, 'db> TxStore<'t, 'db> {
    /// Wrap a transaction in progress.
    pub fn new(tx: &'t mut Transaction<'db>) -> Self {
        Self { tx, conflict: false }
    }

    fn read(&mut self, key: &[u8]) -> Result<Option<Value>> {
        let read = self.tx.get(key);
        self.note_conflict(read)
    }

    /// Whether `key` exists, without reading its value.
    fn exists(&mut self, key: &[u8]) -> Result<bool> {
        let exists = self.tx.contains_key(key);
        self.note_conflict(exists)
    }

    fn note_conflict<T>(&mut self, result: Result<T>) -> Result<T> {
        if matches!(result, Err(Error::Conflict { .. })) {
            self.conflict = true;
        }
        result
    }
}

impl Store for TxStore<'_, '_> {
    fn get(&mut self, key: &[u8]) -> Result<Option<Value>> {
        self.read(key)
    }

    fn get_many(&mut self, keys: &[Vec<u8>]) -> Result<Vec<Result<Option<Value>>>> {
        let items = keys.iter().map(|key| self.read(key)).collect();
        if self.conflict {
            return Err(Error::Conflict { attempts: 0 });
        }
        Ok(items)
    }

    fn contains(&mut self, key: &[u8]) -> Result<bool> {
        self.exists(key)
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        self.tx.put(key, value);
        Ok(())
    }

    fn delete(&mut self, key: &[u8]) -> Result<bool> {
        let existed = self.exists(key)?;
        self.tx.remove(key);
        Ok(existed)
    }

    fn put_all(&mut self, pairs: &[(&[u8], &[u8])]) -> Result<()> {
        for (key, value) in pairs {
            self.tx.put(key, value);
        }
        Ok(())
    }

    fn put_all_absent(&mut self, pairs: &[(&[u8], &[u8])]) -> Result<bool> {
        for (key, _) in pairs {
            if self.read(key)?.is_some() {
                return Ok(false);
            }
        }
        self.put_all(pairs)?;
        Ok(true)
    }

    fn update(&mut self, key: &[u8], modify: &mut Modify<'_>) -> Result<Reply> {
        let current = self.read(key)?;
        let (write, reply) = modify(current.as_deref());
        match write {
            Write::Keep => {}
            Write::Put(value) => self.tx.put(key, value),
            Write::Remove => self.tx.remove(key),
        }
        Ok(reply)
    }
}
