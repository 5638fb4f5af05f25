//! Reading one segment's committed range and walking its records: verified records become
//! index entries, bad ranges and poison become damage (a bad range overlapping poison is `Media`).

use mcstore_pmem::{Domain, ErrorRegister, Fault, Medium};

use super::damage::{Damage, DamageKind};
use super::index::IndexEntry;
use super::records::walk;
use crate::error::Result;
use crate::format::Superblock;

/// The records and damage of one committed range.
pub(crate) struct Outcome {
    pub(crate) entries: Vec<IndexEntry>,
    pub(crate) damage: Vec<Damage>,
}

pub(crate) fn read_and_walk(
    medium: &dyn Medium,
    start: u64,
    len: u64,
    seq: u64,
    sb: &Superblock,
    salvage_walk: bool,
) -> Result<Outcome> {
    let mut buf = vec![0u8; usize::try_from(len).unwrap_or(0)];
    let mut register = ErrorRegister::deferred();
    medium.read(start, &mut buf, &mut register, Domain::Engine)?;
    let faults: Vec<Fault> = register.faults().to_vec();
    let mut entries = Vec::new();
    let mut bad: Vec<(u64, u64)> = Vec::new();
    walk(
        &buf,
        start,
        seq,
        &sb.set_uuid,
        salvage_walk,
        |rec, offset, len| {
            entries.push(IndexEntry {
                key: rec.key.into(),
                kind: rec.kind,
                lsn: rec.lsn,
                offset,
                len,
                segment_seq: seq,
            });
        },
        |offset, len| bad.push((offset, len)),
    );
    let overlaps = |f: &Fault, off: u64, len: u64| f.offset < off + len && off < f.end();
    let mut damage: Vec<Damage> = bad
        .iter()
        .map(|&(offset, len)| {
            let media = faults.iter().any(|f| overlaps(f, offset, len));
            Damage {
                kind: if media { DamageKind::Media } else { DamageKind::BadRecord },
                offset,
                len,
                segment: None,
                detail: if media {
                    "poisoned record(s) in the committed range".into()
                } else {
                    "record(s) failing verification in the committed range".into()
                },
            }
        })
        .collect();
    // Poison whose zero fill happened to leave a record valid is still bad media.
    for f in faults.iter().filter(|f| !bad.iter().any(|&(off, len)| overlaps(f, off, len))) {
        damage.push(Damage {
            kind: DamageKind::Media,
            offset: f.offset,
            len: f.len,
            segment: None,
            detail: "poison in the committed range (records still verify)".into(),
        });
    }
    if register.overflowed() {
        damage.push(Damage {
            kind: DamageKind::Media,
            offset: start,
            len,
            segment: None,
            detail: "more faults than the error register holds".into(),
        });
    }
    Ok(Outcome { entries, damage })
}
