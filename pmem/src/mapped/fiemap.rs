//! fs-dax bad blocks: the kernel's `/sys/block/pmemN/badblocks` list translated to file offsets
//! through the file's FIEMAP extent map.
//!
//! Best effort and UNTESTED ON HARDWARE (this machine has no pmem): unit-tested against a fake
//! sysfs root and a synthetic extent map. INVARIANT: only extents whose physical address is known
//! (not unknown, delayed, encoded or inline) translate; a bad sector outside every extent of the
//! file is not the file's.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::error::{Error, Result};

use super::ranges::RangeSet;

/// One extent of a file: `length` bytes at file offset `logical` live at device byte `physical`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Extent {
    /// Offset in the file.
    pub logical: u64,
    /// Offset on the block device.
    pub physical: u64,
    /// Length in bytes.
    pub length: u64,
    /// `FIEMAP_EXTENT_*` flags.
    pub flags: u32,
}

/// `FS_IOC_FIEMAP` = `_IOWR('f', 11, struct fiemap)`.
const FS_IOC_FIEMAP: libc::c_ulong = 0xC020_660B;
const FIEMAP_FLAG_SYNC: u32 = 0x1;
const FIEMAP_EXTENT_LAST: u32 = 0x1;
/// Extents whose physical address means nothing: unknown, delayed allocation, encoded,
/// data-inline (`FIEMAP_EXTENT_UNKNOWN | DELALLOC | ENCODED | DATA_INLINE`).
const FIEMAP_EXTENT_NO_PHYSICAL: u32 = 0x2 | 0x4 | 0x8 | 0x200;
/// Extents asked for per ioctl.
const BATCH: usize = 128;

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct FiemapExtent {
    fe_logical: u64,
    fe_physical: u64,
    fe_length: u64,
    fe_reserved64: [u64; 2],
    fe_flags: u32,
    fe_reserved: [u32; 3],
}

#[repr(C)]
struct Fiemap {
    fm_start: u64,
    fm_length: u64,
    fm_flags: u32,
    fm_mapped_extents: u32,
    fm_extent_count: u32,
    fm_reserved: u32,
    fm_extents: [FiemapExtent; BATCH],
}

const _: () = assert!(size_of::<FiemapExtent>() == 56);
const _: () = assert!(size_of::<Fiemap>() == 32 + 56 * BATCH);

/// The extent map of `file` (FS_IOC_FIEMAP, synced first). Fails with the OS error where the
/// file system has no FIEMAP (tmpfs: `EOPNOTSUPP`).
pub fn fiemap(file: &File) -> Result<Vec<Extent>> {
    let mut extents = Vec::new();
    let mut start = 0u64;
    loop {
        let mut request = Fiemap {
            fm_start: start,
            fm_length: u64::MAX - start,
            fm_flags: FIEMAP_FLAG_SYNC,
            fm_mapped_extents: 0,
            fm_extent_count: BATCH as u32,
            fm_reserved: 0,
            fm_extents: [FiemapExtent::default(); BATCH],
        };
        // SAFETY: `request` is a properly laid out `struct fiemap` with room for
        // `fm_extent_count` extents; the kernel writes only inside it.
        let rc = unsafe { libc::ioctl(file.as_raw_fd(), FS_IOC_FIEMAP, &raw mut request) };
        if rc != 0 {
            return Err(Error::io("FS_IOC_FIEMAP", io::Error::last_os_error()));
        }
        let mapped = (request.fm_mapped_extents as usize).min(BATCH);
        let batch = &request.fm_extents[..mapped];
        extents.extend(batch.iter().map(|e| Extent {
            logical: e.fe_logical,
            physical: e.fe_physical,
            length: e.fe_length,
            flags: e.fe_flags,
        }));
        match batch.last() {
            None => return Ok(extents),
            Some(last) if last.fe_flags & FIEMAP_EXTENT_LAST != 0 => return Ok(extents),
            Some(last) => {
                start = last.fe_logical.saturating_add(last.fe_length);
                if start == u64::MAX {
                    return Ok(extents);
                }
            }
        }
    }
}

