//! The address range of one medium: reserved once at open, then filled with `MAP_FIXED` pieces
//! (the file's prefix, grown pieces, memfd holes that emulate poison).
//!
//! INVARIANT: `[base, base + len)` stays mapped (`PROT_NONE` or a piece) from `reserve` until
//! drop, so the base never moves and a pointer into the range never dangles while the
//! `Reservation` lives. Every `mmap`/`munmap`/`madvise`/`msync` of the medium is in this file.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;

use crate::error::{Error, Result};
use crate::limits::PAGE_SIZE;

use super::mode::Mode;

/// Alignment of a reservation's base: the 2 MiB of an x86-64 PMD mapping.
pub(super) const HUGE_ALIGN: u64 = 2 << 20;

/// A reserved address range; pieces are mapped into it at fixed offsets.
#[derive(Debug)]
pub(super) struct Reservation {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: the reservation is process-wide address space; the struct holds only its address and
// length, and every method that changes mappings is a syscall the kernel serialises.
unsafe impl Send for Reservation {}
// SAFETY: as above; `&self` methods never create Rust references into the range.
unsafe impl Sync for Reservation {}

/// How a piece of the pool file is mapped.
#[derive(Clone, Copy, Debug)]
pub(super) struct Share {
    /// The medium's mode (`Dax` maps with `MAP_SHARED_VALIDATE|MAP_SYNC`).
    pub mode: Mode,
    /// Map `PROT_READ` only.
    pub read_only: bool,
}

impl Share {
    fn prot(self) -> libc::c_int {
        if self.read_only { libc::PROT_READ } else { libc::PROT_READ | libc::PROT_WRITE }
    }

    fn flags(self) -> libc::c_int {
        match self.mode {
            Mode::Dax => libc::MAP_SHARED_VALIDATE | libc::MAP_SYNC,
            Mode::Msync | Mode::ForcedPmem => libc::MAP_SHARED,
        }
    }
}

fn usize_of(value: u64) -> Result<usize> {
    usize::try_from(value)
        .map_err(|_| Error::io("mapping", io::Error::from_raw_os_error(libc::EFBIG)))
}

/// An error from a `MAP_FIXED` into the reservation: `ENOMEM` there means the VMA count limit.
fn fixed_map_error(context: &str) -> Error {
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::ENOMEM) {
        Error::MapCountExhausted
    } else {
        Error::io(context.to_string(), err)
    }
}

