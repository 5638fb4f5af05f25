//! The index snapshot a clean shutdown leaves beside the pool (`<pool>.index`), and the segment
//! marks that bind it to the log: the fast open loads it instead of walking every record.
//!
//! INVARIANT: a snapshot is used only when the log is exactly as it was when the snapshot was
//! taken — every in-use segment's (id, sequence, committed tail) equal to the marks it carries
//! (an append moves a tail, a reclaim or re-initialisation changes a sequence) — and every entry
//! lies inside the committed range of the segment of its sequence. Decoding treats the file as
//! untrusted: a checksum over all of it, bounds on every count; any doubt means the full scan.

use std::path::{Path, PathBuf};

use mcstore_pmem::{Domain, ErrorRegister, Medium};

use super::index::IndexEntry;
use super::key::EntryKey;
use crate::error::Result;
use crate::format::checksum::hash64;
use crate::format::{
    Geometry, Lsn, RecordKind, SEGMENT_DATA_OFFSET, SEGMENT_TAIL_OFFSET, SegmentHeader, SegmentId,
    Uuid,
};

/// The snapshot file's magic (bytes 0..8).
pub const SNAPSHOT_MAGIC: [u8; 8] = *b"MCSTIDX1";
const HEADER_BYTES: usize = 56;
const MARK_BYTES: usize = 24;
const ENTRY_FIXED_BYTES: usize = 32;

/// One in-use segment as the log stood when the snapshot was taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct SegmentMark {
    /// The segment's position.
    pub id: SegmentId,
    /// Its sequence.
    pub seq: u64,
    /// Its committed tail (bytes of its data area).
    pub tail: u64,
}

/// A decoded snapshot: the live keys (puts only, sorted by key) and what binds them to the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexSnapshot {
    /// The replica set whose log it describes.
    pub set_uuid: Uuid,
    /// Every LSN the store issued is below this.
    pub next_lsn: Lsn,
    /// Every in-use segment, by id.
    pub marks: Vec<SegmentMark>,
    /// The live keys, strictly ascending.
    pub entries: Vec<IndexEntry>,
}

/// Read every segment's header and tail lines and mark those in use. `Err` text when a segment
/// cannot be marked (poison, a header or tail that does not verify): then no snapshot is taken.
pub fn segment_marks(
    medium: &dyn Medium,
    g: &Geometry,
    set_uuid: &Uuid,
) -> Result<std::result::Result<Vec<SegmentMark>, String>> {
    let mut marks = Vec::new();
    for id in (0..g.segment_count(medium.len())).map(SegmentId) {
        let mut lines = [0u8; SEGMENT_DATA_OFFSET as usize];
        let mut register = ErrorRegister::deferred();
        medium.read(g.segment_offset(id), &mut lines, &mut register, Domain::Engine)?;
        if !register.is_clean() {
            return Ok(Err(format!("poison in the header of segment {}", id.0)));
        }
        let at = SEGMENT_TAIL_OFFSET as usize;
        let word = u64::from_le_bytes(lines[at..at + 8].try_into().unwrap_or([0xff; 8]));
        match SegmentHeader::decode(&lines[..at]) {
            Ok(None) if word == 0 => {}
            Ok(Some(h)) if h.set_uuid == *set_uuid && h.id == id => {
                match g.committed_tail(word, h.seq, set_uuid) {
                    Ok(tail) => marks.push(SegmentMark { id, seq: h.seq, tail }),
                    Err(e) => return Ok(Err(format!("segment {}: {e}", id.0))),
                }
            }
            _ => return Ok(Err(format!("segment {} is not cleanly free or in use", id.0))),
        }
    }
    Ok(Ok(marks))
}

