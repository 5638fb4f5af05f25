//! `Batch`: puts and removes applied in order and atomically (one committed-tail store covers
//! them all).
//!
//! INVARIANT: operations keep the order they were added in; later ones win on the same key.

/// One operation of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchOp {
    /// Set `key` to `value`.
    Put {
        /// The key.
        key: Vec<u8>,
        /// The value.
        value: Vec<u8>,
    },
    /// Remove `key` (a no-op if absent).
    Remove {
        /// The key.
        key: Vec<u8>,
    },
}

impl BatchOp {
    /// The key the operation writes.
    pub fn key(&self) -> &[u8] {
        match self {
            BatchOp::Put { key, .. } | BatchOp::Remove { key } => key,
        }
    }
}

/// Operations applied in order, atomically: after a crash, all of them or none.
///
/// A batch must fit in one segment (`Error::BatchTooLarge` otherwise).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Batch {
    ops: Vec<BatchOp>,
}

impl Batch {
    /// Add a put (by-value builder).
    #[must_use]
    pub fn put(mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Self {
        self.push_put(key, value);
        self
    }

    /// Add a remove (by-value builder).
    #[must_use]
    pub fn remove(mut self, key: impl AsRef<[u8]>) -> Self {
        self.push_remove(key);
        self
    }

    /// Add a put in place.
    pub fn push_put(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) {
        self.ops.push(BatchOp::Put { key: key.as_ref().to_vec(), value: value.as_ref().to_vec() });
    }

    /// Add a remove in place.
    pub fn push_remove(&mut self, key: impl AsRef<[u8]>) {
        self.ops.push(BatchOp::Remove { key: key.as_ref().to_vec() });
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Whether the batch has no operation.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The operations, in order.
    pub fn ops(&self) -> &[BatchOp] {
        &self.ops
    }

    /// Drop every operation, keeping the allocation.
    pub fn clear(&mut self) {
        self.ops.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_keeps_order() {
        let batch = Batch::default().put("a", "1").remove("b").put("a", "2");
        assert_eq!(batch.len(), 3);
        let keys: Vec<&[u8]> = batch.ops().iter().map(BatchOp::key).collect();
        assert_eq!(keys, [&b"a"[..], b"b", b"a"]);
        assert_eq!(batch.ops()[2], BatchOp::Put { key: b"a".to_vec(), value: b"2".to_vec() });
    }
}
