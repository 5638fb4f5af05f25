//! The write operations of `Db`: put, insert, remove, delete, compare-and-swap, update,
//! batches and clear — each checked against the limits and committed through the group commit
//! (`commit.rs`) at the handle's (or the call's) durability.
//!
//! INVARIANT: an operation that reads (insert, remove, delete, CAS, update) waits until no
//! write to its key is pending, then reads and checks its register under the commit lock BEFORE
//! anything is reserved or written (`docs/commit.md`), so it linearizes with the group.

use crate::batch::{Batch, BatchOp};
use crate::commit::Keys;
use crate::db::{Db, Inner};
use crate::error::{Error, Result};
use crate::limits;
use crate::options::Durability;
use crate::value::{CasError, Value};
use crate::writer::{LogWriter, PendingRecord};

impl Db {
    /// Set `key` to `value`.
    pub fn put(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<()> {
        self.put_with(key, value, self.durability)
    }

    /// Set `key` to `value` with `durability` for this write only.
    pub fn put_with(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        durability: Durability,
    ) -> Result<()> {
        let (key, value) = (key.as_ref(), value.as_ref());
        // A put visible once copied may be indexed as soon as it is copied: its index lines
        // start loading now, during the encode. One visible once durable has them prefetched
        // by its group's leader between the fences, where the prefetch's wait overlaps the
        // drain (`prefetch_index_of`).
        if durability != Durability::Immediate {
            self.inner.index.prefetch_for_write(key);
        }
        self.inner.submit(durability, Keys::None, |inner, st| {
            inner.check_record(st.log(), key, value)?;
            Ok(((), [PendingRecord::put(key, value)]))
        })
    }

    /// Set `key` to `value`, returning the previous value (read and checked first).
    pub fn insert(&self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<Option<Value>> {
        let (key, value) = (key.as_ref(), value.as_ref());
        self.inner.submit(self.durability, Keys::One(key), |inner, st| {
            inner.check_record(st.log(), key, value)?;
            let old = inner.read_value(key, "insert")?;
            Ok((old, [PendingRecord::put(key, value)]))
        })
    }

    /// Remove `key`, returning its value (read and checked first: a value that cannot be read
    /// fails the remove under `Fail`; `delete` removes without reading).
    pub fn remove(&self, key: impl AsRef<[u8]>) -> Result<Option<Value>> {
        let key = key.as_ref();
        self.inner.submit(self.durability, Keys::One(key), |inner, st| {
            inner.check_record(st.log(), key, &[])?;
            let old = inner.read_value(key, "remove")?;
            let records = if old.is_some() { vec![PendingRecord::delete(key)] } else { vec![] };
            Ok((old, records))
        })
    }

    /// Remove `key` without reading its value (so a key whose value is lost can still be
    /// removed); `true` if it was present.
    pub fn delete(&self, key: impl AsRef<[u8]>) -> Result<bool> {
        let key = key.as_ref();
        self.inner.submit(self.durability, Keys::One(key), |inner, st| {
            inner.check_record(st.log(), key, &[])?;
            if inner.index.get(key).is_none() {
                return Ok((false, vec![]));
            }
            Ok((true, vec![PendingRecord::delete(key)]))
        })
    }

    /// Replace the value of `key` with `new` if it is `expected` (`None`: absent / delete).
    /// `Ok(Err(CasError { current }))` when the current value differs; nothing is written then.
    pub fn compare_and_swap(
        &self,
        key: impl AsRef<[u8]>,
        expected: Option<impl AsRef<[u8]>>,
        new: Option<impl AsRef<[u8]>>,
    ) -> Result<std::result::Result<(), CasError>> {
        let key = key.as_ref();
        let expected = expected.as_ref().map(AsRef::as_ref);
        let new = new.as_ref().map(AsRef::as_ref);
        self.inner.submit(self.durability, Keys::One(key), |inner, st| {
            inner.check_record(st.log(), key, new.unwrap_or(&[]))?;
            let current = inner.read_value(key, "compare_and_swap")?;
            if current.as_deref() != expected {
                return Ok((Err(CasError { current }), vec![]));
            }
            let records = match (new, &current) {
                (Some(value), _) => vec![PendingRecord::put(key, value)],
                (None, Some(_)) => vec![PendingRecord::delete(key)],
                (None, None) => vec![],
            };
            Ok((Ok(()), records))
        })
    }

    /// Read-modify-write `key` atomically with respect to every other write: `f` gets the
    /// current value (read and checked first) and returns the new one (`None`: remove). Returns
    /// the new value. `f` runs under the commit lock: keep it short.
    pub fn update<F>(&self, key: impl AsRef<[u8]>, f: F) -> Result<Option<Value>>
    where
        F: FnOnce(Option<&[u8]>) -> Option<Vec<u8>>,
    {
        let key = key.as_ref();
        self.inner.submit(self.durability, Keys::One(key), |inner, st| {
            inner.check_record(st.log(), key, &[])?;
            let current = inner.read_value(key, "update")?;
            let new = f(current.as_deref());
            let records = match (&new, &current) {
                (Some(value), _) => {
                    inner.check_record(st.log(), key, value)?;
                    vec![PendingRecord::put(key, value.clone())]
                }
                (None, Some(_)) => vec![PendingRecord::delete(key)],
                (None, None) => vec![],
            };
            Ok((new.map(Value::from), records))
        })
    }

    /// Apply every operation of `batch`, in order, atomically: after a crash all of them are
    /// applied or none, and readers see all of them or none. The batch must fit in one segment
    /// (`BatchTooLarge`).
    pub fn apply_batch(&self, batch: Batch) -> Result<()> {
        self.apply_batch_with(batch, self.durability)
    }

    /// `apply_batch` with `durability` for this batch only.
    pub fn apply_batch_with(&self, batch: Batch, durability: Durability) -> Result<()> {
        if batch.is_empty() {
            return self.inner.latch.check();
        }
        // Every key's index slot is loading while the batch is encoded and persisted: the
        // index updates after the fences then hit the cache instead of missing once per key.
        for op in batch.ops() {
            self.inner.index.prefetch_for_write(op.key());
        }
        self.inner.submit(durability, Keys::None, |inner, st| {
            let records = batch_records(&batch);
            inner.check_batch(st.log(), &records)?;
            Ok(((), records))
        })
    }

    /// Remove every key, atomically: one `Clear` record (not a tombstone per key). Readers see
    /// the store before or after it, never half-cleared; after a crash it is whole or absent.
    pub fn clear(&self) -> Result<()> {
        self.inner.submit(self.durability, Keys::All, |_, _| Ok(((), [PendingRecord::clear()])))
    }
}

/// The records of `batch`, in order.
pub(crate) fn batch_records(batch: &Batch) -> Vec<PendingRecord<'_>> {
    batch
        .ops()
        .iter()
        .map(|op| match op {
            BatchOp::Put { key, value } => PendingRecord::put(key, &value[..]),
            BatchOp::Remove { key } => PendingRecord::delete(key),
        })
        .collect()
}

impl Inner {
    /// Refuse a key or value beyond the limits, or a record that cannot fit in a segment.
    pub(crate) fn check_record(&self, writer: &LogWriter, key: &[u8], value: &[u8]) -> Result<()> {
        if key.len() > limits::KEY_BYTES_MAX {
            return Err(Error::KeyTooLarge { len: key.len(), max: limits::KEY_BYTES_MAX });
        }
        let fits =
            mcstore_recovery::format::encoded_len(key.len(), value.len()) <= writer.capacity();
        if value.len() > limits::VALUE_BYTES_MAX || !fits {
            let in_segment = mcstore_recovery::limits::value_bytes_max(&self.geometry, key.len());
            let max =
                usize::try_from(in_segment).unwrap_or(usize::MAX).min(limits::VALUE_BYTES_MAX);
            return Err(Error::ValueTooLarge { len: value.len(), max });
        }
        Ok(())
    }