impl IndexSnapshot {
    /// The file's bytes: header, marks, entries, then xxh3-64 of everything before it.
    pub fn encode(&self) -> Vec<u8> {
        let keys: usize = self.entries.iter().map(|e| e.key.len()).sum();
        let mut out = Vec::with_capacity(
            HEADER_BYTES
                + self.marks.len() * MARK_BYTES
                + self.entries.len() * ENTRY_FIXED_BYTES
                + keys
                + 8,
        );
        out.extend_from_slice(&SNAPSHOT_MAGIC);
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&self.set_uuid.0);
        out.extend_from_slice(&self.next_lsn.0.to_le_bytes());
        out.extend_from_slice(&(self.marks.len() as u64).to_le_bytes());
        debug_assert_eq!(out.len(), HEADER_BYTES - 8);
        out.extend_from_slice(&(self.entries.len() as u64).to_le_bytes());
        for mark in &self.marks {
            out.extend_from_slice(&u64::from(mark.id.0).to_le_bytes());
            out.extend_from_slice(&mark.seq.to_le_bytes());
            out.extend_from_slice(&mark.tail.to_le_bytes());
        }
        for entry in &self.entries {
            out.extend_from_slice(&(entry.key.len() as u32).to_le_bytes());
            out.extend_from_slice(&entry.len.to_le_bytes());
            out.extend_from_slice(&entry.offset.to_le_bytes());
            out.extend_from_slice(&entry.segment_seq.to_le_bytes());
            out.extend_from_slice(&entry.lsn.0.to_le_bytes());
            out.extend_from_slice(&entry.key);
        }
        let sum = hash64(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    /// Decode a snapshot file; `Err` says why it cannot be used.
    pub fn decode(bytes: &[u8]) -> std::result::Result<Self, String> {
        let Some((body, sum)) = bytes.split_last_chunk::<8>() else {
            return Err("the snapshot is shorter than its checksum".into());
        };
        if body.len() < HEADER_BYTES || body[..8] != SNAPSHOT_MAGIC {
            return Err("the snapshot has no valid header".into());
        }
        if hash64(body) != u64::from_le_bytes(*sum) {
            return Err("the snapshot's checksum does not match".into());
        }
        let mut cursor = Cursor { bytes: body, at: 8 };
        if cursor.u32()? != 1 {
            return Err("unknown snapshot version".into());
        }
        cursor.u32()?;
        let set_uuid = Uuid(cursor.take(16)?.try_into().map_err(|_| "short uuid".to_string())?);
        let next_lsn = Lsn(cursor.u64()?);
        let mark_count = cursor.u64()?;
        let entry_count = cursor.u64()?;
        // Counts are bounded by the bytes present before anything is allocated for them.
        let room = (body.len() - HEADER_BYTES) as u64;
        if mark_count.saturating_mul(MARK_BYTES as u64) > room
            || entry_count.saturating_mul(ENTRY_FIXED_BYTES as u64) > room
        {
            return Err("the snapshot's counts exceed its length".into());
        }
        let mut marks = Vec::with_capacity(mark_count as usize);
        for _ in 0..mark_count {
            let id = u32::try_from(cursor.u64()?).map_err(|_| "segment id out of range")?;
            marks.push(SegmentMark { id: SegmentId(id), seq: cursor.u64()?, tail: cursor.u64()? });
        }
        let mut entries: Vec<IndexEntry> = Vec::with_capacity(entry_count as usize);
        for _ in 0..entry_count {
            let key_len = cursor.u32()? as usize;
            let len = cursor.u32()?;
            let offset = cursor.u64()?;
            let segment_seq = cursor.u64()?;
            let lsn = Lsn(cursor.u64()?);
            let key = EntryKey::from(cursor.take(key_len)?);
            if entries.last().is_some_and(|last| last.key >= key) {
                return Err("the snapshot's keys are not strictly ascending".into());
            }
            entries.push(IndexEntry { key, kind: RecordKind::Put, lsn, offset, len, segment_seq });
        }
        if cursor.at != body.len() {
            return Err("trailing bytes after the snapshot's entries".into());
        }
        Ok(Self { set_uuid, next_lsn, marks, entries })
    }

    /// Whether this snapshot describes exactly the log `marks` describe, with every entry inside
    /// a committed range of its own segment; `Err` says what differs.
    pub fn check_against(
        &self,
        set_uuid: &Uuid,
        marks: &[SegmentMark],
        g: &Geometry,
    ) -> std::result::Result<(), String> {
        if self.set_uuid != *set_uuid {
            return Err("the snapshot belongs to another replica set".into());
        }
        if self.marks != marks {
            return Err("the log changed since the snapshot was taken".into());
        }
        for entry in &self.entries {
            let inside = g.segment_of(entry.offset).and_then(|id| {
                let mark = marks.iter().find(|m| m.id == id)?;
                let start = g.data_start(id);
                let end = entry.offset.checked_add(u64::from(entry.len))?;
                (mark.seq == entry.segment_seq && entry.offset >= start && end <= start + mark.tail)
                    .then_some(())
            });
            if inside.is_none() {
                return Err(format!(
                    "a snapshot entry at offset {} lies outside the committed log",
                    entry.offset
                ));
            }
        }
        Ok(())
    }
}

/// The snapshot file of the pool at `pool`: the same path with `.index` appended.
pub fn snapshot_path(pool: &Path) -> PathBuf {
    let mut name = pool.as_os_str().to_os_string();
    name.push(".index");
    PathBuf::from(name)
}

/// The snapshot file's bytes, or why there are none (missing, unreadable).
pub fn load_snapshot(path: &Path) -> std::result::Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("{} does not exist", path.display()),
        _ => format!("reading {}: {e}", path.display()),
    })
}

