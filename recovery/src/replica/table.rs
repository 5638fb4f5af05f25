//! The set-state table: which members a replica set has, their states, and the quarantined
//! ranges that could not be repaired. Two 4 KiB slots at pool offsets 8192 and 12288 — pages no
//! pool structure uses (superblocks end at 8 KiB, segments start at 64 KiB or later) — so the
//! segment and record layout is untouched. Drawn in `docs/replicas.md`.
//!
//! INVARIANT: generation g lives in slot g % 2 and an update writes the other slot, so a torn
//! update leaves the previous table readable; the checksum covers every byte before it; the
//! table is set-wide (byte-identical on every in-sync member) and the primary's copy rules.

use mcstore_pmem::{Domain, ErrorRegister, Medium, MemberId};

use crate::format::checksum::hash64;
use crate::format::superblock::{member_state_code, member_state_from_code};
use crate::format::{MemberState, Uuid};

/// Bytes of one table slot (one page).
pub const TABLE_BYTES: usize = 4096;
/// Pool offsets of the two slots.
pub const TABLE_SLOT_OFFSETS: [u64; 2] = [8192, 12288];
pub use crate::sites::TABLE_WRITE;

const MAGIC: [u8; 8] = *b"MCSTSET1";
const OFF_GENERATION: usize = 8;
const OFF_SET_UUID: usize = 16;
const OFF_MEMBER_COUNT: usize = 32;
const OFF_QUARANTINE_COUNT: usize = 36;
const OFF_MEMBERS: usize = 64;
const MEMBER_BYTES: usize = 24;
pub use crate::limits::MEMBERS_MAX;
const OFF_QUARANTINE: usize = OFF_MEMBERS + MEMBERS_MAX * MEMBER_BYTES;
const QUARANTINE_BYTES: usize = 24;
pub use crate::limits::QUARANTINE_MAX;
const OFF_CHECKSUM: usize = TABLE_BYTES - 8;
/// A second copy of the magic, generation and set uuid, in the slot's last cache line (with
/// the checksum): one damaged line cannot hide which generation a slot held.
const OFF_TRAILER: usize = 4048;
const LINE: usize = 64;
/// Magic, generation and set uuid: the first bytes of a slot, and of its trailer.
const IDENTITY_BYTES: usize = OFF_MEMBER_COUNT;
const _: () = assert!(OFF_MEMBERS == LINE && OFF_TRAILER / LINE == (TABLE_BYTES - 1) / LINE);
const _: () = assert!(OFF_TRAILER + IDENTITY_BYTES <= OFF_CHECKSUM);
const _: () = assert!(OFF_QUARANTINE == 448);
const _: () = assert!(OFF_QUARANTINE + QUARANTINE_MAX * QUARANTINE_BYTES <= OFF_CHECKSUM);

/// One member as the table records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableMember {
    /// The member's own pool uuid (its superblock's `pool_uuid`).
    pub pool_uuid: Uuid,
    /// Its state.
    pub state: MemberState,
}

/// A range of one member that could not be repaired: never written, never read as data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Quarantined {
    /// The member.
    pub member: MemberId,
    /// Start, in bytes from the start of the member.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
}

/// The decoded table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetTable {
    /// Update counter; generation g is stored in slot g % 2.
    pub generation: u64,
    /// The replica set's uuid.
    pub set_uuid: Uuid,
    /// The members, the primary first.
    pub members: Vec<TableMember>,
    /// Quarantined ranges.
    pub quarantine: Vec<Quarantined>,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4).and_then(|s| s.try_into().ok()).map_or(0, u32::from_le_bytes)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    b.get(at..at + 8).and_then(|s| s.try_into().ok()).map_or(0, u64::from_le_bytes)
}

/// What a slot that does not decode still says of its generation: each copy (header line,
/// trailer line) that reads clean with the magic and `set_uuid`, and whether some line read
/// clean and every one that did is zeros (a slot never written, or zeroed by `table_heal`).
fn generation_copies(medium: &dyn Medium, offset: u64, set_uuid: &Uuid) -> (Vec<u64>, bool) {
    let mut generations = Vec::new();
    let (mut clean_lines, mut zero_lines) = (0, 0);
    for copy in [0, OFF_TRAILER] {
        let line = copy / LINE * LINE;
        let mut bytes = [0u8; LINE];
        let mut register = ErrorRegister::deferred();
        if medium.read(offset + line as u64, &mut bytes, &mut register, Domain::Engine).is_err()
            || !register.is_clean()
        {
            continue;
        }
        clean_lines += 1;
        zero_lines += usize::from(bytes.iter().all(|&b| b == 0));
        let identity = &bytes[copy - line..copy - line + IDENTITY_BYTES];
        if identity[0..8] == MAGIC && identity[OFF_SET_UUID..] == set_uuid.0 {
            generations.push(u64_at(identity, OFF_GENERATION));
        }
    }
    (generations, clean_lines > 0 && zero_lines == clean_lines)
}

