//! `MappedMedium`: a pool file mapped into a reserved address range, implementing [`Medium`].
//!
//! INVARIANT: the base address never moves (the range for `max_len` is reserved at open and the
//! file is mapped over its prefix with `MAP_FIXED`); every access is bounds-checked against the
//! current length before memory is touched; a write, store or flush never reaches a page this
//! medium knows to be poisoned (checked under one relaxed "any poison" flag). Reads go through the
//! machine-check-safe copy only.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::limits::PAGE_SIZE;
use crate::mcsafe::FlushInsn;
use crate::medium::{FenceSite, Medium, MemberId};
use crate::register::{Domain, ErrorRegister};

use super::file;
use super::glue;
use super::mode::Mode;
use super::ranges::RangeSet;
use super::reserve::{Reservation, Share};

/// A mapped pool file. See the module docs of [`crate::mapped`].
#[derive(Debug)]
pub struct MappedMedium {
    pub(super) path: PathBuf,
    pub(super) file: File,
    pub(super) share: Share,
    pub(super) eadr: bool,
    pub(super) member: MemberId,
    pub(super) flush_insn: FlushInsn,
    pub(super) reservation: Reservation,
    /// Current mapped length; grows only (Release on grow, Acquire on every bounds check).
    pub(super) len: AtomicU64,
    /// Whether any page is emulated-poisoned: the write path's fast check.
    pub(super) any_poison: AtomicBool,
    pub(super) state: Mutex<State>,
    pub(super) registration: Option<glue::Registration>,
}

/// What changes under the lock: poison, the sidecar's list, and growth.
#[derive(Debug, Default)]
pub(super) struct State {
    /// Pages mapped as memfd holes (emulated poison), page-aligned.
    pub poison: RangeSet,
    /// Ranges listed in the sidecar (and, on fs-dax, by the kernel) that are not yet repaired.
    pub known_bad: RangeSet,
    /// The empty memfd mapped over poisoned pages (made on first use).
    pub memfd: Option<OwnedFd>,
}

impl MappedMedium {
    /// The mode the medium runs in.
    pub fn mode(&self) -> Mode {
        self.share.mode
    }

    /// Whether flushes are skipped because the caches are in the persistence domain.
    pub fn eadr(&self) -> bool {
        self.eadr
    }

    /// The pool file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The reserved address range: the most [`Medium::grow`] can reach.
    pub fn max_len(&self) -> u64 {
        self.reservation.len()
    }

    /// Whether the medium was opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.share.read_only
    }

    /// The flush instruction used in `Dax` and `ForcedPmem` modes.
    pub fn flush_insn(&self) -> FlushInsn {
        self.flush_insn
    }

    /// The address the mapping starts at (diagnostics; it never changes while the medium lives).
    pub fn base_address(&self) -> usize {
        self.reservation.base() as usize
    }

    /// `[offset, offset + len)` inside `[0, len())`, checked before any memory is touched.
    pub(super) fn check_bounds(&self, offset: u64, len: u64) -> Result<u64> {
        let medium_len = self.len.load(Ordering::Acquire);
        match offset.checked_add(len) {
            Some(end) if end <= medium_len => Ok(end),
            _ => Err(Error::OutOfBounds { offset, len, medium_len }),
        }
    }

    /// `Error::Poisoned` if `[start, end)` touches a page this medium knows to be poisoned.
    fn check_poison(&self, start: u64, end: u64) -> Result<()> {
        // Relaxed suffices: injection sets the flag before it maps a hole, and racing a write
        // with an injection over the same page is outside the contract (see `inject_poison`).
        if !self.any_poison.load(Ordering::Relaxed) {
            return Ok(());
        }
        match self.state.lock().poison.first_overlap(start, end) {
            None => Ok(()),
            Some((s, e)) => {
                let page_start = s / PAGE_SIZE * PAGE_SIZE;
                let page_end = e.div_ceil(PAGE_SIZE) * PAGE_SIZE;
                Err(Error::Poisoned { offset: page_start, len: page_end - page_start })
            }
        }
    }

    pub(super) fn refuse_read_only(&self, what: &str) -> Result<()> {
        if self.share.read_only {
            return Err(Error::io(
                format!("{}: {what} on a medium opened read-only", self.path.display()),
                io::Error::from(io::ErrorKind::PermissionDenied),
            ));
        }
        Ok(())
    }

    /// Address of `offset`, which the caller has bounds-checked.
    pub(super) fn addr(&self, offset: u64) -> *mut u8 {
        debug_assert!(offset <= self.reservation.len());
        // SAFETY: offset ≤ the current length ≤ the reservation's length (checked by callers).
        unsafe { self.reservation.base().add(offset as usize) }
    }

    /// The flush loop over `[offset, offset + len)` without the poison check (tests reach the
    /// fault path of `mcsafe::flush_range` through it).
    pub(super) fn flush_lines(&self, offset: u64, len: u64) -> Result<()> {
        // SAFETY: the range was bounds-checked by the caller and lies in the live reservation.
        let flushed = unsafe { glue::flush(self.addr(offset), len as usize, self.flush_insn) };
        flushed.map_err(|fault| {
            let at = (fault.addr as u64).saturating_sub(self.base_address() as u64);
            Error::Poisoned { offset: at / PAGE_SIZE * PAGE_SIZE, len: PAGE_SIZE }
        })
    }
}

