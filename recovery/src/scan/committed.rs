//! Reading segments' committed ranges and walking their records: verified records become index
//! entries, bad ranges and poison become damage (a bad range overlapping poison is `Media`).
//! Several ranges are walked on several threads, each reusing one buffer; results keep order.

use mcstore_pmem::{Domain, ErrorRegister, Fault, Medium};
use parking_lot::Mutex;

use super::damage::{Damage, DamageKind};
use super::index::{Located, Part};
use super::records::walk;
use crate::error::Result;
use crate::format::{Lsn, Superblock};

/// The records and damage of one committed range.
pub(crate) struct Outcome {
    /// Records verified in it.
    pub(crate) records: u64,
    /// The highest LSN among them.
    pub(crate) max_lsn: Option<Lsn>,
    /// Its entries, when the range had damage (a repair may replace them with a second walk's);
    /// a clean range's entries went to the sink.
    pub(crate) entries: Option<Part>,
    pub(crate) damage: Vec<Damage>,
}

/// What one walking thread keeps from batch to batch: its read buffer and its entry scratch, so
/// neither faults in fresh pages again (a first touch costs ~1 ms per MB here).
#[derive(Debug)]
pub(crate) struct Walker {
    buf: Vec<u8>,
    scratch: Part,
}

impl Walker {
    /// A walker with nothing allocated yet.
    pub(crate) fn new() -> Self {
        Walker { buf: Vec::new(), scratch: Part::new() }
    }
}

/// One committed range to walk.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Job {
    /// Pool offset of its first byte.
    pub(crate) start: u64,
    /// Committed bytes.
    pub(crate) len: u64,
    /// The segment's sequence.
    pub(crate) seq: u64,
    /// Stop at the first bad record (a segment whose tail word is bad).
    pub(crate) salvage_walk: bool,
}

/// Threads that walk at most; below `PARALLEL_WALK_MIN_BYTES` in all, the caller's thread alone.
pub(crate) const WALK_THREADS_MAX: usize = 4;
const PARALLEL_WALK_MIN_BYTES: u64 = 8 << 20;

/// Walk every job, a share of them on each of `walkers` (their number is the thread count at
/// most); outcomes in job order. The entries of a clean range are appended to `sink` (in no
/// particular order: the sort orders them), so they are copied once, from a warm scratch.
pub(crate) fn walk_all(
    medium: &dyn Medium,
    jobs: &[Job],
    sb: &Superblock,
    walkers: &mut [Walker],
    sink: &Mutex<Part>,
) -> Result<Vec<Outcome>> {
    let total: u64 = jobs.iter().map(|j| j.len).sum();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(walkers.len())
        .min(jobs.len());
    let walk = |chunk: &[Job], walker: &mut Walker| -> Result<Vec<Outcome>> {
        chunk
            .iter()
            .map(|job| {
                let Walker { buf, scratch } = walker;
                let mut outcome = read_and_walk(medium, buf, job, sb, scratch)?;
                if outcome.damage.is_empty() {
                    sink.lock().append(scratch);
                } else {
                    outcome.entries = Some(std::mem::replace(scratch, Part::new()));
                }
                Ok(outcome)
            })
            .collect()
    };
    let Some(first) = walkers.first_mut() else { return Ok(Vec::new()) };
    if threads <= 1 || total < PARALLEL_WALK_MIN_BYTES {
        return walk(jobs, first);
    }
    let per = jobs.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = jobs
            .chunks(per)
            .zip(walkers.iter_mut())
            .map(|(chunk, walker)| scope.spawn(move || walk(chunk, walker)))
            .collect();
        let mut out = Vec::with_capacity(jobs.len());
        for handle in handles {
            match handle.join() {
                Ok(outcomes) => out.extend(outcomes?),
                // The walk does not panic (untrusted input returns errors); if it did, the
                // panic is the caller's, as it would be on one thread.
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        Ok(out)
    })
}

/// Read one committed range into `buf` (reused: it grows, it is not zero-filled again) and walk
/// it, its entries into `entries` (emptied first).
pub(crate) fn read_and_walk(
    medium: &dyn Medium,
    buf: &mut Vec<u8>,
    job: &Job,
    sb: &Superblock,
    entries: &mut Part,
) -> Result<Outcome> {
    let &Job { start, len, seq, salvage_walk } = job;
    buf.resize(usize::try_from(len).unwrap_or(0), 0);
    let mut register = ErrorRegister::deferred();
    medium.read(start, buf, &mut register, Domain::Engine)?;
    let buf = &buf[..];
    let faults: Vec<Fault> = register.faults().to_vec();
    entries.clear();
    let mut max_lsn = None;
    let mut bad: Vec<(u64, u64)> = Vec::new();
    walk(
        buf,
        start,
        seq,
        &sb.set_uuid,
        salvage_walk,
        |rec, offset, len| {
            max_lsn = max_lsn.max(Some(rec.lsn));
            let located = Located { kind: rec.kind, lsn: rec.lsn, offset, len, segment_seq: seq };
            entries.push(rec.key, located);
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
    Ok(Outcome { records: entries.len() as u64, max_lsn, entries: None, damage })
}
