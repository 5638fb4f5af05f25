//! Optimistic read-modify-write transactions: `db.transaction(|tx| { tx.get(..)?;
//! tx.put(..); Ok(..) })`. Reads go to the store (lock-free) and remember the LSN they saw;
//! writes are buffered. Commit, under the commit lock once no write to a read or written key is
//! pending, re-checks every read key's LSN against the index: unchanged → the writes commit as
//! one atomic batch; changed → the closure runs again.
//!
//! INVARIANT: a committed transaction's reads are exactly the values current at its commit
//! point (serializable); its writes are visible atomically or not at all.

use std::collections::BTreeMap;

use crate::commit::Keys;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::limits::TRANSACTION_ATTEMPTS_MAX;
use crate::stats::Counters;
use crate::value::Value;
use crate::writer::PendingRecord;

/// A transaction in progress (see `Db::transaction`).
#[derive(Debug)]
pub struct Transaction<'db> {
    db: &'db Db,
    /// Key → LSN read (`None`: absent).
    reads: BTreeMap<Vec<u8>, Option<u64>>,
    /// Key → new value (`None`: remove), in key order.
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl Transaction<'_> {
    /// The value of `key` as this transaction sees it (its own writes first).
    pub fn get(&mut self, key: impl AsRef<[u8]>) -> Result<Option<Value>> {
        let key = key.as_ref();
        if let Some(write) = self.writes.get(key) {
            return Ok(write.as_ref().map(|v| Value::from(v.clone())));
        }
        let mut buf = Vec::new();
        let lsn = self.db.inner.read_versioned(key, &mut buf, "transaction")?;
        self.record_read(key, lsn)?;
        Ok(lsn.map(|_| Value::from(buf)))
    }

    /// The version of `key` in the store ([`Db::version`]; this transaction's own writes do not
    /// change it), recorded as a read: the transaction commits only if it is still the key's
    /// version then. A check such as "unchanged since version `v`" made here therefore holds up
    /// to the commit.
    pub fn version(&mut self, key: impl AsRef<[u8]>) -> Result<Option<u64>> {
        let key = key.as_ref();
        let lsn = self.db.version(key)?;
        self.record_read(key, lsn)?;
        Ok(lsn)
    }

    /// Whether `key` exists as this transaction sees it (its own writes first), without reading
    /// the value (so a value lost to a media error does not fail it); recorded as a read.
    pub fn contains_key(&mut self, key: impl AsRef<[u8]>) -> Result<bool> {
        let key = key.as_ref();
        if let Some(write) = self.writes.get(key) {
            return Ok(write.is_some());
        }
        Ok(self.version(key)?.is_some())
    }

    /// Remember that `key` was seen at `lsn`; a second read that saw another version can never
    /// commit, so it retries now.
    fn record_read(&mut self, key: &[u8], lsn: Option<u64>) -> Result<()> {
        match self.reads.get(key) {
            Some(seen) if *seen != lsn => Err(Error::Conflict { attempts: 0 }),
            Some(_) => Ok(()),
            None => {
                self.reads.insert(key.to_vec(), lsn);
                Ok(())
            }
        }
    }

    /// Set `key` to `value` when the transaction commits.
    pub fn put(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.writes.insert(key.as_ref().to_vec(), Some(value.as_ref().to_vec()));
    }

    /// Remove `key` when the transaction commits.
    pub fn remove(&mut self, key: impl AsRef<[u8]>) {
        self.writes.insert(key.as_ref().to_vec(), None);
    }
}

