//! The [`Medium`] implementation of [`MappedMedium`]: plain and write-through (streamed) writes,
//! the failure-atomic 8-byte store, flush and fence by mode, reads through the
//! machine-check-safe copy, the prefetch and prefault hints, and growth in place.
//!
//! INVARIANT: every access is bounds-checked against the current length before memory is
//! touched; a write, store or flush never reaches a page this medium knows to be poisoned
//! (checked under one relaxed "any poison" flag). Reads go through the machine-check-safe copy
//! only. Growth maps the new piece before readers can see the new length.
#![allow(unsafe_code)]

use std::sync::atomic::Ordering;

use crate::error::{Error, Result};
use crate::limits::{CACHE_LINE, PAGE_SIZE};
use crate::medium::{FenceSite, Medium, MemberId};
use crate::register::{Domain, ErrorRegister};
use crate::xxh3::Xxh3Stream;

use super::file;
use super::glue;
use super::medium::MappedMedium;
use super::mode::Mode;

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

    fn write_through(&self, offset: u64, data: &[u8]) -> Result<()> {
        if !self.writes_through() {
            self.write(offset, data)?;
            return self.flush(offset, data.len() as u64);
        }
        let end = self.check_bounds(offset, data.len() as u64)?;
        self.refuse_read_only("write")?;
        self.check_poison(offset, end)?;
        // The whole lines inside the range are streamed; the partial lines at its edges (shared
        // with neighbouring bytes) are stored normally and written back with the flush loop.
        let first = offset.next_multiple_of(glue::LINE_BYTES).min(end);
        let last = (end / glue::LINE_BYTES * glue::LINE_BYTES).max(first);
        let head = (first - offset) as usize;
        let body = (last - first) as usize;
        if body == 0 {
            self.write(offset, data)?;
            self.flush_lines(offset, data.len() as u64)?;
        } else {
            // SAFETY: `[offset, end)` is inside the mapped length (checked above), writable and
            // not a known hole; `data` cannot overlap the mapping (no Rust reference into it
            // exists).
            unsafe {
                std::ptr::copy_nonoverlapping(data.as_ptr(), self.addr(offset), head);
            }
            // SAFETY: as above; `first` is line-aligned (the base is page-aligned) and `body`
            // whole lines long.
            unsafe { glue::stream(self.addr(first), data[head..].as_ptr(), body) };
            let tail = &data[head + body..];
            // SAFETY: as above, the bytes after the last whole line.
            unsafe { std::ptr::copy_nonoverlapping(tail.as_ptr(), self.addr(last), tail.len()) };
            if head > 0 {
                self.flush_lines(offset, head as u64)?;
            }
            if !tail.is_empty() {
                self.flush_lines(last, tail.len() as u64)?;
            }
        }
        // PERSIST: drains this thread's streamed lines and orders its write-backs, so a fence
        // on another thread (the group's leader) finds the range durable.
        glue::sfence();
        Ok(())
    }

    fn writes_through(&self) -> bool {
        self.share.mode.uses_flush_instructions() && !self.eadr && !self.share.read_only
    }

    /// `prefetcht0` on each line: it raises nothing on a poisoned or unmapped line (DESIGN.md's
    /// measured facts), so no register is involved.
    fn prefetch(&self, offset: u64, len: u64) {
        let Some(end) = offset.checked_add(len) else { return };
        if len == 0 || end > self.len() {
            return;
        }
        let mut line = offset / CACHE_LINE * CACHE_LINE;
        while line < end {
            crate::hint::prefetch_address(self.addr(line));
            line += CACHE_LINE;
        }
    }

    fn prefault(&self, offset: u64, len: u64) -> Result<()> {
        let end = self.check_bounds(offset, len)?;
        if len == 0 || !self.share.mode.uses_flush_instructions() || self.share.read_only {
            return Ok(());
        }
        let start = offset / PAGE_SIZE * PAGE_SIZE;
        let end = end.next_multiple_of(PAGE_SIZE).min(self.len());
        let mut state = self.state.lock();
        // A poisoned page is a hole no populate may touch, and a known-bad one is never
        // written: leave such a range as it is (this is only a hint).
        if state.populated.covers(start, end)
            || state.poison.first_overlap(start, end).is_some()
            || state.known_bad.first_overlap(start, end).is_some()
        {
            return Ok(());
        }
        self.reservation.populate(start, end - start, true)?;
        state.populated.insert(start, end);
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

    #[inline]
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

    #[inline]
    fn read_hashing(
        &self,
        offset: u64,
        dst: &mut [u8],
        register: &mut ErrorRegister,
        domain: Domain,
        hash: &mut Xxh3Stream,
    ) -> Result<()> {
        self.check_bounds(offset, dst.len() as u64)?;
        if dst.is_empty() {
            return Ok(());
        }
        // SAFETY: as in `read`.
        unsafe {
            glue::read_hashing(
                dst,
                self.addr(offset),
                self.reservation.base(),
                self.member,
                register,
                domain,
                hash,
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
        state.populated.insert(old_len, new_len);
        self.apply_known_bad(&mut state, old_len, new_len)?;
        // INVARIANT: the new piece is mapped (and its known-bad pages are holes) before readers
        // can see the new length.
        self.len.store(new_len, Ordering::Release);
        Ok(())
    }

    fn flush_is_noop(&self) -> bool {
        self.eadr
    }

    fn repair(&self, offset: u64, data: &[u8]) -> Result<()> {
        self.repair_whole_pages(offset, data)
    }

    fn bad_blocks(&self) -> Vec<(u64, u64)> {
        self.known_bad()
    }

    fn mapping(&self) -> Option<crate::mcsafe::MappingId> {
        self.registration
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileExt;

    use super::*;
    use crate::mapped::open::tests::{LEN, dirs, with_mode};
    use crate::mapped::{MapOptions, ModeRequest};
    use crate::medium::read_clean;

    const SITE: FenceSite = FenceSite("mapped-test");
    const MODES: [ModeRequest; 2] = [ModeRequest::Msync, ModeRequest::ForcedPmem];

    /// `write_through` stores exactly its bytes, whatever the alignment of its ends (streamed
    /// whole lines, stored edge lines), leaves its neighbours alone, persists across reopen, and
    /// is refused over a poisoned page with nothing stored.
    #[test]
    fn write_through_stores_exactly_its_range_and_refuses_poison() {
        let dir = &dirs()[0];
        for mode in MODES {
            let path = dir.path().join(format!("through-{mode:?}"));
            let m = MappedMedium::create(&path, LEN, &with_mode(mode)).unwrap();
            assert_eq!(m.writes_through(), mode == ModeRequest::ForcedPmem);
            let area = 6 * PAGE_SIZE as usize;
            let mut expected = vec![0xaau8; area];
            m.write(0, &expected).unwrap();
            for (i, (offset, len)) in
                [(100usize, 5000usize), (128, 4096), (4000, 30), (640, 64), (7, 1), (8, 0)]
                    .into_iter()
                    .enumerate()
            {
                let data: Vec<u8> = (0..len).map(|j| (j * 13 + i) as u8).collect();
                m.write_through(offset as u64, &data).unwrap();
                expected[offset..offset + len].copy_from_slice(&data);
                assert_eq!(read_clean(&m, 0, area), expected, "write_through({offset}, {len})");
            }
            m.fence(SITE).unwrap();
            drop(m);
            let m = MappedMedium::open(&path, &with_mode(mode)).unwrap();
            assert_eq!(read_clean(&m, 0, area), expected);
            m.inject_poison(5 * PAGE_SIZE, 1).unwrap();
            let before = read_clean(&m, 4 * PAGE_SIZE, PAGE_SIZE as usize);
            let refused = m.write_through(5 * PAGE_SIZE - 512, &[0x55u8; 1024]);
            assert!(
                matches!(refused, Err(Error::Poisoned { offset, .. }) if offset == 5 * PAGE_SIZE)
            );
            assert_eq!(read_clean(&m, 4 * PAGE_SIZE, PAGE_SIZE as usize), before, "stored anyway");
        }
    }

    /// `prefault` of an opened pool's range makes it writable without changing a byte; a range
    /// over a poisoned page is left alone (no error: it is a hint).
    #[test]
    fn prefault_changes_nothing_and_skips_poison() {
        let dir = &dirs()[0];
        let path = dir.path().join("prefault");
        let m = MappedMedium::create(&path, LEN, &with_mode(ModeRequest::ForcedPmem)).unwrap();
        m.write(PAGE_SIZE, &[7u8; 100]).unwrap();
        m.flush(PAGE_SIZE, 100).unwrap();
        drop(m);
        let m = MappedMedium::open(&path, &with_mode(ModeRequest::ForcedPmem)).unwrap();
        m.prefault(PAGE_SIZE + 10, 3 * PAGE_SIZE).unwrap();
        assert!(m.state.lock().populated.covers(PAGE_SIZE, 5 * PAGE_SIZE));
        assert_eq!(read_clean(&m, PAGE_SIZE, 100), vec![7u8; 100]);
        m.prefault(PAGE_SIZE, PAGE_SIZE).unwrap(); // already populated: nothing to do
        m.inject_poison(8 * PAGE_SIZE, 1).unwrap();
        m.prefault(7 * PAGE_SIZE, 3 * PAGE_SIZE).unwrap();
        assert!(!m.state.lock().populated.covers(7 * PAGE_SIZE, 8 * PAGE_SIZE));
        assert!(matches!(m.prefault(LEN, 1), Err(Error::OutOfBounds { .. })));
        m.write(7 * PAGE_SIZE, &[1u8; 64]).unwrap();
        assert_eq!(read_clean(&m, 7 * PAGE_SIZE, 64), vec![1u8; 64]);
    }

    /// A prefetch over poison, across the end or past it changes nothing and raises nothing; the
    /// poisoned line still reads as a fault afterwards.
    #[test]
    fn prefetch_changes_nothing_even_over_poison_or_out_of_bounds() {
        let dir = &dirs()[0];
        let path = dir.path().join("prefetch");
        let m = MappedMedium::create(&path, LEN, &with_mode(ModeRequest::ForcedPmem)).unwrap();
        m.write(PAGE_SIZE, &[7u8; 300]).unwrap();
        m.inject_poison(3 * PAGE_SIZE + 64, 1).unwrap();
        m.prefetch(PAGE_SIZE + 3, 300);
        m.prefetch(3 * PAGE_SIZE, PAGE_SIZE);
        m.prefetch(LEN - 10, 64);
        m.prefetch(u64::MAX - 1, 8);
        m.prefetch(LEN, 0);
        assert_eq!(read_clean(&m, PAGE_SIZE, 300), vec![7u8; 300]);
        let mut line = [0u8; 64];
        let mut register = ErrorRegister::deferred();
        m.read(3 * PAGE_SIZE + 64, &mut line, &mut register, Domain::User).unwrap();
        assert_eq!(register.faults().len(), 1);
    }

    #[test]
    fn write_read_store_flush_round_trip_and_persist_across_reopen() {
        for dir in dirs() {
            for mode in MODES {
                let path = dir.path().join(format!("pool-{mode:?}"));
                let m = MappedMedium::create(&path, LEN, &with_mode(mode).populate(true)).unwrap();
                let data: Vec<u8> = (0..300u32).map(|i| (i * 7) as u8).collect();
                m.write(4000, &data).unwrap(); // straddles a page boundary
                m.store_u64(8192, 0x0102_0304_0506_0708).unwrap();
                m.flush(4000, data.len() as u64).unwrap();
                m.flush(8192, 8).unwrap();
                m.fence(SITE).unwrap();
                assert_eq!(read_clean(&m, 4000, data.len()), data);
                assert_eq!(
                    crate::read_u64(&m, 8192, &mut ErrorRegister::deferred(), Domain::User)
                        .unwrap(),
                    0x0102_0304_0506_0708
                );
                // The store is little-endian in the file, whatever the mode.
                let mut word = [0u8; 8];
                m.file.read_exact_at(&mut word, 8192).unwrap();
                assert_eq!(word, 0x0102_0304_0506_0708u64.to_le_bytes());
                drop(m);
                let m = MappedMedium::open(&path, &with_mode(mode)).unwrap();
                assert_eq!(read_clean(&m, 4000, data.len()), data);
                assert_eq!(read_clean(&m, 8192, 8), 0x0102_0304_0506_0708u64.to_le_bytes());
                assert_eq!(read_clean(&m, 0, 16), vec![0u8; 16]);
            }
        }
    }

    #[test]
    fn out_of_bounds_accesses_are_errors_before_touching_memory() {
        let [shm, _] = dirs();
        let m = MappedMedium::create(&shm.path().join("pool"), LEN, &MapOptions::new()).unwrap();
        let oob = |r: Result<()>| match r {
            Err(Error::OutOfBounds { medium_len, .. }) => assert_eq!(medium_len, LEN),
            other => panic!("{other:?}"),
        };
        oob(m.write(LEN - 4, &[1; 8]));
        oob(m.write(u64::MAX, &[1]));
        oob(m.store_u64(LEN, 1));
        oob(m.flush(LEN - 64, 128));
        oob(m.flush(u64::MAX - 1, 4));
        let mut buf = [0u8; 16];
        oob(m.read(LEN - 8, &mut buf, &mut ErrorRegister::deferred(), Domain::User));
        // Exactly at the end is fine, and the refused write changed nothing.
        m.write(LEN - 8, &[9; 8]).unwrap();
        m.write(LEN, &[]).unwrap();
        assert_eq!(read_clean(&m, LEN - 8, 8), vec![9; 8]);
        assert_eq!(read_clean(&m, LEN - 16, 8), vec![0; 8]);
    }

    #[test]
    #[should_panic(expected = "unaligned")]
    fn unaligned_store_u64_is_a_programmer_error() {
        let [shm, _] = dirs();
        let m = MappedMedium::create(&shm.path().join("pool"), LEN, &MapOptions::new()).unwrap();
        let _ = m.store_u64(12, 1);
    }

    #[test]
    fn grow_keeps_the_base_and_the_data() {
        for dir in dirs() {
            for mode in MODES {
                let path = dir.path().join(format!("pool-{mode:?}"));
                let options = with_mode(mode).max_len(4 * LEN);
                let m = MappedMedium::create(&path, LEN, &options).unwrap();
                assert_eq!(m.max_len(), 4 * LEN);
                let base = m.base_address();
                m.store_u64(LEN - 8, 0xfeed).unwrap();
                m.grow(3 * LEN).unwrap();
                assert_eq!((m.len(), m.base_address()), (3 * LEN, base));
                assert_eq!(read_clean(&m, LEN - 8, 8), 0xfeedu64.to_le_bytes());
                assert_eq!(read_clean(&m, LEN, 64), vec![0; 64], "new bytes read as zero");
                m.write(3 * LEN - 5, b"tail!").unwrap();
                m.flush(3 * LEN - 5, 5).unwrap();
                m.fence(SITE).unwrap();
                m.grow(2 * LEN).unwrap(); // smaller: a no-op
                assert_eq!(m.len(), 3 * LEN);
                assert!(matches!(m.grow(3 * LEN + 100), Err(Error::BadSize { .. })));
                match m.grow(5 * LEN) {
                    Err(Error::BeyondMax { requested, max }) => {
                        assert_eq!((requested, max), (5 * LEN, 4 * LEN))
                    }
                    other => panic!("{other:?}"),
                }
                assert_eq!(m.len(), 3 * LEN);
                drop(m);
                assert_eq!(std::fs::metadata(&path).unwrap().len(), 3 * LEN);
                let m = MappedMedium::open(&path, &with_mode(mode)).unwrap();
                assert_eq!(read_clean(&m, 3 * LEN - 5, 5), b"tail!");
            }
        }
    }

    #[test]
    fn grow_beyond_the_file_system_is_out_of_space() {
        // /dev/shm is a 24 GiB tmpfs here; fallocate of 1 TiB fails with ENOSPC before it
        // allocates anything. The reservation is address space only (MAP_NORESERVE).
        let [shm, _] = dirs();
        let tib = 1u64 << 40;
        let options = MapOptions::new().max_len(2 * tib);
        let m = MappedMedium::create(&shm.path().join("pool"), LEN, &options).unwrap();
        match m.grow(tib) {
            Err(Error::OutOfSpace { requested }) => assert_eq!(requested, tib),
            other => panic!("{other:?}"),
        }
        assert_eq!(m.len(), LEN);
        m.write(0, b"still fine").unwrap();
    }

    #[test]
    fn read_only_medium_reads_and_refuses_changes() {
        let [_, disk] = dirs();
        let path = disk.path().join("pool");
        let m = MappedMedium::create(&path, LEN, &MapOptions::new()).unwrap();
        m.write(100, b"hello").unwrap();
        m.flush(100, 5).unwrap();
        drop(m);
        let m =
            MappedMedium::open(&path, &MapOptions::new().read_only(true).max_len(2 * LEN)).unwrap();
        assert_eq!(read_clean(&m, 100, 5), b"hello");
        let refused = |r: Result<()>| match r {
            Err(Error::ReadOnly { path: p, .. }) => assert_eq!(p, path),
            other => panic!("{other:?}"),
        };
        refused(m.write(0, b"x"));
        refused(m.store_u64(0, 1));
        refused(m.grow(2 * LEN));
        refused(m.inject_poison(0, 1));
        m.flush(100, 5).unwrap();
        assert_eq!(read_clean(&m, 0, 8), vec![0; 8]);
    }

    #[test]
    fn concurrent_readers_see_grown_data_while_the_medium_grows() {
        let [shm, _] = dirs();
        let options = with_mode(ModeRequest::ForcedPmem).max_len(16 * LEN);
        let m = MappedMedium::create(&shm.path().join("pool"), LEN, &options).unwrap();
        m.store_u64(0, 42).unwrap();
        std::thread::scope(|s| {
            let reader = s.spawn(|| {
                // Every length a reader sees is fully mapped: its last word reads (as zero).
                loop {
                    let end = m.len();
                    assert_eq!(read_clean(&m, 0, 8), 42u64.to_le_bytes());
                    assert_eq!(read_clean(&m, end - 8, 8), vec![0; 8]);
                    if end == 16 * LEN {
                        break;
                    }
                }
            });
            for step in 2..=16 {
                m.grow(step * LEN).unwrap();
            }
            reader.join().unwrap();
        });
    }
}
