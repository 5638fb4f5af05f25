//! Choosing the superblock: the valid slot with the higher generation.
//!
//! A slot that fails its checksum is a torn update: the other slot is taken. A slot the read
//! found *poisoned* may have been the newer one, so it is damage: `Err(Damaged)` unless the caller
//! salvages (or a repairer fixes it), never a silent roll-back to the older slot.

use mcstore_pmem::{Domain, ErrorRegister, Medium};

use super::damage::{Damage, DamageKind};
use super::options::ScanOptions;
use super::report::RecoveryReport;
use crate::error::{Error, Result, UnsupportedReason};
use crate::format::{FormatError, SUPERBLOCK_BYTES, SUPERBLOCK_SLOT_OFFSETS, Superblock};
use crate::limits::SUPERBLOCK_AREA_BYTES;

/// What one slot held.
enum Slot {
    Valid(Superblock),
    Invalid(FormatError),
    Poisoned,
}

/// The chosen superblock.
pub(crate) struct Chosen {
    pub(crate) superblock: Superblock,
    pub(crate) slot: usize,
    pub(crate) damage: Vec<Damage>,
    pub(crate) repaired: u64,
}

fn read_slot(medium: &dyn Medium, slot: usize) -> Result<Slot> {
    let mut bytes = vec![0u8; SUPERBLOCK_BYTES];
    let mut register = ErrorRegister::deferred();
    medium.read(SUPERBLOCK_SLOT_OFFSETS[slot], &mut bytes, &mut register, Domain::Engine)?;
    if !register.is_clean() {
        return Ok(Slot::Poisoned);
    }
    Ok(Superblock::decode(&bytes, slot).map_or_else(Slot::Invalid, Slot::Valid))
}

fn slot_damage(slot: usize, detail: &str) -> Damage {
    Damage {
        kind: DamageKind::SuperblockSlot,
        offset: SUPERBLOCK_SLOT_OFFSETS[slot],
        len: SUPERBLOCK_BYTES as u64,
        segment: None,
        detail: format!("slot {}: {detail}", if slot == 0 { 'A' } else { 'B' }),
    }
}

