//! The table of mapped ranges that turns the address of an asynchronous poison notice into a
//! member and an offset.
//!
//! Fixed capacity, atomics only: each entry is a seqlock whose state word carries a generation,
//! so a reader never mistakes a reused slot for the mapping it looked up. INVARIANT: an entry's
//! fields are written only while its state is `WRITING`, by the one thread that claimed it.

use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering, fence};

use crate::medium::MemberId;

use crate::limits::MAPPING_TABLE_CAPACITY;

const FREE: u64 = 0;
const WRITING: u64 = 1;
const LIVE: u64 = 2;
const TAG_BITS: u32 = 2;
const UNTRACKED: u32 = u32::MAX;

/// A registered mapping, for [`unregister_mapping`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MappingId {
    slot: u32,
    generation: u64,
}

impl MappingId {
    /// Whether the table had room: notices in an untracked mapping come without member and
    /// offset.
    pub fn is_tracked(&self) -> bool {
        self.slot != UNTRACKED
    }
}

struct Entry {
    state: AtomicU64,
    base: AtomicUsize,
    len: AtomicUsize,
    member: AtomicU8,
}

impl Entry {
    const fn empty() -> Entry {
        Entry {
            state: AtomicU64::new(FREE),
            base: AtomicUsize::new(0),
            len: AtomicUsize::new(0),
            member: AtomicU8::new(0),
        }
    }
}

/// A table of `(base, len, member)` ranges.
pub(crate) struct MappingTable<const N: usize> {
    entries: [Entry; N],
}

static MAPPINGS: MappingTable<MAPPING_TABLE_CAPACITY> = MappingTable::new();

/// Where a looked-up address lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Located {
    pub mapping: MappingId,
    pub member: MemberId,
    pub offset: u64,
}

fn state(generation: u64, tag: u64) -> u64 {
    (generation << TAG_BITS) | tag
}

impl<const N: usize> MappingTable<N> {
    pub(crate) const fn new() -> Self {
        Self { entries: [const { Entry::empty() }; N] }
    }

    pub(crate) fn register(&self, base: usize, len: usize, member: MemberId) -> MappingId {
        for (slot, entry) in self.entries.iter().enumerate() {
            let current = entry.state.load(Ordering::Acquire);
            if current & 3 != FREE {
                continue;
            }
            let generation = current >> TAG_BITS;
            let claimed = entry.state.compare_exchange(
                current,
                state(generation, WRITING),
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
            if claimed.is_err() {
                continue;
            }
            // INVARIANT: readers that overlap these stores see the state change (seqlock).
            fence(Ordering::Release);
            entry.base.store(base, Ordering::Relaxed);
            entry.len.store(len, Ordering::Relaxed);
            entry.member.store(member.0, Ordering::Relaxed);
            entry.state.store(state(generation, LIVE), Ordering::Release);
            return MappingId { slot: slot as u32, generation };
        }
        MappingId { slot: UNTRACKED, generation: 0 }
    }

    pub(crate) fn unregister(&self, id: MappingId) {
        let Some(entry) = self.entries.get(id.slot as usize) else { return };
        let released = entry.state.compare_exchange(
            state(id.generation, LIVE),
            state(id.generation.wrapping_add(1), FREE),
            Ordering::AcqRel,
            Ordering::Relaxed,
        );
        debug_assert!(released.is_ok(), "unregister of a mapping not registered: {id:?}");
    }

    pub(crate) fn locate(&self, addr: usize) -> Option<Located> {
        for (slot, entry) in self.entries.iter().enumerate() {
            let before = entry.state.load(Ordering::Acquire);
            if before & 3 != LIVE {
                continue;
            }
            let base = entry.base.load(Ordering::Relaxed);
            let len = entry.len.load(Ordering::Relaxed);
            let member = entry.member.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            if entry.state.load(Ordering::Relaxed) != before {
                continue;
            }
            if addr >= base && addr - base < len {
                let mapping = MappingId { slot: slot as u32, generation: before >> TAG_BITS };
                return Some(Located {
                    mapping,
                    member: MemberId(member),
                    offset: (addr - base) as u64,
                });
            }
        }
        None
    }
}

/// Track `[base, base + len)` as `member`, so asynchronous notices in it carry an offset.
/// When the table is full the returned id is not tracked ([`MappingId::is_tracked`]).
pub fn register_mapping(base: usize, len: usize, member: MemberId) -> MappingId {
    MAPPINGS.register(base, len, member)
}

/// Stop tracking a mapping (before it is unmapped). Untracked ids are ignored.
pub fn unregister_mapping(id: MappingId) {
    if id.is_tracked() {
        MAPPINGS.unregister(id);
    }
}

/// The registered mapping holding `addr`, if any.
pub(crate) fn locate(addr: usize) -> Option<Located> {
    MAPPINGS.locate(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_registered_ranges_and_forgets_unregistered() {
        let table = MappingTable::<4>::new();
        let a = table.register(0x10_0000, 0x1000, MemberId(0));
        let b = table.register(0x20_0000, 0x2000, MemberId(3));
        assert!(a.is_tracked() && b.is_tracked());
        let hit = table.locate(0x20_1fff).unwrap();
        assert_eq!((hit.mapping, hit.member, hit.offset), (b, MemberId(3), 0x1fff));
        assert_eq!(table.locate(0x20_2000), None);
        assert_eq!(table.locate(0x10_0000).unwrap().offset, 0);
        table.unregister(a);
        assert_eq!(table.locate(0x10_0000), None);
        // The slot is reused with a new generation: the old id no longer names it.
        let c = table.register(0x30_0000, 0x1000, MemberId(1));
        assert_ne!(c, a);
        assert_eq!(table.locate(0x30_0010).unwrap().mapping, c);
    }

    #[test]
    fn full_table_hands_out_untracked_ids() {
        let table = MappingTable::<2>::new();
        table.register(0x1000, 0x1000, MemberId(0));
        table.register(0x2000, 0x1000, MemberId(0));
        let third = table.register(0x3000, 0x1000, MemberId(0));
        assert!(!third.is_tracked());
        assert_eq!(table.locate(0x3000), None);
    }

    #[test]
    fn concurrent_register_and_locate_never_see_torn_entries() {
        let table = MappingTable::<8>::new();
        std::thread::scope(|s| {
            for t in 0..2usize {
                let table = &table;
                s.spawn(move || {
                    for i in 0..2000usize {
                        // Each registration has base = len * 16 and member = t: a torn read
                        // would break that relation.
                        let len = 0x1000 * (1 + (i % 7) + 8 * t);
                        let id = table.register(len * 16, len, MemberId(t as u8));
                        table.unregister(id);
                    }
                });
            }
            let table = &table;
            s.spawn(move || {
                for i in 0..20_000usize {
                    let t = i % 2;
                    let len = 0x1000 * (1 + (i % 7) + 8 * t);
                    if let Some(hit) = table.locate(len * 16 + 5) {
                        assert_eq!(hit.offset, 5);
                        assert_eq!(hit.member, MemberId(t as u8));
                    }
                }
            });
        });
    }
}
