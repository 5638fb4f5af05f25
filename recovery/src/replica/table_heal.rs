//! Healing the set-state table's slots at open, before anything writes them.
//!
//! INVARIANT: a store into a poisoned page is refused on both media, and the primary's refusal
//! is the operation's; so before the open persists member states, every poisoned table slot of
//! every member not stale is rewritten: copied from a member whose copy reads clean (the slot
//! holding the chosen generation must decode to the chosen table), else rewritten logically
//! through `Medium::repair` — the chosen table's bytes in its own slot, zeros in the other one
//! (an empty slot is a valid "no older generation").

use mcstore_pmem::poolset::HealOutcome;
use mcstore_pmem::{Domain, ErrorRegister, MemberId};

use super::set::{ReplicaSet, Result};
use super::table::{SetTable, TABLE_BYTES, TABLE_SLOT_OFFSETS};
use crate::format::MemberState;

/// How a poisoned table slot was made good.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TableSlotHeal {
    /// Copied from another member (counted in the set's repair statistics).
    Copied {
        /// The source member.
        from: MemberId,
    },
    /// No member held good bytes: rewritten from the chosen table (its slot) or zeroed.
    Rewritten,
}

/// One healed slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealedTableSlot {
    /// The member whose slot was poisoned.
    pub member: MemberId,
    /// The slot's pool offset.
    pub offset: u64,
    /// How it was healed.
    pub how: TableSlotHeal,
}

impl ReplicaSet {
    /// Heal every poisoned table slot of every member not stale (see the module docs). An error
    /// only when a slot could be neither copied nor rewritten.
    pub(super) fn heal_table_slots(&self) -> Result<Vec<HealedTableSlot>> {
        let table = self.table.lock().clone();
        let mut healed = Vec::new();
        for index in 0..self.poolset.member_count() {
            let member = MemberId(index as u8);
            if self.poolset.state(member) == MemberState::Stale {
                continue;
            }
            for (slot, &offset) in TABLE_SLOT_OFFSETS.iter().enumerate() {
                if !self.slot_poisoned(member, offset) {
                    continue;
                }
                let how = self.heal_table_slot(member, slot, offset, &table)?;
                healed.push(HealedTableSlot { member, offset, how });
            }
        }
        Ok(healed)
    }

    fn slot_poisoned(&self, member: MemberId, offset: u64) -> bool {
        let mut bytes = vec![0u8; TABLE_BYTES];
        let mut register = ErrorRegister::deferred();
        // A read error (a member shorter than the slot) is not poison: the write reports it.
        self.poolset.read_member(member, offset, &mut bytes, &mut register, Domain::Engine).is_ok()
            && !register.is_clean()
    }

    fn heal_table_slot(
        &self,
        member: MemberId,
        slot: usize,
        offset: u64,
        table: &SetTable,
    ) -> Result<TableSlotHeal> {
        let current = slot == table.slot();
        // The chosen generation's slot must decode to the chosen table; the other slot holds an
        // older generation or nothing, and either is acceptable there.
        let verify =
            |bytes: &[u8]| !current || SetTable::decode(bytes, slot).as_ref() == Some(table);
        let outcome = self.poolset.heal(member, offset, TABLE_BYTES as u64, &verify)?;
        if let HealOutcome::Healed { from, .. } = outcome {
            return Ok(TableSlotHeal::Copied { from });
        }
        let bytes = if current { table.encode() } else { vec![0u8; TABLE_BYTES] };
        // PERSIST: `repair` persists the page (pwrite + fdatasync, or write + flush + fence
        // `pmem.repair`) before the table write that follows may fence over it.
        self.poolset.medium(member).repair(offset, &bytes)?;
        Ok(TableSlotHeal::Rewritten)
    }
}
