//! The point table's slot: one cache line holding a key's fingerprint (its full 64-bit hash),
//! the key itself when it is short, and its location, under a sequence lock over atomics, so
//! a reader needs no lock and never sees a torn entry. A `Probe` is a key prepared for the
//! comparisons.
//!
//! INVARIANT: one writer per slot at a time (the table's writer); a slot's sequence is odd
//! while the writer changes it, and a reader retries until it reads the same even sequence
//! before and after.

use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering, fence};

use arc_swap::ArcSwapOption;

#[cfg(test)]
use super::tests;
use crate::index::Location;

/// A never-used slot.
pub(super) const EMPTY: u64 = 0;
/// A slot whose key was removed (a probe goes on past it).
pub(super) const DELETED: u64 = 1;
/// Keys up to this many bytes are stored in the slot itself.
pub(super) const INLINE_KEY_BYTES: usize = 16;
/// Bits of `offset_key` that hold the record's pool offset (pools are at most 2^44 bytes).
pub(super) const OFFSET_BITS: u32 = 47;

/// One entry: 64 bytes, aligned to a cache line, so a probe costs one line.
#[repr(align(64))]
#[derive(Default)]
pub(super) struct Slot {
    /// Sequence lock: odd while the writer changes the slot.
    pub(super) seq: AtomicU32,
    /// The record's encoded length.
    pub(super) record_len: AtomicU32,
    /// The key's hash (never `EMPTY` or `DELETED`), or one of those two.
    pub(super) hash: AtomicU64,
    /// A key of at most `INLINE_KEY_BYTES`, little-endian, zero-padded.
    pub(super) inline: [AtomicU64; 2],
    /// A longer key. `Some` only while the slot's key length (in `offset_key`) is over
    /// `INLINE_KEY_BYTES`, so the table's drop releases exactly those (dropping an `ArcSwap`
    /// walks every thread's debt list, even for `None`: ~12 % of a fresh-key put's time went to
    /// dropping grown-out tables slot by slot).
    pub(super) long: ArcSwapOption<Box<[u8]>>,
    /// The record's pool offset (low `OFFSET_BITS`) and the key's length (the rest).
    pub(super) offset_key: AtomicU64,
    pub(super) segment_seq: AtomicU64,
    pub(super) lsn: AtomicU64,
}

const _: () = assert!(std::mem::size_of::<Slot>() == 64);
const _: () = assert!(crate::limits::KEY_BYTES_MAX < 1 << (64 - OFFSET_BITS));
const _: () = assert!(crate::limits::POOL_BYTES_MAX <= 1 << OFFSET_BITS);

/// A key prepared for probing: its hash and its inline words.
pub(super) struct Probe<'k> {
    pub(super) key: &'k [u8],
    pub(super) hash: u64,
    pub(super) inline: [u64; 2],
}

impl<'k> Probe<'k> {
    pub(super) fn new(hasher: &foldhash::fast::RandomState, key: &'k [u8]) -> Self {
        let hash = hasher.hash_one(key);
        // Tests narrow the hash to force equal fingerprints for different keys.
        #[cfg(test)]
        let hash = hash & tests::HASH_MASK.with(|mask| mask.get());
        let hash = hash.max(DELETED + 1);
        let mut inline = [0u64; 2];
        if key.len() <= INLINE_KEY_BYTES {
            let mut bytes = [0u8; INLINE_KEY_BYTES];
            bytes[..key.len()].copy_from_slice(key);
            let (a, b) = bytes.split_at(8);
            inline = [words(a), words(b)];
        }
        Self { key, hash, inline }
    }
}

pub(super) fn words(bytes: &[u8]) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(bytes);
    u64::from_le_bytes(word)
}

/// What one slot says about a probed key.
pub(super) enum Seen {
    Empty,
    Match(Location),
    Other,
}

impl Slot {
    /// What `read` makes of the slot, read again until no write overlapped it (the sequence
    /// lock's reader side).
    pub(super) fn consistent<T>(&self, mut read: impl FnMut(&Self) -> T) -> T {
        loop {
            let before = self.seq.load(Ordering::Acquire);
            if before & 1 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let value = read(self);
            fence(Ordering::Acquire);
            if self.seq.load(Ordering::Relaxed) == before {
                return value;
            }
        }
    }

    /// The slot's view of `probe`, consistent under the sequence lock.
    pub(super) fn read(&self, probe: &Probe<'_>) -> Seen {
        self.consistent(|slot| {
            let hash = slot.hash.load(Ordering::Relaxed);
            if hash == EMPTY {
                // Slots never return to empty: no key was ever placed at or past this slot in
                // this probe's cluster.
                return Seen::Empty;
            }
            if hash != probe.hash {
                return Seen::Other;
            }
            let offset_key = slot.offset_key.load(Ordering::Relaxed);
            let location = Location {
                offset: offset_key & ((1 << OFFSET_BITS) - 1),
                len: slot.record_len.load(Ordering::Relaxed),
                segment_seq: slot.segment_seq.load(Ordering::Relaxed),
                lsn: slot.lsn.load(Ordering::Relaxed),
            };
            if slot.key_is(offset_key >> OFFSET_BITS, probe) {
                Seen::Match(location)
            } else {
                Seen::Other
            }
        })
    }

