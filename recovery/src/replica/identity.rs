//! Member-specific superblocks: every member's superblock carries its own pool uuid, member
//! index and state, so a superblock write or repair is re-encoded for each member, never
//! byte-copied. This is the `MemberRewrite` hook a replica set gives its `PoolSet`.
//!
//! INVARIANT: the rewrite changes only those three fields (and the checksum that covers them):
//! generation, geometry, sequences and flags are the primary's, so members stay in lockstep.

use mcstore_pmem::poolset::MemberRewrite;
use mcstore_pmem::{Error, MemberId, Result};
use parking_lot::RwLock;

use crate::format::{MemberState, SUPERBLOCK_BYTES, SUPERBLOCK_SLOT_OFFSETS, Superblock, Uuid};
use crate::limits::SUPERBLOCK_AREA_BYTES;

/// Who a member is: what its superblock must say about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Identity {
    pub(crate) pool_uuid: Uuid,
    pub(crate) state: MemberState,
}

/// The rewrite hook: the identity of every member, by index.
#[derive(Debug)]
pub struct SuperblockRewrite {
    members: RwLock<Vec<Identity>>,
}

fn refuse(what: String) -> Error {
    Error::io(what, std::io::Error::from(std::io::ErrorKind::InvalidData))
}

impl SuperblockRewrite {
    pub(crate) fn new(members: Vec<Identity>) -> Self {
        Self { members: RwLock::new(members) }
    }

    /// Record `member`'s state for the superblocks written from now on.
    pub(crate) fn set_state(&self, member: MemberId, state: MemberState) {
        if let Some(identity) = self.members.write().get_mut(usize::from(member.0)) {
            identity.state = state;
        }
    }

    /// `sb` as member `target` must hold it.
    pub(crate) fn for_member(&self, target: MemberId, sb: &Superblock) -> Result<Superblock> {
        let identity = self
            .members
            .read()
            .get(usize::from(target.0))
            .copied()
            .ok_or_else(|| refuse(format!("no identity for member {}", target.0)))?;
        Ok(Superblock {
            pool_uuid: identity.pool_uuid,
            member_index: u32::from(target.0),
            member_state: identity.state,
            ..sb.clone()
        })
    }
}

impl MemberRewrite for SuperblockRewrite {
    fn private_end(&self) -> u64 {
        SUPERBLOCK_AREA_BYTES
    }

    fn rewrite(&self, target: MemberId, offset: u64, bytes: &[u8]) -> Result<Vec<u8>> {
        let mut out = bytes.to_vec();
        let end = offset + bytes.len() as u64;
        for (slot, &slot_start) in SUPERBLOCK_SLOT_OFFSETS.iter().enumerate() {
            let slot_end = slot_start + SUPERBLOCK_BYTES as u64;
            if slot_end <= offset || end <= slot_start {
                continue;
            }
            if slot_start < offset || end < slot_end {
                return Err(refuse(format!(
                    "write [{offset}, {end}) covers part of superblock slot {slot}: \
                     it cannot be re-encoded for member {}",
                    target.0
                )));
            }
            let at = (slot_start - offset) as usize..(slot_end - offset) as usize;
            let raw = &bytes[at.clone()];
            if raw.iter().all(|&b| b == 0) {
                continue;
            }
            let sb = Superblock::decode(raw, slot)
                .map_err(|e| refuse(format!("superblock slot {slot} does not decode: {e}")))?;
            out[at].copy_from_slice(&self.for_member(target, &sb)?.encode());
        }
        Ok(out)
    }
}

/// A replica whose superblock slots are poisoned and none of them decodes (it was given, but
/// reads as "no readable superblock"): rewrite its superblock from `sb` (the reference
/// member's, re-encoded with this member's identity) through `Medium::repair`, which clears the
/// poison; the other slot, if poisoned, is zeroed the same way. Only poison is healed — a slot
/// that reads clean but does not decode is not this set's, and stays refused. Whether it was
/// rewritten; `false` leaves the member as it was (the open then reports it missing).
pub(crate) fn heal_poisoned_superblock(medium: &dyn mcstore_pmem::Medium, sb: &Superblock) -> bool {
    let poisoned: Vec<bool> = SUPERBLOCK_SLOT_OFFSETS
        .iter()
        .map(|&offset| {
            let mut bytes = [0u8; SUPERBLOCK_BYTES];
            let mut register = mcstore_pmem::ErrorRegister::deferred();
            medium.read(offset, &mut bytes, &mut register, mcstore_pmem::Domain::Engine).is_ok()
                && !register.is_clean()
        })
        .collect();
    if !poisoned.iter().any(|&p| p) {
        return false;
    }
    let current = sb.slot();
    // PERSIST: `repair` persists what it writes before it returns; the current slot first, so
    // a crash between the two leaves a decodable superblock.
    if medium.repair(SUPERBLOCK_SLOT_OFFSETS[current], &sb.encode()).is_err() {
        return false;
    }
    let other = 1 - current;
    !poisoned[other]
        || medium.repair(SUPERBLOCK_SLOT_OFFSETS[other], &[0u8; SUPERBLOCK_BYTES]).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::superblock::tests::sample;

    fn hook() -> SuperblockRewrite {
        SuperblockRewrite::new(vec![
            Identity { pool_uuid: Uuid([0xa0; 16]), state: MemberState::InSync },
            Identity { pool_uuid: Uuid([0xa1; 16]), state: MemberState::Resilvering },
        ])
    }

    #[test]
    fn a_slot_is_re_encoded_with_the_targets_identity_only() {
        let sb = sample(3); // slot 1
        let page = {
            let mut page = vec![0u8; 4096];
            page[..SUPERBLOCK_BYTES].copy_from_slice(&sb.encode());
            page[300] = 7; // bytes beyond the slot are copied as they are
            page
        };
        let out = hook().rewrite(MemberId(1), 4096, &page).unwrap();
        let back = Superblock::decode(&out[..SUPERBLOCK_BYTES], 1).unwrap();
        let expected = Superblock {
            pool_uuid: Uuid([0xa1; 16]),
            member_index: 1,
            member_state: MemberState::Resilvering,
            ..sb.clone()
        };
        assert_eq!(back, expected);
        assert_eq!(out[300], 7);
        // Pages without a slot, and zeroed slots, pass unchanged.
        assert_eq!(hook().rewrite(MemberId(1), 0, &[0u8; 4096]).unwrap(), vec![0u8; 4096]);
    }

    #[test]
    fn partial_or_undecodable_slots_are_refused() {
        let bytes = sample(2).encode();
        assert!(hook().rewrite(MemberId(1), 0, &bytes[..100]).is_err());
        let mut bad = bytes;
        bad[20] ^= 1;
        assert!(hook().rewrite(MemberId(1), 0, &bad).is_err());
        assert!(hook().rewrite(MemberId(5), 0, &sample(2).encode()).is_err());
    }
}
