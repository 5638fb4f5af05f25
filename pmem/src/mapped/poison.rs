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

    /// [`Medium::repair`] for a mapped medium: [`Self::repair_pages`] with the alignment checked
    /// (an `Err`, not a panic: the range comes from a fault the caller did not choose).
    pub(super) fn repair_whole_pages(&self, offset: u64, data: &[u8]) -> Result<()> {
        if !offset.is_multiple_of(PAGE_SIZE) || !(data.len() as u64).is_multiple_of(PAGE_SIZE) {
            return Err(Error::io(
                format!("repair of [{offset}, +{}): not whole aligned pages", data.len()),
                std::io::Error::from(std::io::ErrorKind::InvalidInput),
            ));
        }
        self.repair_pages(offset, data)
    }

    /// Send the calling thread a `SIGBUS` `BUS_MCEERR_AO` for `offset` with unit `1 << lsb`, as
    /// the kernel does when the platform finds poison nobody consumed yet (testing and drills:
    /// the notice lands in the handler's ring, see [`crate::mcsafe::drain_async_notices`]).
    /// Nothing is poisoned by this; combine with [`Self::inject_poison`] for that.
    #[allow(unsafe_code, reason = "rt_tgsigqueueinfo of a synthetic siginfo to this thread")]
    pub fn inject_async_notice(&self, offset: u64, lsb: u8) -> Result<()> {
        self.check_bounds(offset, 1)?;
        super::glue::ensure_handler()?;
        // Linux x86-64 siginfo_t for SIGBUS: si_signo, si_errno, si_code at 0/4/8, si_addr at 16,
        // si_addr_lsb (i16) at 24; the rest zero.
        let mut words = [0u64; 16];
        words[0] = libc::SIGBUS as u32 as u64;
        words[1] = libc::BUS_MCEERR_AO as u32 as u64;
        words[2] = self.base_address() as u64 + offset;
        words[3] = u64::from(lsb);
        const _: () = assert!(std::mem::size_of::<libc::siginfo_t>() == 128);
        // SAFETY: a plain getter.
        let pid = unsafe { libc::getpid() };
        // SAFETY: a plain getter.
        let tid = unsafe { libc::gettid() };
        // SAFETY: a 128-byte, 8-aligned buffer laid out as a siginfo_t, sent to this thread; the
        // handler (installed above) claims AO notices into its ring and returns.
        let rc = unsafe {
            libc::syscall(libc::SYS_rt_tgsigqueueinfo, pid, tid, libc::SIGBUS, words.as_mut_ptr())
        };
        if rc != 0 {
            return Err(Error::last_os("rt_tgsigqueueinfo(SIGBUS, BUS_MCEERR_AO)"));
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapped::open::tests::{LEN, dirs, with_mode};
    use crate::mapped::{MapOptions, ModeRequest};
    use crate::medium::MemberId;
    use crate::register::{Fault, FaultCode};

    const MODES: [ModeRequest; 2] = [ModeRequest::Msync, ModeRequest::ForcedPmem];

    fn pattern_page() -> Vec<u8> {
        POISON_PATTERN.to_le_bytes().iter().copied().cycle().take(PAGE_SIZE as usize).collect()
    }

    fn filled(path: &std::path::Path, mode: ModeRequest) -> MappedMedium {
        let m = MappedMedium::create(path, LEN, &with_mode(mode).member(MemberId(3))).unwrap();
        let data: Vec<u8> = (0..LEN).map(|i| (i % 251) as u8).collect();
        m.write(0, &data).unwrap();
        m.flush(0, LEN).unwrap();
        m
    }

    fn expected(offset: u64, len: u64) -> Vec<u8> {
        (offset..offset + len).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn injection_overwrites_the_file_and_refuses_writes_there() {
        for dir in dirs() {
            for mode in MODES {
                let m = filled(&dir.path().join(format!("pool-{mode:?}")), mode);
                m.inject_poison(8192 + 100, 10).unwrap(); // rounds out to page 2
                assert_eq!(m.poisoned_ranges(), vec![(8192, 4096)]);
                let mut page = vec![0u8; PAGE_SIZE as usize];
                m.file.read_exact_at(&mut page, 8192).unwrap();
                assert_eq!(page, pattern_page(), "the file's bytes are gone");
                let poisoned = |r: Result<()>| match r {
                    Err(Error::Poisoned { offset, len }) => assert_eq!((offset, len), (8192, 4096)),
                    other => panic!("{other:?}"),
                };
                poisoned(m.write(8192 + 5, b"x"));
                poisoned(m.store_u64(12288 - 8, 1));
                poisoned(m.flush(8000, 400));
                // A write across pages 1 and 2 is refused whole: page 1 is untouched.
                poisoned(m.write(8192 - 16, &[0xAA; 32]));
                let mut register = ErrorRegister::deferred();
                let mut before = vec![0u8; 16];
                m.read(8192 - 16, &mut before, &mut register, Domain::User).unwrap();
                assert!(register.is_clean());
                assert_eq!(before, expected(8192 - 16, 16));
                // Elsewhere everything works.
                m.write(12288, b"next page").unwrap();
                m.flush(12288, 9).unwrap();
                assert!(matches!(m.inject_poison(LEN - 1, 2), Err(Error::OutOfBounds { .. })));
            }
        }
    }

    #[test]
    fn clear_poison_shows_the_file_again() {
        for dir in dirs() {
            for mode in MODES {
                let m = filled(&dir.path().join(format!("pool-{mode:?}")), mode);
                m.inject_poison(4096, 4096).unwrap();
                m.clear_poison(4096, 1).unwrap();
                assert!(m.poisoned_ranges().is_empty());
                let mut register = ErrorRegister::deferred();
                let mut page = vec![0u8; PAGE_SIZE as usize];
                m.read(4096, &mut page, &mut register, Domain::User).unwrap();
                assert!(register.is_clean());
                assert_eq!(page, pattern_page(), "clearing does not bring the data back");
                m.write(4096, b"writable again").unwrap();
                m.flush(4096, 14).unwrap();
            }
        }
    }

    #[test]
    fn poisoned_ranges_coalesce_and_split() {
        let [shm, _] = dirs();
        let m = filled(&shm.path().join("pool"), ModeRequest::ForcedPmem);
        m.inject_poison(4096, 4096).unwrap();
        m.inject_poison(12288, 4096).unwrap();
        assert_eq!(m.poisoned_ranges(), vec![(4096, 4096), (12288, 4096)]);
        m.inject_poison(8192, 4096).unwrap();
        assert_eq!(m.poisoned_ranges(), vec![(4096, 12288)]);
        m.inject_poison(8192, 100).unwrap(); // already poisoned: unchanged
        assert_eq!(m.poisoned_ranges(), vec![(4096, 12288)]);
        m.clear_poison(8192, 4096).unwrap();
        assert_eq!(m.poisoned_ranges(), vec![(4096, 4096), (12288, 4096)]);
        m.write(8192, b"middle").unwrap();
        assert!(matches!(m.write(12288, b"x"), Err(Error::Poisoned { offset: 12288, .. })));
        m.clear_poison(0, LEN).unwrap();
        assert!(m.poisoned_ranges().is_empty());
        m.write(12288, b"x").unwrap();
    }

    /// Needs mcsafe's real `read_safe` (helper A): with the plain-copy placeholder the load
    /// raises a SIGBUS that kills the test binary.
    #[test]
    fn read_records_exactly_the_poisoned_page() {
        for dir in dirs() {
            for mode in MODES {
                let m = filled(&dir.path().join(format!("pool-{mode:?}")), mode);
                m.inject_poison(8192, 4096).unwrap();
                let mut register = ErrorRegister::deferred();
                let mut dst = vec![0xFFu8; 3 * PAGE_SIZE as usize];
                m.read(4096, &mut dst, &mut register, Domain::Engine).unwrap();
                let fault = Fault {
                    member: MemberId(3),
                    offset: 8192,
                    len: 4096,
                    domain: Domain::Engine,
                    code: FaultCode::AdrErr,
                };
                assert_eq!(register.faults(), &[fault]);
                let page = PAGE_SIZE as usize;
                assert_eq!(&dst[..page], &expected(4096, 4096)[..]);
                assert!(dst[page..2 * page].iter().all(|&b| b == 0), "poisoned page zero-filled");
                assert_eq!(&dst[2 * page..], &expected(12288, 4096)[..]);
            }
        }
    }

    /// Needs mcsafe's real `flush_range` (helper A): the flush loop over a hole must come back
    /// as an error. `flush_lines` skips the known-poison check to reach it.
    #[test]
    fn flush_over_a_poisoned_page_is_an_error_not_a_death() {
        let [shm, _] = dirs();
        let m = filled(&shm.path().join("pool"), ModeRequest::ForcedPmem);
        m.inject_poison(8192, 4096).unwrap();
        match m.flush_lines(4096, 3 * PAGE_SIZE) {
            Err(Error::Poisoned { offset, len }) => assert_eq!((offset, len), (8192, 4096)),
            other => panic!("{other:?}"),
        }
        m.flush_lines(12288, PAGE_SIZE).unwrap();
    }

    #[test]
    fn sidecar_ranges_become_poison_at_open_and_repair_drops_them() {
        for dir in dirs() {
            let path = dir.path().join("pool");
            drop(filled(&path, ModeRequest::Msync));
            let sidecar = BadBlocks::sidecar_path(&path);
            std::fs::write(&sidecar, "# found by scrub\n8192 4096\n20000 100 # partial page\n")
                .unwrap();
            let m = MappedMedium::open(&path, &with_mode(ModeRequest::Msync)).unwrap();
            assert_eq!(m.known_bad(), vec![(8192, 4096), (20000, 100)]);
            assert_eq!(m.poisoned_ranges(), vec![(8192, 4096), (16384, 4096)]);
            assert!(matches!(m.write(8192, b"x"), Err(Error::Poisoned { .. })));
            // Applying the sidecar is not destructive: the file still holds the data.
            let mut page = vec![0u8; PAGE_SIZE as usize];
            m.file.read_exact_at(&mut page, 8192).unwrap();
            assert_eq!(page, expected(8192, 4096));

            let fresh = vec![0x5Au8; PAGE_SIZE as usize];
            m.repair_pages(8192, &fresh).unwrap();
            let mut register = ErrorRegister::deferred();
            let mut back = vec![0u8; PAGE_SIZE as usize];
            m.read(8192, &mut back, &mut register, Domain::User).unwrap();
            assert!(register.is_clean());
            assert_eq!(back, fresh);
            assert_eq!(m.known_bad(), vec![(20000, 100)]);
            assert_eq!(m.poisoned_ranges(), vec![(16384, 4096)]);
            let text = std::fs::read_to_string(&sidecar).unwrap();
            assert_eq!(text, "# found by scrub\n20000 100 # partial page\n");
            m.write(8192, b"x").unwrap();
            drop(m);
            // Reopening applies only what is left.
            let m = MappedMedium::open(&path, &with_mode(ModeRequest::Msync)).unwrap();
            assert_eq!(m.poisoned_ranges(), vec![(16384, 4096)]);
        }
    }

    #[test]
    fn repair_restores_destroyed_data() {
        let [_, disk] = dirs();
        let path = disk.path().join("pool");
        let m = filled(&path, ModeRequest::Msync);
        m.inject_poison(4096, 8192).unwrap();
        let original = expected(4096, 8192);
        m.repair_pages(4096, &original).unwrap();
        assert!(m.poisoned_ranges().is_empty());
        assert!(!BadBlocks::sidecar_path(&path).exists(), "no sidecar is created by a repair");
        drop(m);
        let m = MappedMedium::open(&path, &MapOptions::new()).unwrap();
        let mut back = vec![0u8; 8192];
        m.read(4096, &mut back, &mut ErrorRegister::deferred(), Domain::User).unwrap();
        assert_eq!(back, original);
        assert!(matches!(m.repair_pages(LEN, &original), Err(Error::OutOfBounds { .. })));
    }

    #[test]
    #[should_panic(expected = "whole aligned pages")]
    fn repair_of_a_partial_page_is_a_programmer_error() {
        let [shm, _] = dirs();
        let m = filled(&shm.path().join("pool"), ModeRequest::Msync);
        let _ = m.repair_pages(4096, &[0u8; 100]);
    }

    #[test]
    fn sidecar_ranges_beyond_the_end_apply_when_grown() {
        let [shm, _] = dirs();
        let path = shm.path().join("pool");
        drop(filled(&path, ModeRequest::ForcedPmem));
        std::fs::write(BadBlocks::sidecar_path(&path), format!("{} 4096\n", LEN + 4096)).unwrap();
        let options = with_mode(ModeRequest::ForcedPmem).max_len(2 * LEN);
        let m = MappedMedium::open(&path, &options).unwrap();
        assert_eq!(m.known_bad(), vec![(LEN + 4096, 4096)]);
        assert!(m.poisoned_ranges().is_empty());
        m.grow(2 * LEN).unwrap();
        assert_eq!(m.poisoned_ranges(), vec![(LEN + 4096, 4096)]);
        assert!(matches!(m.store_u64(LEN + 4096, 1), Err(Error::Poisoned { .. })));
        m.store_u64(LEN, 1).unwrap();
    }
}