/// Read both slots and choose; see the module docs.
pub(crate) fn choose(medium: &dyn Medium, opts: &ScanOptions) -> Result<Chosen> {
    if medium.len() < SUPERBLOCK_AREA_BYTES {
        return Err(Error::Format(FormatError::Truncated {
            what: "pool",
            needed: SUPERBLOCK_AREA_BYTES,
            got: medium.len(),
        }));
    }
    let mut repaired = 0;
    let mut slots = Vec::with_capacity(2);
    for (slot, &offset) in SUPERBLOCK_SLOT_OFFSETS.iter().enumerate() {
        let mut read = read_slot(medium, slot)?;
        if matches!(read, Slot::Poisoned)
            && let Some(repairer) = &opts.repairer
            && repairer.repair(offset, SUPERBLOCK_BYTES as u64)
        {
            read = read_slot(medium, slot)?;
            if !matches!(read, Slot::Poisoned) {
                repaired += 1;
            }
        }
        slots.push(read);
    }
    // A newer or incompatible format in either slot: refuse, whatever the other holds.
    for read in &slots {
        match read {
            Slot::Invalid(FormatError::UnsupportedVersion { found, supported }) => {
                return Err(Error::UnsupportedFormat {
                    reason: UnsupportedReason::NewerVersion {
                        found: *found,
                        supported: *supported,
                    },
                });
            }
            Slot::Invalid(FormatError::UnknownIncompatFeatures { flags }) => {
                return Err(Error::UnsupportedFormat {
                    reason: UnsupportedReason::UnknownIncompat { flags: *flags },
                });
            }
            _ => {}
        }
    }
    let damaged = |damage: Vec<Damage>| {
        let report = RecoveryReport {
            damage_found: damage.len() as u64 + repaired,
            damage_repaired: repaired,
            lost_ranges: damage.iter().map(|d| (d.offset, d.len)).collect(),
            damage,
            mode: opts.mode.clone(),
            ..RecoveryReport::default()
        };
        Error::Damaged(Box::new(report))
    };
    let mut slots = slots.into_iter();
    let (a, b) = (slots.next(), slots.next());
    match (a, b) {
        (Some(Slot::Valid(a)), Some(Slot::Valid(b))) => {
            if a.set_uuid != b.set_uuid || a.pool_uuid != b.pool_uuid {
                return Err(Error::Corrupt {
                    reason: format!(
                        "superblock slots belong to different pools (A: {}/{}, B: {}/{})",
                        a.set_uuid, a.pool_uuid, b.set_uuid, b.pool_uuid
                    ),
                });
            }
            let (superblock, slot) = if a.generation > b.generation { (a, 0) } else { (b, 1) };
            Ok(Chosen { superblock, slot, damage: Vec::new(), repaired })
        }
        (Some(Slot::Valid(sb)), Some(Slot::Invalid(_))) => {
            Ok(Chosen { superblock: sb, slot: 0, damage: Vec::new(), repaired })
        }
        (Some(Slot::Invalid(_)), Some(Slot::Valid(sb))) => {
            Ok(Chosen { superblock: sb, slot: 1, damage: Vec::new(), repaired })
        }
        (Some(Slot::Valid(sb)), Some(Slot::Poisoned))
        | (Some(Slot::Poisoned), Some(Slot::Valid(sb))) => {
            let (slot, bad) = if sb.slot() == 0 { (0, 1) } else { (1, 0) };
            let damage = vec![slot_damage(bad, "poisoned; it may hold the newer generation")];
            if opts.salvage {
                Ok(Chosen { superblock: sb, slot, damage, repaired })
            } else {
                Err(damaged(damage))
            }
        }
        (
            Some(Slot::Invalid(FormatError::BadMagic { .. })),
            Some(Slot::Invalid(FormatError::BadMagic { .. })),
        ) => Err(Error::UnsupportedFormat { reason: UnsupportedReason::BadMagic }),
        (Some(Slot::Invalid(a)), Some(Slot::Invalid(b))) => {
            Err(Error::Corrupt { reason: format!("both superblock slots invalid: A: {a}; B: {b}") })
        }
        (a, b) => {
            let mut damage = Vec::new();
            for (slot, read) in [a, b].into_iter().enumerate() {
                match read {
                    Some(Slot::Poisoned) => damage.push(slot_damage(slot, "poisoned")),
                    Some(Slot::Invalid(e)) => damage.push(slot_damage(slot, &e.to_string())),
                    _ => {}
                }
            }
            Err(damaged(damage))
        }
    }
}

#[cfg(test)]
mod tests {
    use mcstore_pmem::{Medium, MemberId, SimMedium};

    use super::*;
    use crate::format::FORMAT_VERSION;
    use crate::pool::write_superblock;
    use crate::testing::new_pool;

    fn pick(medium: &dyn Medium, salvage: bool) -> Result<Chosen> {
        choose(medium, &ScanOptions { salvage, ..ScanOptions::default() })
    }

    /// A pool whose slot A holds generation 2 and slot B generation 1.
    fn pool() -> (SimMedium, Superblock) {
        let (medium, mut sb) = new_pool(2);
        sb.opener_pid = 77;
        write_superblock(&medium, &mut sb).unwrap();
        (medium, sb)
    }

    #[test]
    fn newest_valid_slot_wins() {
        let (medium, sb) = pool();
        let chosen = pick(&medium, false).unwrap();
        assert_eq!(
            (chosen.slot, chosen.superblock.generation, chosen.superblock.opener_pid),
            (0, 2, 77)
        );
        assert_eq!(chosen.superblock, sb);
    }

