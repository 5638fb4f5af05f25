//! `MappedMedium`: a pool file mapped into a reserved address range — its fields, the state kept
//! under its lock, its accessors, and the checks every access makes before memory is touched
//! (bounds, known poison, read-only). The [`Medium`](crate::medium::Medium) implementation is
//! `access`.
//!
//! INVARIANT: the base address never moves (the range for `max_len` is reserved at open and the
//! file is mapped over its prefix with `MAP_FIXED`); `check_bounds` admits only ranges inside the
//! current length; `check_poison` refuses a page this medium knows to be poisoned (under one
//! relaxed "any poison" flag).
#![allow(unsafe_code)]

use std::fs::File;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::limits::PAGE_SIZE;
use crate::mcsafe::FlushInsn;
use crate::medium::MemberId;

use super::glue;
use super::mode::Mode;
use super::ranges::RangeSet;
use super::reserve::{Reservation, Share};

/// A mapped pool file. See the module docs of [`crate::mapped`].
#[derive(Debug)]
pub struct MappedMedium {
    // INVARIANT: declared before `file`, so the mapping is gone before the descriptor (and with
    // it the pool lock) is released.
    pub(super) reservation: Reservation,
    pub(super) path: PathBuf,
    pub(super) file: File,
    pub(super) share: Share,
    pub(super) eadr: bool,
    pub(super) member: MemberId,
    pub(super) flush_insn: FlushInsn,
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
    /// Ranges pre-faulted writable in this mapping (at creation, growth, `prefault`): a
    /// `prefault` inside them returns at once.
    pub populated: RangeSet,
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

    /// The reserved address range: the most [`Medium::grow`](crate::medium::Medium::grow) can
    /// reach.
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

    /// `[offset, offset + len)` inside `[0, len())`, checked before any memory is touched; returns
    /// its end. One load and two compares on the read path (`len` first, so the subtraction
    /// cannot wrap; together they equal `offset + len <= medium_len` without overflow).
    #[inline(always)]
    pub(super) fn check_bounds(&self, offset: u64, len: u64) -> Result<u64> {
        let medium_len = self.len.load(Ordering::Acquire);
        if len <= medium_len && offset <= medium_len - len {
            Ok(offset + len)
        } else {
            Err(out_of_bounds(offset, len, medium_len))
        }
    }

    /// `Error::Poisoned` if `[start, end)` touches a page this medium knows to be poisoned.
    /// Inlined (every write, store and flush checks: one load while nothing is poisoned).
    #[inline]
    pub(super) fn check_poison(&self, start: u64, end: u64) -> Result<()> {
        // Relaxed suffices: injection sets the flag before it maps a hole, and racing a write
        // with an injection over the same page is outside the contract (see `inject_poison`).
        if !self.any_poison.load(Ordering::Relaxed) {
            return Ok(());
        }
        self.check_known_poison(start, end)
    }

    /// `check_poison` once some page is known poisoned.
    #[cold]
    fn check_known_poison(&self, start: u64, end: u64) -> Result<()> {
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
            return Err(Error::ReadOnly { path: self.path.clone(), what: what.to_string() });
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

/// The error of a failed bounds check, built off the hot path.
#[cold]
#[inline(never)]
fn out_of_bounds(offset: u64, len: u64, medium_len: u64) -> Error {
    Error::OutOfBounds { offset, len, medium_len }
}

impl Drop for MappedMedium {
    fn drop(&mut self) {
        if let Some(registration) = self.registration.take() {
            glue::unregister(registration);
        }
        // The reservation unmaps everything; closing the file releases the flock.
    }
}
