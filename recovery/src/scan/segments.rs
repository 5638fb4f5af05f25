//! Classifying each segment from its header line and committed-tail word.
//!
//! Free (all-zero header, or a torn header over an empty tail: a crash inside
//! `pool::init_segment`), in use (valid header of this set at its own position, a sequence that
//! was issued, a tail word that verifies), or damaged (anything else: listed, never guessed at).

use mcstore_pmem::{Domain, ErrorRegister, Fault, Medium};

use super::damage::{Damage, DamageKind};
use super::options::ScanOptions;
use crate::error::Result;
use crate::format::{
    Geometry, SEGMENT_DATA_OFFSET, SEGMENT_HEADER_BYTES, SEGMENT_TAIL_OFFSET, SegmentHeader,
    SegmentId, SegmentState, Superblock,
};

/// What a segment's header and tail say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Class {
    /// Never initialised or torn while being initialised: nothing committed.
    Free {
        /// The header was torn (not all zero) over an empty tail.
        torn_init: bool,
    },
    /// Initialised for this set; `tail` bytes of its data area are committed (`None`: the tail
    /// word is bad, and only a salvage walk may read records).
    InUse {
        /// Its sequence.
        seq: u64,
        /// Its state.
        state: SegmentState,
        /// Committed bytes, if the tail word verified.
        tail: Option<u64>,
    },
    /// Header unreadable or not ours; nothing in it can be trusted.
    Damaged,
}

/// The classification of one segment plus the damage found on the way.
pub(crate) struct Classified {
    pub(crate) class: Class,
    pub(crate) damage: Vec<Damage>,
    pub(crate) repaired: u64,
}

fn media_damage(faults: &[Fault], id: SegmentId, overflow: bool) -> Vec<Damage> {
    let mut out: Vec<Damage> = faults
        .iter()
        .map(|f| Damage {
            kind: DamageKind::Media,
            offset: f.offset,
            len: f.len,
            segment: Some(id),
            detail: "poison in the segment header or tail line".into(),
        })
        .collect();
    if overflow {
        out.push(Damage {
            kind: DamageKind::Media,
            offset: 0,
            len: 0,
            segment: Some(id),
            detail: "more faults than the error register holds".into(),
        });
    }
    out
}

fn read_lines(medium: &dyn Medium, at: u64) -> Result<([u8; 128], ErrorRegister)> {
    let mut lines = [0u8; SEGMENT_DATA_OFFSET as usize];
    let mut register = ErrorRegister::deferred();
    medium.read(at, &mut lines, &mut register, Domain::Engine)?;
    Ok((lines, register))
}

/// Read and classify segment `id`. Lines that read clean but do not verify (a header failing
/// its checks, a bad tail word) are healed from a replica when the caller has one, and classified
/// again: the re-read decides, so a replica with the same damage changes nothing.
pub(crate) fn classify(
    medium: &dyn Medium,
    g: &Geometry,
    sb: &Superblock,
    id: SegmentId,
    opts: &ScanOptions,
) -> Result<Classified> {
    let first = classify_once(medium, g, sb, id, opts)?;
    if first.damage.is_empty() || first.repaired > 0 {
        return Ok(first);
    }
    let Some(repairer) = &opts.repairer else { return Ok(first) };
    if !repairer.repair(g.segment_offset(id), SEGMENT_DATA_OFFSET) {
        return Ok(first);
    }
    let mut second = classify_once(medium, g, sb, id, opts)?;
    if second.damage.is_empty() {
        second.repaired += 1;
    }
    Ok(second)
}

fn classify_once(
    medium: &dyn Medium,
    g: &Geometry,
    sb: &Superblock,
    id: SegmentId,
    opts: &ScanOptions,
) -> Result<Classified> {
    let at = g.segment_offset(id);
    let whole = |kind: DamageKind, detail: String| Damage {
        kind,
        offset: at,
        len: g.segment_size_bytes,
        segment: Some(id),
        detail,
    };
    let (mut lines, mut register) = read_lines(medium, at)?;
    let mut repaired = 0;
    if !register.is_clean()
        && let Some(repairer) = &opts.repairer
        && repairer.repair(at, SEGMENT_DATA_OFFSET)
    {
        (lines, register) = read_lines(medium, at)?;
        if register.is_clean() {
            repaired = 1;
        }
    }
    if !register.is_clean() {
        // Zero-filled poison could pass for a free segment: never trust a faulted header.
        let damage = media_damage(register.faults(), id, register.overflowed());
        return Ok(Classified { class: Class::Damaged, damage, repaired });
    }
    let header = &lines[..SEGMENT_HEADER_BYTES as usize];
    let tail_at = SEGMENT_TAIL_OFFSET as usize;
    let word = u64::from_le_bytes(lines[tail_at..tail_at + 8].try_into().unwrap_or([0xff; 8]));
    let (class, damage) = match SegmentHeader::decode(header) {
        Ok(None) if word == 0 => (Class::Free { torn_init: false }, Vec::new()),
        Ok(None) => (
            Class::Free { torn_init: false },
            vec![Damage {
                kind: DamageKind::BadTail,
                offset: g.tail_offset(id),
                len: 8,
                segment: Some(id),
                detail: format!("tail word {word:#018x} in a segment with no header"),
            }],
        ),
        Err(_) if word == 0 => (Class::Free { torn_init: true }, Vec::new()),
        Err(e) => (Class::Damaged, vec![whole(DamageKind::BadSegmentHeader, e.to_string())]),
        Ok(Some(h)) if h.set_uuid != sb.set_uuid => (
            Class::Damaged,
            vec![whole(DamageKind::ForeignSegment, format!("header of set {}", h.set_uuid))],
        ),
        Ok(Some(h)) if h.id != id => (
            Class::Damaged,
            vec![whole(DamageKind::MisplacedSegment, format!("header of segment {}", h.id))],
        ),
        Ok(Some(h)) if h.seq > sb.highest_segment_seq => (
            Class::Damaged,
            vec![whole(
                DamageKind::StaleSegment,
                format!("sequence {} was never issued (highest {})", h.seq, sb.highest_segment_seq),
            )],
        ),
        Ok(Some(h)) => match g.committed_tail(word, h.seq, &sb.set_uuid) {
            Ok(tail) => (Class::InUse { seq: h.seq, state: h.state, tail: Some(tail) }, Vec::new()),
            Err(e) => (
                Class::InUse { seq: h.seq, state: h.state, tail: None },
                vec![whole(DamageKind::BadTail, format!("{e} (word {word:#018x}, seq {})", h.seq))],
            ),
        },
    };
    Ok(Classified { class, damage, repaired })
}