impl Medium for MappedMedium {
    fn len(&self) -> u64 {
        self.len.load(Ordering::Acquire)
    }

    fn member(&self) -> MemberId {
        self.member
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<()> {
        let end = self.check_bounds(offset, data.len() as u64)?;
        self.refuse_read_only("write")?;
        self.check_poison(offset, end)?;
        if data.is_empty() {
            return Ok(());
        }
        // SAFETY: the destination is inside the mapped length (checked above), writable (not
        // read-only), and not a known hole; `data` cannot overlap the mapping because no Rust
        // reference into the mapping exists.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.addr(offset), data.len()) };
        Ok(())
    }

    fn store_u64(&self, offset: u64, value: u64) -> Result<()> {
        assert!(offset.is_multiple_of(8), "store_u64 at unaligned offset {offset}");
        let end = self.check_bounds(offset, 8)?;
        self.refuse_read_only("store")?;
        self.check_poison(offset, end)?;
        // PERSIST: one aligned 8-byte store: the only failure-atomic write.
        // SAFETY: 8-aligned (the base is page-aligned), in bounds, writable, not a known hole.
        unsafe { std::ptr::write_volatile(self.addr(offset).cast::<u64>(), value.to_le()) };
        Ok(())
    }

    fn flush(&self, offset: u64, len: u64) -> Result<()> {
        let end = self.check_bounds(offset, len)?;
        if len == 0 {
            return Ok(());
        }
        self.check_poison(offset, end)?;
        match self.share.mode {
            Mode::Msync => self.reservation.msync(offset, len),
            Mode::Dax | Mode::ForcedPmem if self.eadr => Ok(()),
            Mode::Dax | Mode::ForcedPmem => self.flush_lines(offset, len),
        }
    }

    fn fence(&self, site: FenceSite) -> Result<()> {
        let _ = site;
        // PERSIST: in the flush-instruction modes sfence orders the write-backs before later
        // stores (kept under eADR too); msync is already synchronous.
        if self.share.mode.uses_flush_instructions() {
            glue::sfence();
        }
        Ok(())
    }

    fn read(
        &self,
        offset: u64,
        dst: &mut [u8],
        register: &mut ErrorRegister,
        domain: Domain,
    ) -> Result<()> {
        self.check_bounds(offset, dst.len() as u64)?;
        if dst.is_empty() {
            return Ok(());
        }
        // SAFETY: the source range is inside the mapped length of the live reservation that
        // starts at its base (bounds checked above).
        unsafe {
            glue::read(
                dst,
                self.addr(offset),
                self.reservation.base(),
                self.member,
                register,
                domain,
            )
        };
        Ok(())
    }

    fn grow(&self, new_len: u64) -> Result<()> {
        let mut state = self.state.lock();
        let old_len = self.len.load(Ordering::Acquire);
        if new_len <= old_len {
            return Ok(());
        }
        self.refuse_read_only("grow")?;
        if !new_len.is_multiple_of(PAGE_SIZE) {
            return Err(Error::BadSize {
                path: self.path.clone(),
                len: new_len,
                reason: "grow length is not a whole number of 4096-byte pages",
            });
        }
        if new_len > self.reservation.len() {
            return Err(Error::BeyondMax { requested: new_len, max: self.reservation.len() });
        }
        file::fallocate(&self.file, old_len, new_len - old_len).map_err(|e| {
            match e.raw_os_error() {
                Some(libc::ENOSPC) => Error::OutOfSpace { requested: new_len },
                _ => Error::io(format!("fallocate {} to {new_len} bytes", self.path.display()), e),
            }
        })?;
        self.reservation.map_file(&self.file, old_len, new_len - old_len, self.share)?;
        self.reservation.populate(old_len, new_len - old_len, true)?;
        self.apply_known_bad(&mut state, old_len, new_len)?;
        // INVARIANT: the new piece is mapped (and its known-bad pages are holes) before readers
        // can see the new length.
        self.len.store(new_len, Ordering::Release);
        Ok(())
    }

    fn flush_is_noop(&self) -> bool {
        self.eadr
    }
}

impl Drop for MappedMedium {
    fn drop(&mut self) {
        if let Some(registration) = self.registration.take() {
            glue::unregister(registration);
        }
        // The reservation unmaps everything; closing the file releases the flock.
    }
}