    #[test]
    fn torn_newer_slot_falls_back_to_the_older() {
        let (medium, _) = pool();
        medium.write(100, &[0x13; 8]).unwrap();
        let chosen = pick(&medium, false).unwrap();
        assert_eq!((chosen.slot, chosen.superblock.generation), (1, 1));
        assert!(chosen.damage.is_empty());
    }

    #[test]
    fn poisoned_slot_is_damage_unless_salvaged() {
        let (medium, _) = pool();
        medium.inject_poison(0, 64).unwrap();
        match pick(&medium, false) {
            Err(Error::Damaged(report)) => {
                assert_eq!(report.damage.len(), 1);
                assert_eq!(report.damage[0].kind, DamageKind::SuperblockSlot);
                assert_eq!(report.damage[0].offset, 0);
            }
            other => panic!("expected Damaged, got {:?}", other.map(|c| c.slot)),
        }
        let chosen = pick(&medium, true).unwrap();
        assert_eq!((chosen.slot, chosen.superblock.generation, chosen.damage.len()), (1, 1, 1));
        // Poison on the older slot is just as undecidable: the poisoned one might be newer.
        let (medium, _) = pool();
        medium.inject_poison(4096, 64).unwrap();
        assert!(matches!(pick(&medium, false), Err(Error::Damaged(_))));
    }

    #[test]
    fn both_slots_bad_is_corrupt_and_zeroed_is_not_a_pool() {
        let (medium, _) = pool();
        medium.write(100, &[1; 8]).unwrap();
        medium.write(4096 + 100, &[1; 8]).unwrap();
        assert!(matches!(pick(&medium, false), Err(Error::Corrupt { .. })));
        let zeroed = SimMedium::new(1 << 20);
        assert!(matches!(
            pick(&zeroed, false),
            Err(Error::UnsupportedFormat { reason: UnsupportedReason::BadMagic })
        ));
    }

    #[test]
    fn swapped_slots_do_not_validate() {
        let (medium, _) = pool();
        let mut image = medium.visible_image();
        let (a, b) = image.split_at_mut(4096);
        a[..SUPERBLOCK_BYTES].swap_with_slice(&mut b[..SUPERBLOCK_BYTES]);
        let swapped = SimMedium::from_image(image, MemberId(0));
        assert!(matches!(pick(&swapped, false), Err(Error::Corrupt { .. })));
    }

    #[test]
    fn newer_version_or_unknown_incompat_is_unsupported() {
        // A slot whose version field alone reads higher fails its checksum: damage or a torn
        // update, so the other slot is taken. A newer pool's slot verifies.
        let (medium, _) = pool();
        let mut slot = [0u8; SUPERBLOCK_BYTES];
        medium.read(0, &mut slot, &mut ErrorRegister::deferred(), Domain::Engine).unwrap();
        slot[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
        medium.write(0, &slot).unwrap();
        assert!(pick(&medium, false).is_ok());
        let sum = crate::format::checksum::hash64(&slot[..SUPERBLOCK_BYTES - 8]);
        slot[SUPERBLOCK_BYTES - 8..].copy_from_slice(&sum.to_le_bytes());
        medium.write(0, &slot).unwrap();
        assert!(matches!(
            pick(&medium, false),
            Err(Error::UnsupportedFormat { reason: UnsupportedReason::NewerVersion { .. } })
        ));
        let (medium, mut sb) = pool();
        sb.features.incompat = 1 << 9;
        write_superblock(&medium, &mut sb).unwrap();
        assert!(matches!(
            pick(&medium, false),
            Err(Error::UnsupportedFormat {
                reason: UnsupportedReason::UnknownIncompat { flags: 512 }
            })
        ));
    }

    #[test]
    fn truncated_pool_is_an_error() {
        let small = SimMedium::new(4096);
        assert!(matches!(pick(&small, false), Err(Error::Format(FormatError::Truncated { .. }))));
    }
}