/// Write `bytes` as the snapshot file at `path` atomically: a temporary file, fsync, rename,
/// fsync of the directory. A reader sees the old file, the new one, or none — never a part.
pub fn store_snapshot(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut temp = path.as_os_str().to_os_string();
    temp.push(".tmp");
    let temp = PathBuf::from(temp);
    let written = (|| {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)?;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

/// Read a device's unsafe-shutdown count from a sysfs-style file holding one decimal number
/// (e.g. `/sys/bus/nd/devices/nmem0/nfit/dirty_shutdown`). Untested on hardware here: the tests
/// use a fake file.
pub fn read_unsafe_shutdown_count(path: &Path) -> std::result::Result<u64, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    text.trim()
        .parse::<u64>()
        .map_err(|e| format!("{} does not hold a count ({e}): {:?}", path.display(), text.trim()))
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&end| end <= self.bytes.len());
        let Some(end) = end else { return Err("the snapshot is truncated".into()) };
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn u32(&mut self) -> std::result::Result<u32, String> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().map_err(|_| "short field".to_string())?))
    }

    fn u64(&mut self) -> std::result::Result<u64, String> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().map_err(|_| "short field".to_string())?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geometry() -> Geometry {
        Geometry::for_segment_size(64 << 10).unwrap()
    }

    fn sample() -> IndexSnapshot {
        let g = geometry();
        let entry = |key: &str, offset: u64| IndexEntry {
            key: key.as_bytes().into(),
            kind: RecordKind::Put,
            lsn: Lsn(offset),
            offset,
            len: 48,
            segment_seq: 3,
        };
        let start = g.data_start(SegmentId(1));
        IndexSnapshot {
            set_uuid: Uuid([9; 16]),
            next_lsn: Lsn(77),
            marks: vec![SegmentMark { id: SegmentId(1), seq: 3, tail: 96 }],
            entries: vec![entry("a", start), entry("b", start + 48)],
        }
    }

    #[test]
    fn round_trip_and_every_flip_is_refused() {
        let snapshot = sample();
        let bytes = snapshot.encode();
        assert_eq!(IndexSnapshot::decode(&bytes), Ok(snapshot.clone()));
        for at in 0..bytes.len() {
            let mut bad = bytes.clone();
            bad[at] ^= 0x01;
            assert!(IndexSnapshot::decode(&bad).is_err(), "flip at {at}");
        }
        for cut in 0..bytes.len() {
            assert!(IndexSnapshot::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn sidecar_files_and_the_fake_sysfs_count() {
        let dir = tempfile::tempdir().unwrap();
        let pool = dir.path().join("pool");
        let path = snapshot_path(&pool);
        assert!(path.to_string_lossy().ends_with("pool.index"));
        assert!(load_snapshot(&path).unwrap_err().contains("does not exist"));
        store_snapshot(&path, b"first").unwrap();
        store_snapshot(&path, b"second").unwrap();
        assert_eq!(load_snapshot(&path).unwrap(), b"second");
        let count = dir.path().join("dirty_shutdown");
        assert!(read_unsafe_shutdown_count(&count).is_err());
        std::fs::write(&count, "17\n").unwrap();
        assert_eq!(read_unsafe_shutdown_count(&count), Ok(17));
        std::fs::write(&count, "seventeen\n").unwrap();
        assert!(read_unsafe_shutdown_count(&count).unwrap_err().contains("seventeen"));
    }

    #[test]
    fn a_snapshot_is_used_only_against_the_log_it_describes() {
        let g = geometry();
        let snapshot = sample();
        let marks = snapshot.marks.clone();
        assert_eq!(snapshot.check_against(&Uuid([9; 16]), &marks, &g), Ok(()));
        assert!(snapshot.check_against(&Uuid([8; 16]), &marks, &g).is_err());
        let grown = vec![SegmentMark { tail: 144, ..marks[0] }];
        assert!(snapshot.check_against(&Uuid([9; 16]), &grown, &g).is_err());
        let reused = vec![SegmentMark { seq: 4, ..marks[0] }];
        assert!(snapshot.check_against(&Uuid([9; 16]), &reused, &g).is_err());
        let mut outside = snapshot.clone();
        outside.entries[1].offset += 48;
        assert!(outside.check_against(&Uuid([9; 16]), &marks, &g).is_err());
        let mut unsorted = snapshot;
        unsorted.entries.swap(0, 1);
        assert!(IndexSnapshot::decode(&unsorted.encode()).is_err());
    }
}