impl Db {
    /// Run `f` as an optimistic transaction and commit its writes atomically; when a key it
    /// read changed before the commit, run it again (up to `TRANSACTION_ATTEMPTS_MAX` times,
    /// then `Error::Conflict`). `f` may run several times: keep side effects out of it. An
    /// `Err` from `f` aborts (nothing is written) and is returned.
    pub fn transaction<T>(
        &self,
        mut f: impl FnMut(&mut Transaction<'_>) -> Result<T>,
    ) -> Result<T> {
        for _ in 0..TRANSACTION_ATTEMPTS_MAX {
            let mut tx = Transaction { db: self, reads: BTreeMap::new(), writes: BTreeMap::new() };
            let out = match f(&mut tx) {
                Ok(out) => out,
                Err(Error::Conflict { attempts: 0 }) => {
                    Counters::add(&self.inner.counters.transaction_retries, 1);
                    continue;
                }
                Err(error) => return Err(error),
            };
            if self.commit_transaction(&tx)? {
                Counters::add(&self.inner.counters.transactions, 1);
                return Ok(out);
            }
            Counters::add(&self.inner.counters.transaction_retries, 1);
        }
        Err(Error::Conflict { attempts: TRANSACTION_ATTEMPTS_MAX })
    }

    /// Validate `tx`'s reads and commit its writes as one batch; `false` on conflict.
    fn commit_transaction(&self, tx: &Transaction<'_>) -> Result<bool> {
        if tx.writes.is_empty() && tx.reads.is_empty() {
            return Ok(true);
        }
        let keys: Vec<&[u8]> = tx.reads.keys().chain(tx.writes.keys()).map(Vec::as_slice).collect();
        self.inner.submit(self.durability, Keys::Some(&keys), |inner, st| {
            let unchanged =
                tx.reads.iter().all(|(key, lsn)| inner.index.get(key).map(|l| l.lsn) == *lsn);
            if !unchanged {
                return Ok((false, vec![]));
            }
            let records: Vec<PendingRecord<'_>> = tx
                .writes
                .iter()
                .filter_map(|(key, value)| match value {
                    Some(value) => Some(PendingRecord::put(key, &value[..])),
                    // Removing an absent key writes nothing.
                    None => inner.index.get(key).is_some().then(|| PendingRecord::delete(key)),
                })
                .collect();
            inner.check_batch(st.log(), &records)?;
            Ok((true, records))
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::test_support::{reopen, sim_db, small_options};

    fn counter(v: Option<crate::Value>) -> u64 {
        v.map_or(0, |v| u64::from_le_bytes(v.as_ref().try_into().unwrap()))
    }

    #[test]
    fn increments_from_several_threads_are_never_lost() {
        let (sim, db) = sim_db(1 << 20, small_options());
        std::thread::scope(|scope| {
            for _ in 0..3 {
                let db = db.clone();
                scope.spawn(move || {
                    for _ in 0..100 {
                        db.transaction(|tx| {
                            let a = counter(tx.get("a")?);
                            let b = counter(tx.get("b")?);
                            tx.put("a", (a + 1).to_le_bytes());
                            tx.put("b", (b + 2).to_le_bytes());
                            Ok(())
                        })
                        .unwrap();
                    }
                });
            }
        });
        assert_eq!(counter(db.get("a").unwrap()), 300);
        assert_eq!(counter(db.get("b").unwrap()), 600);
        assert_eq!(db.stats().transactions, 300);
        drop(db);
        let db = reopen(&sim, small_options());
        assert_eq!(counter(db.get("b").unwrap()), 600);
    }

    #[test]
    fn reads_see_own_writes_and_errors_abort() {
        let (_sim, db) = sim_db(1 << 20, small_options());
        db.put("x", "1").unwrap();
        let seen = db
            .transaction(|tx| {
                tx.put("x", "2");
                tx.remove("y");
                let x = tx.get("x")?;
                Ok(x)
            })
            .unwrap();
        assert_eq!(seen.unwrap(), b"2");
        assert_eq!(db.get("x").unwrap().unwrap(), b"2");
        let aborted: crate::Result<()> = db.transaction(|tx| {
            tx.put("x", "3");
            Err(crate::Error::InvalidOptions { reason: "abort".into() })
        });
        assert!(matches!(aborted, Err(crate::Error::InvalidOptions { .. })));
        assert_eq!(db.get("x").unwrap().unwrap(), b"2");
    }

    /// Every write gives a key a new version; a transaction that checks a version commits only
    /// if it still holds at the commit (a write between the check and the commit reruns it).
    #[test]
    fn versions_change_with_every_write_and_hold_to_the_commit() {
        let (_sim, db) = sim_db(1 << 20, small_options());
        assert_eq!(db.version("k").unwrap(), None);
        db.put("k", "1").unwrap();
        let v1 = db.version("k").unwrap().unwrap();
        db.put("k", "1").unwrap();
        let v2 = db.version("k").unwrap().unwrap();
        assert!(v2 > v1, "the same value written again is a new version");
        db.remove("k").unwrap();
        assert_eq!(db.version("k").unwrap(), None);
        db.put("k", "2").unwrap();
        let watched = db.version("k").unwrap();
        let mut attempts = 0;
        let committed = db
            .transaction(|tx| {
                attempts += 1;
                if tx.version("k")? != watched {
                    return Ok(false);
                }
                tx.put("k", "mine");
                if attempts == 1 {
                    // Another writer, after the check and before the commit.
                    db.put("k", "theirs").unwrap();
                }
                Ok(true)
            })
            .unwrap();
        assert!(!committed, "the rerun saw the other writer's version");
        assert_eq!(attempts, 2);
        assert_eq!(db.get("k").unwrap().unwrap(), b"theirs");
        let watched = db.version("k").unwrap();
        let committed = db
            .transaction(|tx| {
                let unchanged = tx.version("k")? == watched;
                if unchanged {
                    tx.put("k", "mine");
                }
                Ok(unchanged)
            })
            .unwrap();
        assert!(committed);
        assert_eq!(db.get("k").unwrap().unwrap(), b"mine");
        assert_ne!(db.version("k").unwrap(), watched);
    }

    /// `contains_key` sees the transaction's own writes first and reads no value: a key whose
    /// value is lost to poison is still found (and can be removed), where `get` fails.
    #[test]
    fn contains_key_sees_own_writes_and_reads_no_value() {
        let (sim, db) = sim_db(1 << 20, small_options());
        db.put("lost", vec![7u8; 300]).unwrap();
        let location = db.inner.index.get(b"lost").unwrap();
        sim.inject_poison((location.offset + 128) & !63, 64).unwrap();
        assert!(db.get("lost").is_err());
        let seen = db
            .transaction(|tx| {
                let before = (tx.contains_key("lost")?, tx.contains_key("new")?);
                tx.put("new", "1");
                tx.remove("lost");
                let after = (tx.contains_key("lost")?, tx.contains_key("new")?);
                assert!(tx.get("new").is_ok(), "an own write needs no read");
                Ok((before, after))
            })
            .unwrap();
        assert_eq!(seen, ((true, false), (false, true)));
        assert_eq!(db.version("lost").unwrap(), None);
        assert!(db.version("new").unwrap().is_some());
        assert!(db.transaction(|tx| tx.get("x-missing")).unwrap().is_none());
    }
}