/// The bad ranges of a file, as `(offset, len)` in file bytes, sorted and coalesced: reads
/// `sysfs_root/block/<dev>/badblocks` (lines `SECTOR COUNT`, 512-byte sectors, device-relative)
/// and keeps the parts that fall inside `extents`. Untested on hardware.
pub fn sysfs_badblocks(
    sysfs_root: &Path,
    dev: &str,
    extents: &[Extent],
) -> Result<Vec<(u64, u64)>> {
    let path = sysfs_root.join("block").join(dev).join("badblocks");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error::io(format!("read {}", path.display()), e))?;
    let mut bad = RangeSet::default();
    for (index, line) in text.lines().enumerate() {
        let malformed =
            |reason: String| Error::BadBlocksFormat { path: path.clone(), line: index + 1, reason };
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (sector, count) = match fields.as_slice() {
            [] => continue,
            [sector, count] => (sector.parse::<u64>(), count.parse::<u64>()),
            _ => return Err(malformed(format!("expected `SECTOR COUNT`, found `{line}`"))),
        };
        let (Ok(sector), Ok(count)) = (sector, count) else {
            return Err(malformed(format!("`{line}` is not two decimal numbers")));
        };
        let range = sector.checked_mul(512).zip(count.checked_mul(512));
        let Some((dev_start, dev_end)) =
            range.and_then(|(start, len)| Some((start, start.checked_add(len)?)))
        else {
            return Err(malformed(format!("`{line}` overflows")));
        };
        for extent in extents.iter().filter(|e| e.flags & FIEMAP_EXTENT_NO_PHYSICAL == 0) {
            let ext_end = extent.physical.saturating_add(extent.length);
            let start = dev_start.max(extent.physical);
            let end = dev_end.min(ext_end);
            if start < end {
                let file_start = extent.logical.saturating_add(start - extent.physical);
                bad.insert(file_start, file_start.saturating_add(end - start));
            }
        }
    }
    Ok(bad.offset_len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fake_sysfs(text: &str) -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("block/pmem0");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("badblocks"), text).unwrap();
        root
    }

    fn extent(logical: u64, physical: u64, length: u64) -> Extent {
        Extent { logical, physical, length, flags: 0 }
    }

    #[test]
    fn sectors_translate_through_extents() {
        // File bytes [0, 1 MiB) live at device 16 MiB; [1 MiB, 2 MiB) at device 4 MiB.
        let extents = [extent(0, 16 << 20, 1 << 20), extent(1 << 20, 4 << 20, 1 << 20)];
        // Sector 32776 = device 16 MiB + 4 KiB (8 sectors = one page); sector 8192 = 4 MiB
        // (two pages); sector 0 is not the file's; the last straddles the end of extent 2.
        let root = fake_sysfs("32776 8\n8192 16\n0 8\n10238 8\n");
        let bad = sysfs_badblocks(root.path(), "pmem0", &extents).unwrap();
        assert_eq!(bad, vec![(4096, 4096), (1 << 20, 8192), ((2 << 20) - 1024, 1024)]);
    }

    #[test]
    fn extents_without_physical_address_are_skipped() {
        let mut unknown = extent(0, 0, 1 << 20);
        unknown.flags = 0x2 | FIEMAP_EXTENT_LAST;
        let root = fake_sysfs("0 8\n");
        assert!(sysfs_badblocks(root.path(), "pmem0", &[unknown]).unwrap().is_empty());
    }

    #[test]
    fn malformed_sysfs_lines_are_errors() {
        let root = fake_sysfs("8 8\nbogus\n");
        match sysfs_badblocks(root.path(), "pmem0", &[]) {
            Err(Error::BadBlocksFormat { line: 2, .. }) => {}
            other => panic!("{other:?}"),
        }
        assert!(matches!(sysfs_badblocks(root.path(), "pmem9", &[]), Err(Error::Io { .. })));
    }

    #[test]
    fn fiemap_maps_a_disk_file_and_refuses_tmpfs() {
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![7u8; 256 * 1024]).unwrap();
        let file = File::open(&path).unwrap();
        let extents = fiemap(&file).unwrap();
        assert!(!extents.is_empty());
        let covered: u64 = extents.iter().map(|e| e.length).sum();
        assert!(covered >= 256 * 1024, "{extents:?}");
        assert_eq!(extents[0].logical, 0);
        assert!(extents.last().unwrap().flags & FIEMAP_EXTENT_LAST != 0);

        let shm = tempfile::tempdir_in("/dev/shm").unwrap();
        let path = shm.path().join("f");
        std::fs::write(&path, [1u8; 4096]).unwrap();
        assert!(fiemap(&File::open(&path).unwrap()).is_err());
    }
}