impl SetTable {
    /// The slot this generation is written to.
    pub fn slot(&self) -> usize {
        (self.generation % 2) as usize
    }

    /// The slot's bytes. Panics if the table holds more members or ranges than fit (callers
    /// check [`MEMBERS_MAX`] and [`QUARANTINE_MAX`]).
    pub fn encode(&self) -> Vec<u8> {
        assert!(self.members.len() <= MEMBERS_MAX && self.quarantine.len() <= QUARANTINE_MAX);
        let mut out = vec![0u8; TABLE_BYTES];
        out[0..8].copy_from_slice(&MAGIC);
        out[OFF_GENERATION..OFF_GENERATION + 8].copy_from_slice(&self.generation.to_le_bytes());
        out[OFF_SET_UUID..OFF_SET_UUID + 16].copy_from_slice(&self.set_uuid.0);
        let counts = [self.members.len() as u32, self.quarantine.len() as u32];
        out[OFF_MEMBER_COUNT..OFF_MEMBER_COUNT + 4].copy_from_slice(&counts[0].to_le_bytes());
        out[OFF_QUARANTINE_COUNT..OFF_QUARANTINE_COUNT + 4]
            .copy_from_slice(&counts[1].to_le_bytes());
        for (i, m) in self.members.iter().enumerate() {
            let at = OFF_MEMBERS + i * MEMBER_BYTES;
            out[at..at + 16].copy_from_slice(&m.pool_uuid.0);
            out[at + 16..at + 20].copy_from_slice(&member_state_code(m.state).to_le_bytes());
        }
        for (i, q) in self.quarantine.iter().enumerate() {
            let at = OFF_QUARANTINE + i * QUARANTINE_BYTES;
            out[at..at + 4].copy_from_slice(&u32::from(q.member.0).to_le_bytes());
            out[at + 8..at + 16].copy_from_slice(&q.offset.to_le_bytes());
            out[at + 16..at + 24].copy_from_slice(&q.len.to_le_bytes());
        }
        let (head, trailer) = out.split_at_mut(OFF_TRAILER);
        trailer[..IDENTITY_BYTES].copy_from_slice(&head[..IDENTITY_BYTES]);
        let sum = hash64(&out[..OFF_CHECKSUM]);
        out[OFF_CHECKSUM..].copy_from_slice(&sum.to_le_bytes());
        out
    }

    /// Decode slot `slot`'s bytes; `None` if they are not a valid table of that slot.
    pub fn decode(bytes: &[u8], slot: usize) -> Option<Self> {
        let raw = bytes.get(..TABLE_BYTES)?;
        if raw[0..8] != MAGIC || hash64(&raw[..OFF_CHECKSUM]) != u64_at(raw, OFF_CHECKSUM) {
            return None;
        }
        let generation = u64_at(raw, OFF_GENERATION);
        let member_count = u32_at(raw, OFF_MEMBER_COUNT) as usize;
        let quarantine_count = u32_at(raw, OFF_QUARANTINE_COUNT) as usize;
        if generation % 2 != slot as u64
            || member_count == 0
            || member_count > MEMBERS_MAX
            || quarantine_count > QUARANTINE_MAX
        {
            return None;
        }
        let mut set_uuid = [0u8; 16];
        set_uuid.copy_from_slice(&raw[OFF_SET_UUID..OFF_SET_UUID + 16]);
        let mut members = Vec::with_capacity(member_count);
        for i in 0..member_count {
            let at = OFF_MEMBERS + i * MEMBER_BYTES;
            let mut uuid = [0u8; 16];
            uuid.copy_from_slice(&raw[at..at + 16]);
            let state = member_state_from_code(u32_at(raw, at + 16))?;
            members.push(TableMember { pool_uuid: Uuid(uuid), state });
        }
        let mut quarantine = Vec::with_capacity(quarantine_count);
        for i in 0..quarantine_count {
            let at = OFF_QUARANTINE + i * QUARANTINE_BYTES;
            let member = u8::try_from(u32_at(raw, at)).ok()?;
            let (offset, len) = (u64_at(raw, at + 8), u64_at(raw, at + 16));
            offset.checked_add(len)?;
            quarantine.push(Quarantined { member: MemberId(member), offset, len });
        }
        Some(Self { generation, set_uuid: Uuid(set_uuid), members, quarantine })
    }

    /// Read both slots of `medium` and take the valid one with the higher generation; `None`
    /// if neither is valid (or both are poisoned).
    pub fn read(medium: &dyn Medium) -> Option<Self> {
        let mut best: Option<Self> = None;
        for slot in 0..TABLE_SLOT_OFFSETS.len() {
            if let Some(table) = Self::read_slot(medium, slot)
                && best.as_ref().is_none_or(|b| table.generation > b.generation)
            {
                best = Some(table);
            }
        }
        best
    }

