//! Walking the records of one segment's committed range (already read into a buffer).
//!
//! Every record is verified against its own offset, the segment's sequence and the set uuid.
//! A record that does not verify starts a damaged range that runs to the next 8-aligned offset
//! where a record verifies (or to the end): damage is bounded, later records are kept.
//! INVARIANT: `pos` grows by ≥ 8 per step, so the walk ends after at most len/8 steps.

use crate::format::record::verify_decoded;
use crate::format::{RECORD_HEADER_BYTES, RecordContext, RecordRef, Uuid, decode_header};

/// The record at `pos` of `buf` (whose first byte is at pool offset `base`), if it verifies and
/// ends within the buffer. Returns it with its encoded length.
fn record_at<'a>(
    buf: &'a [u8],
    base: u64,
    pos: usize,
    seq: u64,
    uuid: &Uuid,
) -> Option<(RecordRef<'a>, usize)> {
    let bytes = buf.get(pos..)?;
    let header = decode_header(bytes).ok()?;
    let len = usize::try_from(header.encoded_len()).ok()?;
    if len > bytes.len() {
        return None;
    }
    let ctx = RecordContext { offset: base + pos as u64, segment_seq: seq, set_uuid: *uuid };
    verify_decoded(bytes, &header, &ctx).ok().map(|rec| (rec, len))
}

/// Walk `buf`: call `on_record(record, pool offset, encoded len)` for each verified record and
/// `on_bad(pool offset, len)` for each damaged range. With `stop_at_bad`, the walk ends at the
/// first bad record instead (a salvage walk under a bad tail word: what follows is not known to
/// be committed).
pub(crate) fn walk(
    buf: &[u8],
    base: u64,
    seq: u64,
    uuid: &Uuid,
    stop_at_bad: bool,
    mut on_record: impl FnMut(RecordRef<'_>, u64, u32),
    mut on_bad: impl FnMut(u64, u64),
) {
    let mut pos = 0usize;
    while pos + RECORD_HEADER_BYTES <= buf.len() {
        if let Some((rec, len)) = record_at(buf, base, pos, seq, uuid) {
            on_record(rec, base + pos as u64, u32::try_from(len).unwrap_or(u32::MAX));
            pos += len;
            continue;
        }
        if stop_at_bad {
            return;
        }
        let bad_start = pos;
        pos += 8;
        while pos + RECORD_HEADER_BYTES <= buf.len()
            && record_at(buf, base, pos, seq, uuid).is_none()
        {
            pos += 8;
        }
        if pos + RECORD_HEADER_BYTES > buf.len() {
            pos = buf.len();
        }
        on_bad(base + bad_start as u64, (pos - bad_start) as u64);
    }
    if pos < buf.len() && !stop_at_bad {
        // Fewer bytes than a header left inside the committed range: the tail points into a
        // record, which a valid tail never does.
        on_bad(base + pos as u64, (buf.len() - pos) as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{Lsn, RecordKind, encode_record};

    const UUID: Uuid = Uuid([4; 16]);
    const BASE: u64 = 1 << 20;

    fn log(n: usize) -> (Vec<u8>, Vec<u64>) {
        let mut buf = Vec::new();
        let mut offsets = Vec::new();
        for i in 0..n {
            let ctx =
                RecordContext { offset: BASE + buf.len() as u64, segment_seq: 3, set_uuid: UUID };
            offsets.push(ctx.offset);
            let value = vec![i as u8; 10 + i * 7];
            encode_record(
                &mut buf,
                RecordKind::Put,
                Lsn(i as u64 + 1),
                format!("k{i}").as_bytes(),
                &value,
                &ctx,
            );
        }
        (buf, offsets)
    }

    fn run(buf: &[u8], stop: bool) -> (Vec<u64>, Vec<(u64, u64)>) {
        let (mut good, mut bad) = (Vec::new(), Vec::new());
        walk(
            buf,
            BASE,
            3,
            &UUID,
            stop,
            |_, off, _| good.push(off),
            |off, len| bad.push((off, len)),
        );
        (good, bad)
    }

    #[test]
    fn clean_log_yields_every_record() {
        let (buf, offsets) = log(6);
        assert_eq!(run(&buf, false), (offsets, vec![]));
    }

    #[test]
    fn damage_is_bounded_and_later_records_survive() {
        let (mut buf, offsets) = log(6);
        buf[(offsets[2] - BASE) as usize + 40] ^= 0x10;
        let (good, bad) = run(&buf, false);
        assert_eq!(good, [&offsets[..2], &offsets[3..]].concat());
        assert_eq!(bad, vec![(offsets[2], offsets[3] - offsets[2])]);
        let (good, bad) = run(&buf, true);
        assert_eq!((good, bad), (offsets[..2].to_vec(), vec![]));
    }

    #[test]
    fn garbage_and_partial_tails_are_bad_ranges() {
        let (mut buf, offsets) = log(3);
        let end = buf.len() as u64;
        buf.extend_from_slice(&[0xab; 20]);
        let (good, bad) = run(&buf, false);
        assert_eq!(good, offsets);
        assert_eq!(bad, vec![(BASE + end, 20)]);
        let zeros = vec![0u8; 4096];
        let (good, bad) = run(&zeros, false);
        assert!(good.is_empty());
        assert_eq!(bad, vec![(BASE, 4096)]);
    }
}
