//! The reference model: a `BTreeMap` that every operation of the `Db` API is checked against,
//! the operations themselves ([`Op`]) and what each returns ([`Outcome`]).
//!
//! INVARIANT: [`Model::apply`] and [`apply_db`] return the same `Outcome` for the same operation
//! on equal states; any difference is a bug in the store (or in the model, which is 100 lines).

use std::collections::BTreeMap;
use std::ops::Bound;

use mcstore_engine::{Batch, Db, Result};

/// A key or value.
pub type Bytes = Vec<u8>;

/// One operation of the `Db` API (`Reopen` is carried out by the caller: it owns the handle).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// `put(key, value)`.
    Put {
        /// The key.
        key: Bytes,
        /// The value.
        value: Bytes,
    },
    /// `insert(key, value)`, returning the previous value.
    Insert {
        /// The key.
        key: Bytes,
        /// The value.
        value: Bytes,
    },
    /// `remove(key)`, returning the value.
    Remove {
        /// The key.
        key: Bytes,
    },
    /// `compare_and_swap(key, expected, new)`.
    Cas {
        /// The key.
        key: Bytes,
        /// The value expected (`None`: absent).
        expected: Option<Bytes>,
        /// The new value (`None`: delete).
        new: Option<Bytes>,
    },
    /// `apply_batch`: `(key, Some(value))` puts, `(key, None)` removes, in order.
    Batch(Vec<(Bytes, Option<Bytes>)>),
    /// `get(key)`.
    Get {
        /// The key.
        key: Bytes,
    },
    /// `range((start, end))`, ascending or (`reverse`) descending.
    Range {
        /// Lower bound.
        start: Bound<Bytes>,
        /// Upper bound.
        end: Bound<Bytes>,
        /// Iterate from the back.
        reverse: bool,
    },
    /// `prefix(prefix)`, ascending or descending.
    Prefix {
        /// The prefix.
        prefix: Bytes,
        /// Iterate from the back.
        reverse: bool,
    },
    /// `len()`.
    Len,
    /// Close the store and open it again.
    Reopen,
}

/// What an operation returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A write without a result (`put`, `apply_batch`), or `Reopen`.
    Done,
    /// A value or its absence (`get`, `insert`, `remove`).
    Value(Option<Bytes>),
    /// `compare_and_swap`: `Ok` or the current value it refused with.
    Cas(std::result::Result<(), Option<Bytes>>),
    /// Iterator items, in iteration order.
    Items(Vec<(Bytes, Bytes)>),
    /// `len()`.
    Len(usize),
}

/// The model: the store's contents as a `BTreeMap` (bytewise key order, like the store).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Model {
    map: BTreeMap<Bytes, Bytes>,
}

impl Model {
    /// An empty model.
    pub fn new() -> Self {
        Self::default()
    }

