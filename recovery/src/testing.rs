//! Test support: build small pools on a `SimMedium` with the real `pool` writes and append
//! records the way the engine does (persist records, then publish the tail).

use mcstore_pmem::{Medium, SimMedium};

use crate::format::{
    Lsn, RecordContext, RecordKind, SegmentId, Superblock, TailWords, encode_record,
};
use crate::pool::{self, CreateParams};

/// A pool of `segments` segments of 64 KiB on a fresh SimMedium.
pub(crate) fn new_pool(segments: u32) -> (SimMedium, Superblock) {
    let len = (64 << 10) * (u64::from(segments) + 1);
    let medium = SimMedium::new(len);
    let params = CreateParams { segment_size_bytes: 64 << 10, ..CreateParams::default() };
    let sb = pool::create(&medium, &params).unwrap();
    (medium, sb)
}

/// The engine's view of an open segment while appending.
pub(crate) struct Appender {
    pub(crate) id: SegmentId,
    pub(crate) seq: u64,
    pub(crate) tail: u64,
}

impl Appender {
    /// Open segment `id` with the next sequence.
    pub(crate) fn open(medium: &dyn Medium, sb: &mut Superblock, id: SegmentId) -> Self {
        let seq = pool::open_segment(medium, sb, id).unwrap();
        Self { id, seq, tail: 0 }
    }

    /// Append a batch of `(kind, lsn, key, value)` and commit it with one tail store. Returns
    /// the pool offsets of the records.
    pub(crate) fn append(
        &mut self,
        medium: &dyn Medium,
        sb: &Superblock,
        batch: &[(RecordKind, u64, &[u8], &[u8])],
    ) -> Vec<u64> {
        self.try_append(medium, sb, batch).unwrap()
    }

    /// [`Self::append`], returning the medium's error (a simulated crash) instead of panicking.
    pub(crate) fn try_append(
        &mut self,
        medium: &dyn Medium,
        sb: &Superblock,
        batch: &[(RecordKind, u64, &[u8], &[u8])],
    ) -> crate::error::Result<Vec<u64>> {
        let g = sb.geometry;
        let start = g.data_start(self.id) + self.tail;
        let mut bytes = Vec::new();
        let mut offsets = Vec::new();
        for &(kind, lsn, key, value) in batch {
            let ctx = RecordContext {
                offset: start + bytes.len() as u64,
                segment_seq: self.seq,
                set_uuid: sb.set_uuid,
            };
            offsets.push(ctx.offset);
            encode_record(&mut bytes, kind, Lsn(lsn), key, value, &ctx);
        }
        pool::persist_records(medium, start, &bytes)?;
        self.tail += bytes.len() as u64;
        pool::publish_tail(
            medium,
            &g,
            self.id,
            &TailWords::new(self.seq, &sb.set_uuid),
            self.tail,
        )?;
        Ok(offsets)
    }

    /// Append one put.
    pub(crate) fn put(
        &mut self,
        medium: &dyn Medium,
        sb: &Superblock,
        lsn: u64,
        key: &str,
        value: &str,
    ) -> u64 {
        self.append(medium, sb, &[(RecordKind::Put, lsn, key.as_bytes(), value.as_bytes())])[0]
    }
}
