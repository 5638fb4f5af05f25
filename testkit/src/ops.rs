//! Operation generators (proptest strategies) over a small key space, so operations collide:
//! keys are 0–3 bytes over `{a, b, 0xFF}` (the empty key and prefix edge cases included), values
//! mostly short with occasional multi-KiB ones (so 64 KiB segments roll).
//!
//! INVARIANT: every generated operation is within the store's limits; a generated batch fits in
//! one 64 KiB segment.

use std::ops::Bound;

use proptest::prelude::*;

use crate::model::{Bytes, Op};

/// A key: 0–3 bytes from a three-symbol alphabet (with 0xFF, the prefix-successor edge).
pub fn key() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(prop::sample::select(vec![b'a', b'b', 0xFF]), 0..=3)
}

/// A value: mostly short, sometimes up to 3 KiB.
pub fn value() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        6 => prop::collection::vec(any::<u8>(), 0..64),
        1 => (0usize..3000, any::<u8>()).prop_map(|(len, byte)| vec![byte; len]),
    ]
}

fn bound() -> impl Strategy<Value = Bound<Bytes>> {
    prop_oneof![
        key().prop_map(Bound::Included),
        key().prop_map(Bound::Excluded),
        Just(Bound::Unbounded),
    ]
}

/// One operation of the whole API; `Reopen` (about one in twenty) when `reopen` is set.
pub fn op(reopen: bool) -> BoxedStrategy<Op> {
    let api = prop_oneof![
        6 => (key(), value()).prop_map(|(key, value)| Op::Put { key, value }),
        2 => (key(), value()).prop_map(|(key, value)| Op::Insert { key, value }),
        3 => key().prop_map(|key| Op::Remove { key }),
        2 => (key(), prop::option::of(value()), prop::option::of(value()))
            .prop_map(|(key, expected, new)| Op::Cas { key, expected, new }),
        2 => prop::collection::vec((key(), prop::option::of(value())), 0..8).prop_map(Op::Batch),
        3 => key().prop_map(|key| Op::Get { key }),
        2 => (bound(), bound(), any::<bool>())
            .prop_map(|(start, end, reverse)| Op::Range { start, end, reverse }),
        1 => (prop::collection::vec(prop::sample::select(vec![b'a', 0xFF]), 0..=2), any::<bool>())
            .prop_map(|(prefix, reverse)| Op::Prefix { prefix, reverse }),
        1 => Just(Op::Len),
    ];
    if reopen { prop_oneof![22 => api, 1 => Just(Op::Reopen)].boxed() } else { api.boxed() }
}

/// A sequence of operations (`Reopen` included when `reopen`).
pub fn ops(reopen: bool, len: std::ops::Range<usize>) -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op(reopen), len)
}

/// Only writes (for workloads whose reads are checked separately, e.g. crash setups).
pub fn write_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (key(), value()).prop_map(|(key, value)| Op::Put { key, value }),
        2 => key().prop_map(|key| Op::Remove { key }),
        1 => prop::collection::vec((key(), prop::option::of(value())), 1..6).prop_map(Op::Batch),
    ]
}

#[cfg(test)]
mod tests {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    use super::*;

    #[test]
    fn generated_batches_fit_a_small_segment_and_every_kind_appears() {
        let mut runner = TestRunner::deterministic();
        let mut kinds = std::collections::HashSet::new();
        for _ in 0..2000 {
            let op = op(true).new_tree(&mut runner).unwrap().current();
            if let Op::Batch(entries) = &op {
                let bytes: usize = entries
                    .iter()
                    .map(|(k, v)| 40 + k.len() + v.as_ref().map_or(0, Vec::len))
                    .sum();
                assert!(bytes < 60 << 10, "{bytes}");
            }
            kinds.insert(
                format!("{op:?}").split([' ', '(', '{']).next().unwrap_or_default().to_string(),
            );
        }
        assert_eq!(kinds.len(), 10, "every operation kind is generated: {kinds:?}");
    }
}