    /// Refuse a batch beyond the limits (each record, the operation count, one segment).
    pub(crate) fn check_batch(
        &self,
        writer: &LogWriter,
        records: &[PendingRecord<'_>],
    ) -> Result<()> {
        for record in records {
            self.check_record(writer, record.key, &record.value)?;
        }
        let bytes: u64 = records.iter().map(PendingRecord::encoded_len).sum();
        if records.len() > limits::BATCH_OPS_MAX || bytes > writer.capacity() {
            return Err(Error::BatchTooLarge {
                ops: records.len(),
                bytes,
                max_bytes: writer.capacity(),
                max_ops: limits::BATCH_OPS_MAX,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use mcstore_pmem::{CrashMode, Medium, MemberId, SimMedium};
    use proptest::prelude::*;

    use super::*;
    use crate::test_support::{SEGMENT, reopen, sim_db, small_options};

    const POOL: u64 = 512 << 10;

    #[test]
    fn put_get_overwrite_remove_round_trip() {
        let (_sim, db) = sim_db(POOL, small_options());
        assert!(db.is_empty());
        db.put("a", "1").unwrap();
        db.put(b"b", vec![2u8; 300]).unwrap();
        assert_eq!(db.get("a").unwrap().unwrap(), b"1");
        assert_eq!(db.get("b").unwrap().unwrap(), vec![2u8; 300]);
        assert_eq!(db.get("c").unwrap(), None);
        db.put("a", "one").unwrap();
        assert_eq!(db.get("a").unwrap().unwrap(), b"one");
        assert_eq!(db.len(), 2);
        let mut out = Vec::with_capacity(8);
        assert!(db.get_into("a", &mut out).unwrap());
        assert_eq!(out, b"one");
        assert!(!db.get_into("zz", &mut out).unwrap());
        assert_eq!(db.remove("a").unwrap().unwrap(), b"one");
        assert_eq!(db.remove("a").unwrap(), None);
        assert!(!db.contains_key("a").unwrap());
        assert!(db.contains_key("b").unwrap());
        assert_eq!(db.insert("b", "new").unwrap().unwrap(), vec![2u8; 300]);
        assert_eq!(db.insert("c", "3").unwrap(), None);
        assert!(db.delete("c").unwrap());
        assert!(!db.delete("c").unwrap());
        db.put("", "empty key").unwrap();
        assert_eq!(db.get("").unwrap().unwrap(), b"empty key");
        assert_eq!(db.len(), 2);
        assert_eq!(db.stats().records_written, 8);
    }

    #[test]
    fn compare_and_swap_checks_the_current_value() {
        let (_sim, db) = sim_db(POOL, small_options());
        let none: Option<&[u8]> = None;
        assert_eq!(db.compare_and_swap("k", none, Some("v1")).unwrap(), Ok(()));
        let refused = db.compare_and_swap("k", none, Some("v2")).unwrap();
        assert_eq!(refused, Err(CasError { current: Some(Value::from("v1")) }));
        assert_eq!(db.compare_and_swap("k", Some("v1"), Some("v2")).unwrap(), Ok(()));
        assert_eq!(db.get("k").unwrap().unwrap(), b"v2");
        let wrong = db.compare_and_swap("k", Some("v1"), none).unwrap();
        assert_eq!(wrong, Err(CasError { current: Some(Value::from("v2")) }));
        assert_eq!(db.compare_and_swap("k", Some("v2"), none).unwrap(), Ok(()));
        assert_eq!(db.get("k").unwrap(), None);
        let absent = db.compare_and_swap("k", Some("v2"), Some("v3")).unwrap();
        assert_eq!(absent, Err(CasError { current: None }));
        assert_eq!(db.compare_and_swap("k", none, none).unwrap(), Ok(()));
        assert_eq!(db.get("k").unwrap(), None);
    }

    #[test]
    fn update_reads_then_writes_under_one_lock() {
        let (_sim, db) = sim_db(POOL, small_options());
        let incr = |v: Option<&[u8]>| {
            let n = v.map_or(0, |v| u64::from_le_bytes(v.try_into().unwrap()));
            Some((n + 1).to_le_bytes().to_vec())
        };
        std::thread::scope(|scope| {
            for _ in 0..2 {
                let db = db.clone();
                scope.spawn(move || {
                    for _ in 0..200 {
                        db.update("counter", incr).unwrap();
                    }
                });
            }
        });
        assert_eq!(db.get("counter").unwrap().unwrap(), 400u64.to_le_bytes());
        assert_eq!(db.update("counter", |_| None).unwrap(), None);
        assert_eq!(db.get("counter").unwrap(), None);
        assert_eq!(db.update("absent", |_| None).unwrap(), None);
        let big = vec![0u8; SEGMENT as usize];
        assert!(matches!(db.update("k", |_| Some(big)), Err(Error::ValueTooLarge { .. })));
    }

    #[test]
    fn batch_applies_in_order() {
        let (_sim, db) = sim_db(POOL, small_options());
        db.put("gone", "x").unwrap();
        let batch = Batch::default().put("a", "1").put("b", "2").remove("gone").put("a", "3");
        db.apply_batch(batch).unwrap();
        assert_eq!(db.get("a").unwrap().unwrap(), b"3");
        assert_eq!(db.get("b").unwrap().unwrap(), b"2");
        assert_eq!(db.get("gone").unwrap(), None);
        assert_eq!(db.len(), 2);
        db.apply_batch(Batch::default()).unwrap();
    }

    #[test]
    fn out_of_range_input_is_a_typed_error_and_writes_nothing() {
        let (_sim, db) = sim_db(POOL, small_options());
        let big_key = vec![0u8; limits::KEY_BYTES_MAX + 1];
        assert!(matches!(db.put(&big_key, "v"), Err(Error::KeyTooLarge { .. })));
        let big_value = vec![0u8; SEGMENT as usize];
        match db.put("k", &big_value) {
            Err(Error::ValueTooLarge { len, max }) => {
                assert_eq!(len, SEGMENT as usize);
                assert!(max < len && max > 60_000, "max {max}");
                db.put("k", vec![1u8; max]).unwrap();
                assert_eq!(db.get("k").unwrap().unwrap().len(), max);
            }
            other => panic!("expected ValueTooLarge, got {other:?}"),
        }
        let records_before = db.stats().records_written;
        let mut batch = Batch::default();
        for i in 0..40u32 {
            batch.push_put(i.to_le_bytes(), vec![7u8; 2000]);
        }
        assert!(matches!(db.apply_batch(batch), Err(Error::BatchTooLarge { ops: 40, .. })));
        assert_eq!(db.stats().records_written, records_before);
        assert_eq!(db.get(0u32.to_le_bytes()).unwrap(), None);
        assert!(!db.stats().failed);
    }

    #[test]
    fn failed_persist_latches_until_reopen() {
        let (sim, db) = sim_db(POOL, small_options());
        db.put("a", "1").unwrap();
        sim.fail_nth(mcstore_pmem::sim::SimOp::Fence, 1, false);
        assert!(matches!(db.put("b", "2"), Err(Error::Io { .. })));
        assert!(db.get("a").unwrap_err().is_failed());
        assert!(db.put("c", "3").unwrap_err().is_failed());
        assert!(db.stats().failed);
        assert!(db.close().unwrap_err().is_failed());
        sim.clear_failures();
        let db = reopen(&sim, small_options());
        assert!(!db.recovery_report().clean_shutdown);
        assert_eq!(db.get("a").unwrap().unwrap(), b"1");
    }

    /// Crash at every fence of a batch (and of a put that rolls a segment), in both crash modes:
    /// each image recovers to all of the operation or none of it, with earlier writes intact.
    #[test]
    fn batch_is_atomic_at_every_fence() {
        for fill in [0usize, 40] {
            let (sim, db) = sim_db(POOL, small_options());
            db.put("before", "kept").unwrap();
            for i in 0..fill {
                db.put(format!("fill{i}"), vec![1u8; 1500]).unwrap();
            }
            let fences_before = sim.fences_seen();
            let batch = Batch::default().put("a", vec![b'a'; 700]).put("b", "2").remove("before");
            db.apply_batch(batch.clone()).unwrap();
            let fences = sim.fences_seen() - fences_before;
            assert!(fences >= 2);
            drop(db);
            for crash_at in 1..=fences {
                let (sim, db) = sim_db(POOL, small_options());
                db.put("before", "kept").unwrap();
                for i in 0..fill {
                    db.put(format!("fill{i}"), vec![1u8; 1500]).unwrap();
                }
                sim.crash_at_fence(Some(sim.fences_seen() + crash_at));
                assert!(db.apply_batch(batch.clone()).is_err());
                drop(db);
                for mode in [CrashMode::PerLinePrefix, CrashMode::AnySubset] {
                    for image in sim.crash_images(mode, 64, crash_at) {
                        let medium: Arc<dyn Medium> =
                            Arc::new(SimMedium::from_image(image, MemberId(0)));
                        let db = Db::open_on(medium, small_options()).unwrap();
                        let a = db.get("a").unwrap();
                        let applied = a.is_some();
                        assert_eq!(db.get("b").unwrap().is_some(), applied);
                        assert_eq!(db.get("before").unwrap().is_none(), applied);
                        if applied {
                            assert_eq!(a.unwrap(), vec![b'a'; 700]);
                        } else {
                            assert_eq!(db.get("before").unwrap().unwrap(), b"kept");
                        }
                        assert_eq!(db.len(), fill + if applied { 2 } else { 1 });
                    }
                }
            }
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Put(u8, Vec<u8>),
        Remove(u8),
        Cas(u8, Option<Vec<u8>>, Option<Vec<u8>>),
        Batch(Vec<(u8, Option<Vec<u8>>)>),
        Reopen,
    }

    fn value() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(any::<u8>(), 0..600)
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u8..16, value()).prop_map(|(k, v)| Op::Put(k, v)),
            2 => (0u8..16).prop_map(Op::Remove),
            1 => (0u8..16, prop::option::of(value()), prop::option::of(value()))
                .prop_map(|(k, e, n)| Op::Cas(k, e, n)),
            1 => prop::collection::vec((0u8..16, prop::option::of(value())), 0..6).prop_map(Op::Batch),
            1 => Just(Op::Reopen),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
        #[test]
        fn behaves_like_a_btreemap_across_reopens(ops in prop::collection::vec(op(), 1..80)) {
            let (sim, mut db) = sim_db(1 << 20, small_options());
            let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Put(k, v) => {
                        db.put([k], &v).unwrap();
                        model.insert(vec![k], v);
                    }
                    Op::Remove(k) => {
                        let got = db.remove([k]).unwrap().map(|v| v.to_vec());
                        prop_assert_eq!(got, model.remove(&vec![k]));
                    }
                    Op::Cas(k, expected, new) => {
                        let current = model.get(&vec![k]).cloned();
                        let result = db.compare_and_swap([k], expected.as_ref(), new.as_ref()).unwrap();
                        if current == expected {
                            prop_assert!(result.is_ok());
                            match new {
                                Some(v) => { model.insert(vec![k], v); }
                                None => { model.remove(&vec![k]); }
                            }
                        } else {
                            let refused = result.unwrap_err().current.map(|v| v.to_vec());
                            prop_assert_eq!(refused, current);
                        }
                    }
                    Op::Batch(ops) => {
                        let mut batch = Batch::default();
                        for (k, v) in ops {
                            match v {
                                Some(v) => { batch.push_put([k], &v); model.insert(vec![k], v); }
                                None => { batch.push_remove([k]); model.remove(&vec![k]); }
                            }
                        }
                        db.apply_batch(batch).unwrap();
                    }
                    Op::Reopen => {
                        drop(db);
                        db = reopen(&sim, small_options());
                    }
                }
                prop_assert_eq!(db.len(), model.len());
            }
            let all: Vec<(Vec<u8>, Vec<u8>)> =
                db.iter().map(|item| item.map(|(k, v)| (k.to_vec(), v.to_vec()))).collect::<Result<_>>().unwrap();
            let expected: Vec<(Vec<u8>, Vec<u8>)> = model.into_iter().collect();
            prop_assert_eq!(all, expected);
        }
    }
}
