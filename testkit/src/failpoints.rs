//! The oracle of the failure-point sweeps: a [`History`] of writes, each acknowledged or in
//! doubt (it returned an error, so it may be whole or absent), and the check that recovered
//! contents are a state the history allows.
//!
//! INVARIANT: the candidate states are forked only by in-doubt writes and pruned as soon as a
//! key they differ on is never written again, so a run with many failed writes to distinct keys
//! stays linear instead of doubling per failure (the draft's blow-up).

use std::collections::BTreeMap;

use crate::model::{Bytes, Model, Op};

/// Most candidate states kept at once; beyond it the history is refused (a workload that
/// leaves this many keys in doubt at once is too ambiguous to check).
pub const CANDIDATES_MAX: usize = 256;

/// Whether a write's effect is known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    /// It returned `Ok`: its effect is in every allowed state.
    Acknowledged,
    /// It returned an error: whole or absent.
    InDoubt,
}

/// The writes of one run, in the order they returned.
#[derive(Clone, Debug, Default)]
pub struct History {
    writes: Vec<(Op, Fate)>,
}

impl History {
    /// An empty history (an empty store).
    pub fn new() -> Self {
        Self::default()
    }

    /// `op` returned `Ok`.
    pub fn acknowledged(&mut self, op: &Op) {
        if writes(op) {
            self.writes.push((op.clone(), Fate::Acknowledged));
        }
    }

    /// `op` returned an error that does not promise it wrote nothing: whole or absent.
    pub fn in_doubt(&mut self, op: &Op) {
        if writes(op) {
            self.writes.push((op.clone(), Fate::InDoubt));
        }
    }

    /// Writes recorded.
    pub fn len(&self) -> usize {
        self.writes.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    /// Writes recorded in doubt.
    pub fn in_doubt_count(&self) -> usize {
        self.writes.iter().filter(|(_, fate)| *fate == Fate::InDoubt).count()
    }

    /// `Ok` when `contents` (ascending, as `db_contents` returns them) is the result of every
    /// acknowledged write and some subset of the in-doubt ones, applied in order; otherwise why
    /// not.
    pub fn allows(&self, contents: &[(Bytes, Bytes)]) -> Result<(), String> {
        let recovered: BTreeMap<&[u8], &[u8]> =
            contents.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
        // The last write of each key: after it, a candidate must hold the recovered value.
        let mut last_write: BTreeMap<&[u8], usize> = BTreeMap::new();
        for (i, (op, _)) in self.writes.iter().enumerate() {
            for key in keys(op) {
                last_write.insert(key, i);
            }
        }
        let mut candidates = vec![Model::new()];
        for (i, (op, fate)) in self.writes.iter().enumerate() {
            let mut next: Vec<Model> = Vec::with_capacity(candidates.len() * 2);
            let mut keep = |model: Model| {
                if !next.contains(&model) {
                    next.push(model);
                }
            };
            for model in candidates {
                if *fate == Fate::InDoubt {
                    keep(model.clone());
                }
                let mut with = model;
                with.apply(op);
                keep(with);
            }
            let settled: Vec<&[u8]> =
                keys(op).into_iter().filter(|key| last_write.get(key) == Some(&i)).collect();
            next.retain(|model| {
                settled
                    .iter()
                    .all(|key| model.get(key).map(Vec::as_slice) == recovered.get(key).copied())
            });
            if next.is_empty() {
                return Err(format!(
                    "no allowed state after write {i} of {} ({op:?}) matches the recovered \
                     value of the keys it wrote last",
                    self.writes.len()
                ));
            }
            if next.len() > CANDIDATES_MAX {
                return Err(format!("more than {CANDIDATES_MAX} allowed states after write {i}"));
            }
            candidates = next;
        }
        if candidates.iter().any(|model| model.contents() == contents) {
            return Ok(());
        }
        let unwritten: Vec<String> = recovered
            .keys()
            .filter(|key| !last_write.contains_key(*key))
            .map(|key| String::from_utf8_lossy(key).into_owned())
            .collect();
        Err(format!(
            "{} keys recovered, matching none of {} allowed states (keys never written: {unwritten:?})",
            contents.len(),
            candidates.len()
        ))
    }
}

/// Whether `op` changes the store.
fn writes(op: &Op) -> bool {
    matches!(
        op,
        Op::Put { .. } | Op::Insert { .. } | Op::Remove { .. } | Op::Cas { .. } | Op::Batch(_)
    )
}

/// The keys `op` may change.
fn keys(op: &Op) -> Vec<&[u8]> {
    match op {
        Op::Put { key, .. } | Op::Insert { key, .. } | Op::Remove { key } | Op::Cas { key, .. } => {
            vec![key.as_slice()]
        }
        Op::Batch(entries) => entries.iter().map(|(key, _)| key.as_slice()).collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value: &str) -> Op {
        Op::Put { key: key.as_bytes().to_vec(), value: value.as_bytes().to_vec() }
    }

    fn contents(pairs: &[(&str, &str)]) -> Vec<(Bytes, Bytes)> {
        pairs.iter().map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec())).collect()
    }

    #[test]
    fn acknowledged_writes_must_be_there_and_in_doubt_ones_whole_or_absent() {
        let mut history = History::new();
        history.acknowledged(&put("a", "1"));
        history.in_doubt(&Op::Batch(vec![
            (b"a".to_vec(), Some(b"2".to_vec())),
            (b"b".to_vec(), Some(b"3".to_vec())),
        ]));
        assert!(history.allows(&contents(&[("a", "1")])).is_ok());
        assert!(history.allows(&contents(&[("a", "2"), ("b", "3")])).is_ok());
        // Half a batch, a lost acknowledged write, a key never written: refused.
        assert!(history.allows(&contents(&[("a", "1"), ("b", "3")])).is_err());
        assert!(history.allows(&contents(&[])).is_err());
        assert!(history.allows(&contents(&[("a", "1"), ("z", "9")])).is_err());
    }

    #[test]
    fn many_in_doubt_writes_to_distinct_keys_stay_within_the_candidate_bound() {
        let mut history = History::new();
        let mut expected = Vec::new();
        for i in 0..200 {
            let key = format!("k{i:03}");
            history.in_doubt(&put(&key, "v"));
            if i % 3 == 0 {
                expected.push((key, "v"));
            }
        }
        let pairs: Vec<(&str, &str)> = expected.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(history.in_doubt_count(), 200);
        assert!(history.allows(&contents(&pairs)).is_ok());
    }

    #[test]
    fn an_in_doubt_cas_is_judged_against_each_earlier_state() {
        let mut history = History::new();
        history.in_doubt(&put("a", "1"));
        let cas = Op::Cas { key: b"a".to_vec(), expected: None, new: Some(b"2".to_vec()) };
        history.acknowledged(&cas);
        // The put absent: the CAS found no value and wrote 2. The put whole: it refused.
        assert!(history.allows(&contents(&[("a", "2")])).is_ok());
        assert!(history.allows(&contents(&[("a", "1")])).is_ok());
        assert!(history.allows(&contents(&[])).is_err());
    }
}