    /// The contents, ascending by key.
    pub fn contents(&self) -> Vec<(Bytes, Bytes)> {
        self.map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// The value of `key`.
    pub fn get(&self, key: &[u8]) -> Option<&Bytes> {
        self.map.get(key)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no key is present.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Every key.
    pub fn keys(&self) -> impl Iterator<Item = &Bytes> {
        self.map.keys()
    }

    /// Apply `op` and return what the store must return for it.
    pub fn apply(&mut self, op: &Op) -> Outcome {
        match op {
            Op::Put { key, value } => {
                self.map.insert(key.clone(), value.clone());
                Outcome::Done
            }
            Op::Insert { key, value } => {
                Outcome::Value(self.map.insert(key.clone(), value.clone()))
            }
            Op::Remove { key } => Outcome::Value(self.map.remove(key)),
            Op::Cas { key, expected, new } => {
                let current = self.map.get(key).cloned();
                if current != *expected {
                    return Outcome::Cas(Err(current));
                }
                match new {
                    Some(value) => self.map.insert(key.clone(), value.clone()),
                    None => self.map.remove(key),
                };
                Outcome::Cas(Ok(()))
            }
            Op::Batch(entries) => {
                for (key, value) in entries {
                    match value {
                        Some(value) => self.map.insert(key.clone(), value.clone()),
                        None => self.map.remove(key),
                    };
                }
                Outcome::Done
            }
            Op::Get { key } => Outcome::Value(self.map.get(key).cloned()),
            Op::Range { start, end, reverse } => {
                if range_is_empty(start, end) {
                    return Outcome::Items(Vec::new());
                }
                let items = self.map.range((start.clone(), end.clone()));
                Outcome::Items(collect_items(items, *reverse))
            }
            Op::Prefix { prefix, reverse } => {
                let items = self.map.iter().filter(|(k, _)| k.starts_with(prefix));
                Outcome::Items(collect_items(items, *reverse))
            }
            Op::Len => Outcome::Len(self.map.len()),
            Op::Reopen => Outcome::Done,
        }
    }
}

/// Whether `(start, end)` selects nothing in a way `BTreeMap::range` would panic on (start after
/// end, or equal with an excluded side).
pub fn range_is_empty(start: &Bound<Bytes>, end: &Bound<Bytes>) -> bool {
    let (Some(s), Some(e)) = (bound_key(start), bound_key(end)) else { return false };
    s > e || (s == e && (matches!(start, Bound::Excluded(_)) || matches!(end, Bound::Excluded(_))))
}

fn bound_key(bound: &Bound<Bytes>) -> Option<&Bytes> {
    match bound {
        Bound::Included(k) | Bound::Excluded(k) => Some(k),
        Bound::Unbounded => None,
    }
}

fn collect_items<'a>(
    items: impl DoubleEndedIterator<Item = (&'a Bytes, &'a Bytes)>,
    reverse: bool,
) -> Vec<(Bytes, Bytes)> {
    let pair = |(k, v): (&Bytes, &Bytes)| (k.clone(), v.clone());
    if reverse { items.rev().map(pair).collect() } else { items.map(pair).collect() }
}

/// Apply `op` to `db` and return what it returned. `Reopen` is the caller's (returns `Done`).
pub fn apply_db(db: &Db, op: &Op) -> Result<Outcome> {
    Ok(match op {
        Op::Put { key, value } => {
            db.put(key, value)?;
            Outcome::Done
        }
        Op::Insert { key, value } => Outcome::Value(db.insert(key, value)?.map(|v| v.to_vec())),
        Op::Remove { key } => Outcome::Value(db.remove(key)?.map(|v| v.to_vec())),
        Op::Cas { key, expected, new } => {
            let result = db.compare_and_swap(key, expected.as_ref(), new.as_ref())?;
            Outcome::Cas(result.map_err(|refused| refused.current.map(|v| v.to_vec())))
        }
        Op::Batch(entries) => {
            db.apply_batch(to_batch(entries))?;
            Outcome::Done
        }
        Op::Get { key } => Outcome::Value(db.get(key)?.map(|v| v.to_vec())),
        Op::Range { start, end, reverse } => {
            let iter = db.range::<Bytes, _>((start.clone(), end.clone()));
            Outcome::Items(collect_db(iter, *reverse)?)
        }
        Op::Prefix { prefix, reverse } => Outcome::Items(collect_db(db.prefix(prefix), *reverse)?),
        Op::Len => Outcome::Len(db.len()),
        Op::Reopen => Outcome::Done,
    })
}

/// The batch for `entries`.
pub fn to_batch(entries: &[(Bytes, Option<Bytes>)]) -> Batch {
    let mut batch = Batch::default();
    for (key, value) in entries {
        match value {
            Some(value) => batch.push_put(key, value),
            None => batch.push_remove(key),
        };
    }
    batch
}

fn collect_db(iter: mcstore_engine::Iter, reverse: bool) -> Result<Vec<(Bytes, Bytes)>> {
    let pair = |item: Result<(mcstore_engine::Value, mcstore_engine::Value)>| {
        item.map(|(k, v)| (k.to_vec(), v.to_vec()))
    };
    if reverse { iter.rev().map(pair).collect() } else { iter.map(pair).collect() }
}

/// Every key and value of `db`, ascending (the first error stops it).
pub fn db_contents(db: &Db) -> Result<Vec<(Bytes, Bytes)>> {
    collect_db(db.iter(), false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cas_refuses_with_the_current_value_and_batches_apply_in_order() {
        let mut model = Model::new();
        let k = b"k".to_vec();
        let put = Op::Cas { key: k.clone(), expected: None, new: Some(b"1".to_vec()) };
        assert_eq!(model.apply(&put), Outcome::Cas(Ok(())));
        assert_eq!(model.apply(&put), Outcome::Cas(Err(Some(b"1".to_vec()))));
        let batch = Op::Batch(vec![(k.clone(), None), (k.clone(), Some(b"2".to_vec()))]);
        assert_eq!(model.apply(&batch), Outcome::Done);
        assert_eq!(model.get(&k), Some(&b"2".to_vec()));
        assert_eq!(
            model.apply(&Op::Remove { key: k.clone() }),
            Outcome::Value(Some(b"2".to_vec()))
        );
        assert!(model.is_empty());
    }

    #[test]
    fn ranges_in_both_directions_and_empty_ranges() {
        let mut model = Model::new();
        for key in ["a", "ab", "b", "c"] {
            model.apply(&Op::Put { key: key.into(), value: key.into() });
        }
        let range = |start, end, reverse| Op::Range { start, end, reverse };
        let keys = |outcome: Outcome| match outcome {
            Outcome::Items(items) => items.into_iter().map(|(k, _)| k).collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        let b = |s: &str| s.as_bytes().to_vec();
        let forward = model.apply(&range(Bound::Included(b("a")), Bound::Excluded(b("c")), false));
        assert_eq!(keys(forward), vec![b("a"), b("ab"), b("b")]);
        let back = model.apply(&range(Bound::Excluded(b("a")), Bound::Unbounded, true));
        assert_eq!(keys(back), vec![b("c"), b("b"), b("ab")]);
        let inverted = range(Bound::Included(b("c")), Bound::Included(b("a")), false);
        assert_eq!(model.apply(&inverted), Outcome::Items(vec![]));
        let point = range(Bound::Included(b("b")), Bound::Excluded(b("b")), false);
        assert_eq!(model.apply(&point), Outcome::Items(vec![]));
        let prefix = model.apply(&Op::Prefix { prefix: b("a"), reverse: true });
        assert_eq!(keys(prefix), vec![b("ab"), b("a")]);
    }
}
