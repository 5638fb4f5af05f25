//! Emulated poison on a `MappedMedium`, the bad-block list applied to it, and page repair.
//!
//! Poison is real and destructive: the file's bytes are overwritten with [`POISON_PATTERN`], then
//! an empty memfd is mapped over the pages so loads, stores and flushes there raise a real
//! `SIGBUS` `BUS_ADRERR`. INVARIANT: `State::poison` is exactly the set of pages mapped as holes
//! (coalesced: one hole mapping per span), and `any_poison` is set whenever it is non-empty.

use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;

use crate::error::{Error, Result};
use crate::limits::PAGE_SIZE;
use crate::medium::Medium;
use crate::register::{Domain, ErrorRegister};

use super::badblocks::BadBlocks;
use super::medium::{MappedMedium, State};
use super::ranges::round_out;
use super::reserve;

/// The 32-bit word (little-endian) an injection writes over the file's bytes.
pub const POISON_PATTERN: u32 = 0xDEAD_BEEF;

impl MappedMedium {
    /// Poison the pages covering `[offset, offset + len)`, destructively: the file's bytes there
    /// become [`POISON_PATTERN`] and every access through the mapping raises `SIGBUS` (reads
    /// record it in the register; writes and stores return [`Error::Poisoned`]).
    ///
    /// A write or store racing with an injection over the same page may meet the hole before it
    /// sees the poison flag, which kills the process: inject only where no writer is working.
    pub fn inject_poison(&self, offset: u64, len: u64) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        let (start, end) = self.page_range(offset, len)?;
        self.refuse_read_only("inject poison")?;
        let pattern: Vec<u8> =
            POISON_PATTERN.to_le_bytes().iter().copied().cycle().take(PAGE_SIZE as usize).collect();
        for page in (start..end).step_by(PAGE_SIZE as usize) {
            self.file
                .write_all_at(&pattern, page)
                .map_err(|e| Error::io(format!("pwrite poison pattern at {page}"), e))?;
        }
        let mut state = self.state.lock();
        self.map_holes(&mut state, start, end)
    }

    /// Map the pool file back over the pages covering `[offset, offset + len)`: they show
    /// whatever the file holds (the pattern, unless repaired).
    pub fn clear_poison(&self, offset: u64, len: u64) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        let (start, end) = self.page_range(offset, len)?;
        let mut state = self.state.lock();
        let pieces = state.poison.remove(start, end);
        for (i, &(s, e)) in pieces.iter().enumerate() {
            if let Err(err) = self.reservation.map_file(&self.file, s, e - s, self.share) {
                // INVARIANT: the pieces not mapped back are still holes.
                for &(s, e) in &pieces[i..] {
                    state.poison.insert(s, e);
                }
                return Err(err);
            }
        }
        if state.poison.is_empty() {
            self.any_poison.store(false, Ordering::Release);
        }
        Ok(())
    }

    /// The emulated-poisoned ranges as `(offset, len)`, page-aligned, sorted and coalesced.
    pub fn poisoned_ranges(&self) -> Vec<(u64, u64)> {
        self.state.lock().poison.offset_len()
    }

    /// The known-bad ranges (from the `.badblocks` sidecar at open) not yet repaired, as
    /// `(offset, len)`, sorted and coalesced. Their pages are emulated poison while mapped.
    pub fn known_bad(&self) -> Vec<(u64, u64)> {
        self.state.lock().known_bad.offset_len()
    }

    /// Repair whole pages: `pwrite` `data` at `offset` (both page-aligned), `fdatasync`, map the
    /// file back over them (clearing emulated poison), re-read and verify through the safe copy,
    /// then drop the range from the `.badblocks` sidecar and from [`Self::known_bad`].
    ///
    /// Panics if `offset` or `data.len()` is not a multiple of the page size.
    pub fn repair_pages(&self, offset: u64, data: &[u8]) -> Result<()> {
        assert!(
            offset.is_multiple_of(PAGE_SIZE) && (data.len() as u64).is_multiple_of(PAGE_SIZE),
            "repair_pages needs whole aligned pages (offset {offset}, len {})",
            data.len()
        );
        let len = data.len() as u64;
        let end = self.check_bounds(offset, len)?;
        if len == 0 {
            return Ok(());
        }
        self.refuse_read_only("repair")?;
        // PERSIST: pwrite of whole pages is the poison-clearing path on fs-dax (Linux 5.19+);
        // fdatasync makes it durable in every mode before the sidecar forgets the range.
        self.file
            .write_all_at(data, offset)
            .map_err(|e| Error::io(format!("pwrite repair at {offset}"), e))?;
        self.file.sync_data().map_err(|e| Error::io("fdatasync after repair", e))?;
        self.clear_poison(offset, len)?;
        let mut check = vec![0u8; data.len()];
        let mut register = ErrorRegister::deferred();
        self.read(offset, &mut check, &mut register, Domain::Engine)?;
        if let Some(fault) = register.first() {
            return Err(Error::Poisoned { offset: fault.offset, len: fault.len });
        }
        if check != data {
            return Err(Error::io(
                format!(
                    "{}: repaired pages at {offset} read back different",
                    self.path().display()
                ),
                std::io::Error::from(std::io::ErrorKind::InvalidData),
            ));
        }
        BadBlocks::remove(&BadBlocks::sidecar_path(self.path()), (offset, len))?;
        self.state.lock().known_bad.remove(offset, end);
        Ok(())
    }

    /// Map holes (non-destructively) over the known-bad pages inside `[start, end)`.
    pub(super) fn apply_known_bad(&self, state: &mut State, start: u64, end: u64) -> Result<()> {
        for (s, e) in state.known_bad.intersections(start, end) {
            let Some((s, e)) = round_out(s, e - s, PAGE_SIZE) else { continue };
            self.map_holes(state, s, e.min(end))?;
        }
        Ok(())
    }

    /// Poison `[start, end)` (page-aligned, in bounds) in the mapping only.
    pub(super) fn map_holes(&self, state: &mut State, start: u64, end: u64) -> Result<()> {
        if state.memfd.is_none() {
            state.memfd = Some(reserve::empty_memfd()?);
        }
        let before = state.poison.intersections(start, end);
        // PERSIST: the flag is set before the hole exists, so a writer that checks after the
        // mapping changed sees it (see the race note on `inject_poison`).
        self.any_poison.store(true, Ordering::SeqCst);
        let (span_start, span_end) = state.poison.insert(start, end);
        let mapped = match &state.memfd {
            // One hole mapping over the whole coalesced span keeps the VMA count minimal.
            Some(memfd) => {
                self.reservation.map_hole(memfd, span_start, span_end - span_start, self.share)
            }
            None => Ok(()),
        };
        if let Err(err) = mapped {
            // INVARIANT: only pages that were holes before stay recorded.
            state.poison.remove(start, end);
            for (s, e) in before {
                state.poison.insert(s, e);
            }
            if state.poison.is_empty() {
                self.any_poison.store(false, Ordering::Release);
            }
            return Err(err);
        }
        Ok(())
    }

    /// Page-round `[offset, offset + len)` and check it lies inside the medium.
    fn page_range(&self, offset: u64, len: u64) -> Result<(u64, u64)> {
        self.check_bounds(offset, len)?;
        let (start, end) = round_out(offset, len, PAGE_SIZE).ok_or(Error::OutOfBounds {
            offset,
            len,
            medium_len: self.len(),
        })?;
        // The length is a page multiple, so rounding out never leaves the medium.
        debug_assert!(end <= self.len());
        Ok((start, end))
    }
}