    /// Slot `slot` of `medium`, if it reads clean and is a valid table of that slot.
    fn read_slot(medium: &dyn Medium, slot: usize) -> Option<Self> {
        let mut bytes = vec![0u8; TABLE_BYTES];
        let mut register = ErrorRegister::deferred();
        let read = medium.read(TABLE_SLOT_OFFSETS[slot], &mut bytes, &mut register, Domain::Engine);
        (read.is_ok() && register.is_clean()).then(|| Self::decode(&bytes, slot)).flatten()
    }

    /// Why a slot of `primary` may hold a generation newer than `newest` (the newest valid
    /// table any member holds), or `None` if neither can. Every table update writes the primary
    /// (a replica that misses one is stale, or the update was cut short by a crash), so the
    /// primary's slots hold its two latest generations, consecutive. A slot that does not
    /// decode — poisoned, its poison cleared, a torn update — may have held the newest: the one
    /// that marked a failing replica stale, and the older table would call in sync a replica
    /// that missed acknowledged writes. It cannot when the primary's other slot decodes to an
    /// older generation than `newest` (the damaged one then holds at most `newest`), or when a
    /// copy of its generation (header line, trailer line) still reads clean and none is above
    /// `newest`'s, or when what reads clean of those lines is zeros (a slot never written; a
    /// torn write that reached neither copy line is one no update returned from).
    pub fn newer_on_primary_may_be_lost(primary: &dyn Medium, newest: &Self) -> Option<String> {
        let decoded: Vec<Option<Self>> =
            (0..TABLE_SLOT_OFFSETS.len()).map(|slot| Self::read_slot(primary, slot)).collect();
        for (slot, &offset) in TABLE_SLOT_OFFSETS.iter().enumerate() {
            let other = decoded[1 - slot].as_ref();
            if decoded[slot].is_some() || other.is_some_and(|t| t.generation < newest.generation) {
                continue;
            }
            let (generations, blank) = generation_copies(primary, offset, &newest.set_uuid);
            let lost = match generations.iter().max() {
                Some(&generation) => generation > newest.generation,
                None => !blank,
            };
            if lost {
                return Some(format!(
                    "table slot {slot} is damaged and may have held a generation above {}",
                    newest.generation
                ));
            }
        }
        None
    }

    /// Write the next generation to the other slot, flush, fence [`TABLE_WRITE`].
    pub fn write(&mut self, medium: &dyn Medium) -> mcstore_pmem::Result<()> {
        self.generation += 1;
        let offset = TABLE_SLOT_OFFSETS[self.slot()];
        let bytes = self.encode();
        // PERSIST: the other slot keeps the previous generation until TABLE_WRITE.
        let written = medium
            .write(offset, &bytes)
            .and_then(|()| medium.flush(offset, bytes.len() as u64))
            .and_then(|()| medium.fence(TABLE_WRITE));
        if written.is_err() {
            self.generation -= 1;
        }
        written
    }
}

#[cfg(test)]
mod tests {
    use mcstore_pmem::SimMedium;

    use super::*;

    fn sample() -> SetTable {
        SetTable {
            generation: 4,
            set_uuid: Uuid([9; 16]),
            members: vec![
                TableMember { pool_uuid: Uuid([1; 16]), state: MemberState::InSync },
                TableMember { pool_uuid: Uuid([2; 16]), state: MemberState::Stale },
            ],
            quarantine: vec![Quarantined { member: MemberId(1), offset: 1 << 20, len: 4096 }],
        }
    }

    #[test]
    fn round_trips_in_its_slot_and_detects_flips() {
        let table = sample();
        let bytes = table.encode();
        assert_eq!(SetTable::decode(&bytes, 0), Some(table.clone()));
        assert_eq!(SetTable::decode(&bytes, 1), None);
        for at in [0, 9, 20, 70, 460, 4000, 4090] {
            let mut bad = bytes.clone();
            bad[at] ^= 0x10;
            assert_eq!(SetTable::decode(&bad, 0), None, "flip at {at}");
        }
    }

    #[test]
    fn updates_alternate_slots_and_the_newest_valid_wins() {
        let medium = SimMedium::new(64 << 10);
        assert_eq!(SetTable::read(&medium), None);
        let mut table = sample();
        table.write(&medium).unwrap();
        table.members[1].state = MemberState::InSync;
        table.write(&medium).unwrap();
        assert_eq!(SetTable::read(&medium), Some(table.clone()));
        // Poison on the newest slot: the previous generation is what remains readable.
        medium.inject_poison(TABLE_SLOT_OFFSETS[table.slot()], 64).unwrap();
        let older = SetTable::read(&medium).unwrap();
        assert_eq!(older.generation, table.generation - 1);
        assert_eq!(older.members[1].state, MemberState::Stale);
    }
}