    /// Store `location` (writer only; `key` set when the slot takes a new key).
    pub(super) fn write(&self, key: Option<&Probe<'_>>, location: Location) {
        let seq = self.seq.load(Ordering::Relaxed);
        self.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        let key_len = match key {
            Some(probe) => {
                self.fill_key(probe);
                probe.key.len() as u64
            }
            None => self.key_len(),
        };
        self.store_location(key_len, location);
        self.seq.store(seq.wrapping_add(2), Ordering::Release);
    }

    pub(super) fn fill_key(&self, probe: &Probe<'_>) {
        self.hash.store(probe.hash, Ordering::Relaxed);
        self.inline[0].store(probe.inline[0], Ordering::Relaxed);
        self.inline[1].store(probe.inline[1], Ordering::Relaxed);
        if probe.key.len() > INLINE_KEY_BYTES {
            self.long.store(Some(Arc::new(probe.key.into())));
        }
    }

    pub(super) fn store_location(&self, key_len: u64, location: Location) {
        debug_assert!(location.offset < 1 << OFFSET_BITS);
        self.offset_key.store(location.offset | (key_len << OFFSET_BITS), Ordering::Relaxed);
        self.record_len.store(location.len, Ordering::Relaxed);
        self.segment_seq.store(location.segment_seq, Ordering::Relaxed);
        self.lsn.store(location.lsn, Ordering::Relaxed);
    }

    /// Whether the slot holds `probe`'s key (a slot only this thread writes).
    pub(super) fn holds(&self, probe: &Probe<'_>) -> bool {
        self.hash.load(Ordering::Relaxed) == probe.hash && self.key_is(self.key_len(), probe)
    }

    /// Whether the slot's key, `key_len` bytes long (as its `offset_key` says), is `probe`'s
    /// (the hashes already equal).
    pub(super) fn key_is(&self, key_len: u64, probe: &Probe<'_>) -> bool {
        key_len == probe.key.len() as u64
            && if probe.key.len() <= INLINE_KEY_BYTES {
                self.inline[0].load(Ordering::Relaxed) == probe.inline[0]
                    && self.inline[1].load(Ordering::Relaxed) == probe.inline[1]
            } else {
                self.long.load().as_deref().is_some_and(|long| **long == *probe.key)
            }
    }

    /// Mark removed (writer only).
    pub(super) fn delete(&self) {
        let seq = self.seq.load(Ordering::Relaxed);
        self.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        self.hash.store(DELETED, Ordering::Relaxed);
        self.seq.store(seq.wrapping_add(2), Ordering::Release);
        if self.key_len() > INLINE_KEY_BYTES as u64 {
            self.long.store(None);
        }
    }

    /// The length of the key last written to the slot (0 for a never-used slot).
    pub(super) fn key_len(&self) -> u64 {
        self.offset_key.load(Ordering::Relaxed) >> OFFSET_BITS
    }

    /// The slot's location (writer only, or a table no one writes).
    pub(super) fn location(&self) -> Location {
        Location {
            offset: self.offset_key.load(Ordering::Relaxed) & ((1 << OFFSET_BITS) - 1),
            len: self.record_len.load(Ordering::Relaxed),
            segment_seq: self.segment_seq.load(Ordering::Relaxed),
            lsn: self.lsn.load(Ordering::Relaxed),
        }
    }

    /// The slot's key and location if it is live, consistent under the sequence lock (the
    /// writer may be changing the slot: a growth copies on a thread of its own).
    pub(super) fn snapshot(&self) -> Option<Snapshot> {
        self.consistent(|slot| {
            let hash = slot.hash.load(Ordering::Relaxed);
            (hash != EMPTY && hash != DELETED).then(|| {
                let key_len = slot.key_len();
                Snapshot {
                    hash,
                    inline: [
                        slot.inline[0].load(Ordering::Relaxed),
                        slot.inline[1].load(Ordering::Relaxed),
                    ],
                    // A short key has no `long`: skipping the `ArcSwap` load keeps a growth's
                    // copy to plain loads and stores (its debt bookkeeping was ~5 % of a
                    // fresh-key put).
                    long: (key_len > INLINE_KEY_BYTES as u64)
                        .then(|| slot.long.load_full())
                        .flatten(),
                    key_len,
                    location: slot.location(),
                }
            })
        })
    }
}

/// A live slot's contents, read whole ([`Slot::snapshot`]).
pub(super) struct Snapshot {
    pub(super) hash: u64,
    pub(super) inline: [u64; 2],
    /// `Some` exactly when the key is longer than `INLINE_KEY_BYTES`.
    pub(super) long: Option<Arc<Box<[u8]>>>,
    pub(super) key_len: u64,
    pub(super) location: Location,
}

impl Snapshot {
    /// Write into an empty slot of a table not yet published.
    pub(super) fn place(self, to: &Slot) {
        to.hash.store(self.hash, Ordering::Relaxed);
        to.inline[0].store(self.inline[0], Ordering::Relaxed);
        to.inline[1].store(self.inline[1], Ordering::Relaxed);
        if self.long.is_some() {
            to.long.store(self.long);
        }
        to.store_location(self.key_len, self.location);
    }
}