impl Reservation {
    /// Reserve `len` bytes (a page multiple) of address space: `PROT_NONE`, private, anonymous,
    /// `MAP_NORESERVE`, so it costs neither memory nor commit charge. The base is aligned to
    /// [`HUGE_ALIGN`] so that file pieces mapped at their own offsets can be mapped with 2 MiB
    /// entries where the file system offers them (DAX PMD faults, tmpfs `huge=`): one TLB entry
    /// then covers 512 pages, which random reads over a large pool otherwise miss.
    pub(super) fn new(len: u64) -> Result<Self> {
        debug_assert!(len > 0 && len.is_multiple_of(PAGE_SIZE));
        let len = usize_of(len)?;
        let align = HUGE_ALIGN as usize;
        let padded = len
            .checked_add(align)
            .ok_or_else(|| Error::io("mapping", io::Error::from_raw_os_error(libc::EFBIG)))?;
        // SAFETY: a fresh anonymous mapping at an address the kernel chooses; it overlaps nothing.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                padded,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(Error::last_os(format!("reserve {len} bytes of address space")));
        }
        let start = ptr.cast::<u8>();
        let head = start.align_offset(align).min(align);
        let tail = padded - head - len;
        let kept = start.wrapping_add(head);
        for (at, slack) in [(start, head), (kept.wrapping_add(len), tail)] {
            if slack > 0 {
                // SAFETY: `[at, at + slack)` is padding of the mapping made above, outside the
                // range kept; nothing refers to it.
                let rc = unsafe { libc::munmap(at.cast(), slack) };
                debug_assert_eq!(rc, 0, "munmap of the reservation's padding failed");
            }
        }
        let base = NonNull::new(kept).ok_or_else(|| Error::last_os("mmap returned null"))?;
        Ok(Self { base, len })
    }

    /// Start of the range.
    pub(super) fn base(&self) -> *mut u8 {
        self.base.as_ptr()
    }

    /// Length of the range in bytes.
    pub(super) fn len(&self) -> u64 {
        self.len as u64
    }

    /// Address of `offset`; the caller has checked `offset + len <= self.len()`.
    fn at(&self, offset: u64, len: u64) -> Result<(*mut libc::c_void, usize)> {
        assert!(
            offset.is_multiple_of(PAGE_SIZE) && len.is_multiple_of(PAGE_SIZE),
            "unaligned piece"
        );
        assert!(offset.checked_add(len).is_some_and(|end| end <= self.len()), "piece beyond range");
        let offset = usize_of(offset)?;
        // SAFETY: `offset` lies inside the reservation (asserted above).
        let addr = unsafe { self.base.as_ptr().add(offset) };
        Ok((addr.cast(), usize_of(len)?))
    }

    /// Map `[offset, offset + len)` of `file` at the same offset of the range (`MAP_FIXED`).
    pub(super) fn map_file(&self, file: &File, offset: u64, len: u64, share: Share) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        let (addr, size) = self.at(offset, len)?;
        let file_offset = libc::off_t::try_from(offset)
            .map_err(|_| Error::io("map file", io::Error::from_raw_os_error(libc::EFBIG)))?;
        // SAFETY: MAP_FIXED replaces pages inside our own reservation only (bounds asserted in
        // `at`); nothing else lives there and no Rust reference points into it.
        let ptr = unsafe {
            libc::mmap(
                addr,
                size,
                share.prot(),
                share.flags() | libc::MAP_FIXED,
                file.as_raw_fd(),
                file_offset,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(fixed_map_error("map the pool file"));
        }
        Ok(())
    }

    /// Map the empty `memfd` over `[offset, offset + len)`: every access there is beyond the
    /// memfd's end of file, so loads, stores and flushes raise a real `SIGBUS` `BUS_ADRERR`.
    pub(super) fn map_hole(
        &self,
        memfd: &OwnedFd,
        offset: u64,
        len: u64,
        share: Share,
    ) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        let (addr, size) = self.at(offset, len)?;
        // SAFETY: as in `map_file`: a fixed mapping inside our own reservation.
        let ptr = unsafe {
            libc::mmap(
                addr,
                size,
                share.prot(),
                libc::MAP_SHARED | libc::MAP_FIXED,
                memfd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(fixed_map_error("map an emulated-poison hole"));
        }
        Ok(())
    }

    /// Pre-fault `[offset, offset + len)` so that no store in the write path takes a page fault.
    /// `EINVAL` (a kernel older than 5.14) is ignored.
    pub(super) fn populate(&self, offset: u64, len: u64, write: bool) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        let (addr, size) = self.at(offset, len)?;
        let advice = if write { libc::MADV_POPULATE_WRITE } else { libc::MADV_POPULATE_READ };
        loop {
            // SAFETY: advice on pages inside our reservation; populating changes no contents.
            let rc = unsafe { libc::madvise(addr, size, advice) };
            if rc == 0 {
                return Ok(());
            }
            let err = io::Error::last_os_error();
            match err.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(libc::EINVAL) => return Ok(()),
                _ => return Err(Error::io("pre-fault the mapping (MADV_POPULATE)", err)),
            }
        }
    }

    /// `msync(MS_SYNC)` of the pages covering `[offset, offset + len)`.
    pub(super) fn msync(&self, offset: u64, len: u64) -> Result<()> {
        let start = offset / PAGE_SIZE * PAGE_SIZE;
        let end = offset.saturating_add(len).div_ceil(PAGE_SIZE) * PAGE_SIZE;
        let end = end.min(self.len());
        if end <= start {
            return Ok(());
        }
        let (addr, size) = self.at(start, end - start)?;
        // SAFETY: msync of pages inside our reservation; it reads no Rust-visible memory.
        let rc = unsafe { libc::msync(addr, size, libc::MS_SYNC) };
        if rc != 0 {
            return Err(Error::last_os("msync"));
        }
        Ok(())
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        // SAFETY: the whole range is ours; after drop nothing refers to it (the medium owning
        // the reservation is being dropped and hands out no references).
        let rc = unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
        debug_assert_eq!(rc, 0, "munmap of the medium's reservation failed");
    }
}

/// Whether a `MAP_SHARED_VALIDATE|MAP_SYNC` mapping of the file's first page is accepted;
/// the errno otherwise (`EOPNOTSUPP` or `EINVAL` mean the file system cannot do it).
pub(super) fn probe_map_sync(file: &File, read_only: bool) -> std::result::Result<(), i32> {
    let share = Share { mode: Mode::Dax, read_only };
    let page = PAGE_SIZE as usize;
    // SAFETY: a fresh mapping at a kernel-chosen address, unmapped again right below.
    let ptr = unsafe {
        libc::mmap(std::ptr::null_mut(), page, share.prot(), share.flags(), file.as_raw_fd(), 0)
    };
    if ptr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error().raw_os_error().unwrap_or(libc::EINVAL));
    }
    // SAFETY: the probe mapping made just above; nothing refers to it.
    unsafe { libc::munmap(ptr, page) };
    Ok(())
}

/// An empty `memfd` (length 0) to map over poisoned ranges.
pub(super) fn empty_memfd() -> Result<OwnedFd> {
    // SAFETY: the name is a valid NUL-terminated string; the flags are plain bits.
    let fd = unsafe { libc::memfd_create(c"mcstore-poison".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(Error::last_os("memfd_create"));
    }
    // SAFETY: `fd` was just returned by memfd_create and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reservation_is_huge_page_aligned_and_maps_over_its_whole_length() {
        for len in [PAGE_SIZE, 3 * PAGE_SIZE, HUGE_ALIGN + PAGE_SIZE, 5 * HUGE_ALIGN] {
            let r = Reservation::new(len).unwrap();
            assert_eq!(r.base() as usize % HUGE_ALIGN as usize, 0);
            assert_eq!(r.len(), len);
            let memfd = empty_memfd().unwrap();
            let share = Share { mode: Mode::ForcedPmem, read_only: false };
            r.map_hole(&memfd, 0, len, share).unwrap();
        }
    }
}
