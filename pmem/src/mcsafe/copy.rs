//! `read_safe`: the machine-check-safe copy that records every poisoned unit it meets in the
//! caller's register, zero-fills it in the destination and carries on after it.
//!
//! INVARIANT: when `read_safe` returns, every byte of `dst` equals the source byte, except the
//! bytes of recorded poisoned units (zero) and, under `Mask::Immediate`, every byte after the
//! first unit (zero). A clean read costs one atomic load and a branch more than the copy
//! routine itself.
#![expect(unsafe_code, reason = "calls the assembly copy routines on raw mapped memory")]

use super::call::{self, ClaimedFault, Routine};
use super::dispatch::Dispatch;
use super::handler::sigbus_blocked;
use crate::limits::{CACHE_LINE, PAGE_SIZE};
use crate::medium::MemberId;
use crate::register::{Domain, ErrorRegister, Fault, FaultCode, Mask};
use crate::xxh3::Xxh3Stream;

/// The poisoned unit around a claimed fault, as `(start address, length)`: a page for
/// `BUS_ADRERR` (emulated poison; `si_addr_lsb` is not valid there), `max(64, 1 << lsb)` for a
/// machine check. The lsb is capped at 30 (1 GiB, the largest page).
fn poisoned_unit(addr: usize, si_code: i32, lsb: u8) -> (usize, usize, FaultCode) {
    let (len, code) = if si_code == libc::BUS_ADRERR {
        (PAGE_SIZE as usize, FaultCode::AdrErr)
    } else {
        ((1usize << lsb.min(30)).max(CACHE_LINE as usize), FaultCode::McErrAr)
    };
    (addr & !(len - 1), len, code)
}

/// Machine-check-safe copy of `dst.len()` bytes from `src` into `dst`, recording each poisoned
/// unit in `register` as offset `unit_start - base` of `member` in `domain`.
///
/// Under [`Mask::Deferred`] every poisoned unit of the range is recorded and zero-filled and the
/// rest is copied; under [`Mask::Immediate`] the copy stops at the first unit and the rest of
/// `dst` is zero-filled. Installs the SIGBUS handler on first use.
///
/// # Safety
/// - `[src, src + dst.len())` lies in one live mapping that starts at or after `base`
///   (poisoned pages allowed); bounds are the caller's job.
/// - `dst` does not overlap that range.
/// - SIGBUS is not blocked in the calling thread (asserted in debug builds): the kernel would
///   kill the process instead of running the handler.
#[inline(always)]
pub unsafe fn read_safe(
    dst: &mut [u8],
    src: *const u8,
    base: *const u8,
    member: MemberId,
    register: &mut ErrorRegister,
    domain: Domain,
) {
    debug_assert!(src as usize >= base as usize, "source below the mapping's base");
    debug_assert!(!sigbus_blocked(), "mcsafe read on a thread that blocks SIGBUS");
    let dispatch = Dispatch::load();
    let len = dst.len();
    let outcome = if dispatch.is_auto_avx2() {
        // SAFETY: the caller vouches for both ranges; the dispatch bits say AVX2 exists.
        unsafe { call::copy_auto(dst.as_mut_ptr(), src, len) }
    } else {
        let routine = dispatch.routine(dst.as_ptr() as usize, src as usize, len);
        // SAFETY: the caller vouches for both ranges; the routine exists on this CPU.
        unsafe { call::copy(routine, dst.as_mut_ptr(), src, len) }
    };
    if let Some(fault) = outcome.fault() {
        // The routine that ran (`copy_auto` applies the same rule), for the recovery.
        let routine = dispatch.routine(dst.as_ptr() as usize, src as usize, len);
        let read = Read {
            dst: dst.as_mut_ptr(),
            total: len,
            src: src as usize,
            base: base as usize,
            member,
            domain,
            register,
            dispatch,
        };
        recover(read, fault, routine);
    }
}

/// [`read_safe`] of `dst.len()` bytes that also feeds them to `hash`, as `hash.update(dst)` after
/// the copy would. On an AVX2 CPU under the automatic copy choice, from 8 KiB, the whole stripes
/// in the middle are copied and hashed in one pass (`mcsafe_copy_xxh3`: each 64 bytes are hashed
/// from the registers they pass through, instead of being read again from the cache). If that
/// meets a fault, `read_safe` copies the whole range again (recording exactly what it records
/// alone) and the stream hashes what it left in `dst`. Otherwise the range is copied and hashed
/// piece by piece.
///
/// # Safety
/// As [`read_safe`].
pub unsafe fn read_safe_hashing(
    dst: &mut [u8],
    src: *const u8,
    base: *const u8,
    member: MemberId,
    register: &mut ErrorRegister,
    domain: Domain,
    hash: &mut Xxh3Stream,
) {
    let finished = dst.len() >= FUSED_MIN_BYTES
        && Dispatch::load().is_auto_avx2()
        && hash.update_copying(
            dst,
            |part, at| {
                // SAFETY: `part` is `dst[at..][..part.len()]`, so its source lies in the
                // caller's range; AVX2 is present (the dispatch says so).
                let outcome =
                    unsafe { call::copy_auto(part.as_mut_ptr(), src.wrapping_add(at), part.len()) };
                finished_cleanly(outcome)
            },
            |part, at, state| {
                // SAFETY: as above; `part` is whole stripes and `state` is the stream's own,
                // over the default secret.
                let outcome = unsafe {
                    call::copy_xxh3(part.as_mut_ptr(), src.wrapping_add(at), part.len() / 64, state)
                };
                finished_cleanly(outcome)
            },
        );
    if finished {
        return;
    }
    // Each piece is hashed right after its copy, while it is in cache. Pieces end on the
    // source's page boundaries, so the register records what one read of the range would
    // (adjacent units merge); under `Immediate` the read is one piece, as it stops at a fault.
    let mut at = 0;
    while at < dst.len() {
        let end = match register.mask() {
            Mask::Deferred => {
                let next = (src as usize + at) / HASHED_PIECE_BYTES * HASHED_PIECE_BYTES;
                (next + HASHED_PIECE_BYTES - src as usize).min(dst.len())
            }
            Mask::Immediate => dst.len(),
        };
        let piece = &mut dst[at..end];
        // SAFETY: `piece` is `dst[at..end]`, so its source lies in the caller's range.
        unsafe { read_safe(piece, src.wrapping_add(at), base, member, register, domain) };
        hash.update(piece);
        at = end;
    }
}

/// The shortest read [`read_safe_hashing`] copies and hashes in one pass. Below it the one pass
/// measured no faster than a copy, then a hash from L1 (4 KiB values: 2.26–2.33 GB/s against
/// 2.30–2.42; 8 KiB: 3.36–3.79 against 3.25–3.40; `docs/performance.md`, "Large values").
const FUSED_MIN_BYTES: usize = 8 << 10;

/// The piece [`read_safe_hashing`] copies, then hashes, when it does not do both in one pass:
/// half of a 32 KiB L1 (measured: `docs/performance.md`, "Large values"), whole pages.
const HASHED_PIECE_BYTES: usize = 16 << 10;
const _: () = assert!(HASHED_PIECE_BYTES.is_multiple_of(PAGE_SIZE as usize));

/// Whether a routine finished (else: clear the upper vector halves its fault left dirty).
fn finished_cleanly(outcome: call::RawOutcome) -> bool {
    if outcome.fault().is_some() {
        call::after_avx2_fault();
        return false;
    }
    true
}

/// [`read_safe`] between two Rust slices: the machine-check-safe copy routine, its dispatch and
/// its fault recovery, without a [`crate::Medium`] around it. Faults (a hardware memory error
/// in DRAM under `src`) are recorded as offsets from the start of `src`, as member `member`.
///
/// Safe because `src` is a live slice that cannot overlap `dst`. Used where bytes already in
/// process memory are copied under the same error discipline as mapped reads, and by the
/// benchmark to measure the copy itself against `copy_from_slice` on equal terms.
///
/// # Panics
/// If the lengths differ (as `copy_from_slice` does).
#[inline]
pub fn copy_from_slice_checked(
    dst: &mut [u8],
    src: &[u8],
    member: MemberId,
    register: &mut ErrorRegister,
    domain: Domain,
) {
    assert_eq!(dst.len(), src.len(), "copy_from_slice_checked between slices of unequal length");
    // SAFETY: `src` is a live slice of `dst.len()` bytes starting at `base` (= itself), and a
    // `&[u8]` cannot overlap a `&mut [u8]`. A SIGBUS-blocking thread is asserted in debug builds
    // inside `read_safe`; like any load in such a thread, a fault there kills the process.
    unsafe { read_safe(dst, src.as_ptr(), src.as_ptr(), member, register, domain) }
}

/// The first routine call over the whole range met `fault`: finish the read from there.
#[cold]
#[inline(never)]
fn recover(mut read: Read<'_>, fault: ClaimedFault, routine: Routine) {
    let total = read.total;
    read.copy_range(0, total, Some((fault, routine)));
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

/// One `read_safe` call in progress; offsets are relative to the start of the copy.
struct Read<'r> {
    dst: *mut u8,
    total: usize,
    src: usize,
    base: usize,
    member: MemberId,
    domain: Domain,
    register: &'r mut ErrorRegister,
    dispatch: Dispatch,
}

impl Read<'_> {
    /// Copy `[from, to)`, handling every fault in it (`pending`: a fault already met by a call
    /// over `[from, to)`). Recursion only re-copies a prefix that a faulting routine may have
    /// left unfinished (fast-string loads run ahead of the stores).
    fn copy_range(
        &mut self,
        from: usize,
        to: usize,
        mut pending: Option<(ClaimedFault, Routine)>,
    ) -> Flow {
        let mut cur = from;
        while cur < to {
            let (fault, routine) = match pending.take() {
                Some(met) => met,
                None => {
                    let routine =
                        self.dispatch.routine(self.dst as usize + cur, self.src + cur, to - cur);
                    // SAFETY: `[cur, to)` lies inside both ranges `read_safe`'s caller vouched for.
                    let outcome = unsafe {
                        call::copy(
                            routine,
                            self.dst.wrapping_add(cur),
                            (self.src + cur) as *const u8,
                            to - cur,
                        )
                    };
                    match outcome.fault() {
                        None => return Flow::Continue,
                        Some(fault) => (fault, routine),
                    }
                }
            };
            if routine == Routine::Avx2 {
                call::after_avx2_fault();
            }
            let (unit_from, unit_to, recorded) = self.unit_within(fault, cur, to);
            // Resume from si_addr, never from RSI: the bytes before the unit may not be copied.
            if unit_from > cur && self.copy_range(cur, unit_from, None) == Flow::Stop {
                return Flow::Stop;
            }
            if self.register.faults().last() != Some(&recorded) {
                self.register.record(recorded);
            }
            self.zero(unit_from, unit_to);
            if self.register.mask() == Mask::Immediate {
                self.zero(unit_to, self.total);
                return Flow::Stop;
            }
            cur = unit_to;
        }
        Flow::Continue
    }

    /// The part `[from, to)` of the copy covered by the fault's unit (never empty, so the copy
    /// always progresses), and the register entry for the whole unit. `si_addr` may lie before
    /// `from` (the kernel reports some machine checks by page address).
    fn unit_within(&self, fault: ClaimedFault, cur: usize, to: usize) -> (usize, usize, Fault) {
        let lo = self.src + cur;
        let hi = self.src + to;
        let (mut unit_start, mut unit_len, code) =
            poisoned_unit(fault.addr, fault.si_code, fault.lsb);
        if unit_start.saturating_add(unit_len) <= lo || unit_start >= hi {
            debug_assert!(false, "fault {fault:?} outside the read [{lo:#x}, {hi:#x})");
            // Charge the unit holding the first byte rather than loop forever.
            (unit_start, unit_len, _) = poisoned_unit(lo, fault.si_code, fault.lsb);
        }
        let unit_end = unit_start + unit_len;
        let start = unit_start.max(self.base);
        let recorded = Fault {
            member: self.member,
            offset: (start - self.base) as u64,
            len: (unit_end - start) as u64,
            domain: self.domain,
            code,
        };
        (unit_start.max(lo) - self.src, unit_end.min(hi) - self.src, recorded)
    }

    fn zero(&mut self, from: usize, to: usize) {
        if from < to {
            // SAFETY: `[from, to)` lies in the caller's destination slice.
            unsafe { std::ptr::write_bytes(self.dst.wrapping_add(from), 0, to - from) };
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::mcsafe::dispatch::{CopyVariant, copy_variant, set_copy_variant};
    use crate::mcsafe::testutil::PoisonedFile;

    /// Tests that change the process-wide variant hold this.
    pub(crate) static VARIANT_LOCK: Mutex<()> = Mutex::new(());

    const PAGE: usize = PAGE_SIZE as usize;

    fn fault(page: usize, pages: usize) -> Fault {
        Fault {
            member: MemberId(2),
            offset: (page * PAGE) as u64,
            len: (pages * PAGE) as u64,
            domain: Domain::Engine,
            code: FaultCode::AdrErr,
        }
    }

    /// The register a read of `[off, off + len)` must end with: every poisoned page it touches
    /// (adjacent ones coalesced), or only the first under `Immediate`.
    fn expected_faults(file: &PoisonedFile, off: usize, len: usize, mask: Mask) -> Vec<Fault> {
        let mut faults: Vec<Fault> = Vec::new();
        if len == 0 {
            return faults;
        }
        for page in off / PAGE..=(off + len - 1) / PAGE {
            if !file.is_poisoned(page) {
                continue;
            }
            match faults.last_mut() {
                Some(last) if last.end() == (page * PAGE) as u64 => last.len += PAGE as u64,
                _ => faults.push(fault(page, 1)),
            }
            if mask == Mask::Immediate {
                break;
            }
        }
        faults
    }

    /// Read `[off, off + len)` of `file` and check every byte and the register exactly.
    fn check(file: &PoisonedFile, off: usize, len: usize, mask: Mask) {
        check_read(file, off, len, mask, |dst, reg| {
            // SAFETY: the range lies in the file's live mapping; `dst` is a separate vector.
            unsafe { read_safe(dst, file.at(off), file.at(0), MemberId(2), reg, Domain::Engine) }
        });
    }

    /// [`check`] through `read_safe_hashing`, the stream fed `fed` bytes before: and the stream
    /// then hashes exactly those bytes and what the read left in `dst`.
    fn check_hashing(file: &PoisonedFile, off: usize, len: usize, mask: Mask, fed: usize) {
        let before: Vec<u8> = (0..fed).map(|i| (i * 7 + 3) as u8).collect();
        let mut hash = Xxh3Stream::new();
        hash.update(&before);
        let dst = check_read(file, off, len, mask, |dst, reg| {
            // SAFETY: as in `check`.
            unsafe {
                read_safe_hashing(
                    dst,
                    file.at(off),
                    file.at(0),
                    MemberId(2),
                    reg,
                    Domain::Engine,
                    &mut hash,
                )
            }
        });
        let expected = twox_hash::XxHash3_64::oneshot(&[before, dst].concat());
        assert_eq!(hash.digest(), expected, "hash of off {off} len {len} {mask:?} after {fed}");
    }

    /// Run `read` over `[off, off + len)` of `file` and check every byte it wrote and the
    /// register exactly; the bytes read.
    fn check_read(
        file: &PoisonedFile,
        off: usize,
        len: usize,
        mask: Mask,
        read: impl FnOnce(&mut [u8], &mut ErrorRegister),
    ) -> Vec<u8> {
        let mut dst = vec![0xa5u8; len];
        let mut reg = ErrorRegister::new(mask);
        read(&mut dst, &mut reg);
        let expected = expected_faults(file, off, len, mask);
        let what = format!("off {off} len {len} {mask:?} {:?}", copy_variant());
        assert_eq!(reg.faults(), &expected[..], "{what}");
        assert!(!reg.overflowed());
        let stop = match (mask, expected.first()) {
            (Mask::Immediate, Some(first)) => (first.offset as usize).max(off),
            _ => usize::MAX,
        };
        for (i, &byte) in dst.iter().enumerate() {
            let at = off + i;
            let want = if at >= stop || file.is_poisoned(at / PAGE) { 0 } else { file.pattern(at) };
            assert_eq!(byte, want, "byte {at} of {what}");
        }
        dst
    }

    fn poison_matrix() {
        let mut file = PoisonedFile::new(8);
        file.poison(2);
        file.poison(3);
        file.poison(6);
        for mask in [Mask::Deferred, Mask::Immediate] {
            // Unit at the start of the copy (it starts inside a poisoned page).
            check(&file, 3 * PAGE + 100, 2 * PAGE, mask);
            // Units in the middle.
            check(&file, PAGE + 10, 2 * PAGE + 100, mask);
            // Unit at the end.
            check(&file, 5 * PAGE + 7, PAGE + 9, mask);
            // Several units in one copy.
            check(&file, 0, 8 * PAGE, mask);
            check(&file, 100, 8 * PAGE - 300, mask);
            // Small, unaligned, inside a poisoned page and across its edges.
            for len in [1, 3, 7, 8, 15, 31, 33, 100, 2500] {
                check(&file, 2 * PAGE + 13, len, mask);
                check(&file, 2 * PAGE - len / 2 - 1, len, mask);
                check(&file, 4 * PAGE - len / 2, len, mask);
                check(&file, 6 * PAGE - len, len + 1, mask);
                check(&file, 4 * PAGE + 1, len, mask);
            }
            // The copy that hashes as it goes: poison in its middle stripes, at its ends, and
            // in several places, from streams at each kind of position.
            for fed in [0, 48, 241, 300] {
                check_hashing(&file, PAGE + 10, 2 * PAGE + 100, mask, fed);
                check_hashing(&file, 3 * PAGE + 100, 2 * PAGE, mask, fed);
                check_hashing(&file, 5 * PAGE + 7, PAGE + 9, mask, fed);
                check_hashing(&file, 100, 8 * PAGE - 300, mask, fed);
                check_hashing(&file, 2 * PAGE - 70, 100, mask, fed);
            }
        }
    }

    #[test]
    fn every_variant_recovers_real_sigbus() {
        let _guard = VARIANT_LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for variant in
            [CopyVariant::Auto, CopyVariant::RepMovsb, CopyVariant::Vector, CopyVariant::Fragile]
        {
            set_copy_variant(variant);
            assert_eq!(copy_variant(), variant);
            poison_matrix();
        }
        set_copy_variant(CopyVariant::Auto);
    }

    /// The hashing read, under the automatic choice (which copies and hashes the middle
    /// stripes in one pass), copies every length and hashes as the one-shot XXH3 does, from a
    /// stream at every kind of position: short, just long, mid-stripe, on a stripe boundary.
    #[test]
    fn the_hashing_read_copies_and_hashes_every_length() {
        let _guard = VARIANT_LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        set_copy_variant(CopyVariant::Auto);
        let file = PoisonedFile::new(8);
        for fed in [0, 1, 48, 64, 200, 240, 241, 256, 300, 1024, 1030] {
            for len in (0..300).chain([511, 512, 1023, 1024, 1025, 4096, 4097, 16_384, 30_000]) {
                check_hashing(&file, 3 + len % 61, len, Mask::Deferred, fed);
            }
        }
    }

    #[test]
    fn clean_ranges_copy_exactly() {
        let file = PoisonedFile::new(4);
        for (off, len) in [(0, 4 * PAGE), (1, 4 * PAGE - 2), (4000, 200), (17, 0), (63, 1)] {
            check(&file, off, len, Mask::Deferred);
        }
    }

    #[test]
    fn copy_from_slice_checked_copies_every_size_and_offset() {
        let src: Vec<u8> = (0..10_000u32).map(|i| (i * 13 + 1) as u8).collect();
        for len in [0, 1, 7, 31, 32, 63, 64, 65, 200, 256, 257, 4095, 4096, 5000] {
            for (src_off, dst_off) in [(0, 0), (1, 64), (64, 3), (33, 17)] {
                let mut dst = vec![0xeeu8; len + 100];
                let mut reg = ErrorRegister::deferred();
                let s = &src[src_off..src_off + len];
                copy_from_slice_checked(
                    &mut dst[dst_off..dst_off + len],
                    s,
                    MemberId(0),
                    &mut reg,
                    Domain::User,
                );
                assert!(reg.is_clean());
                assert_eq!(&dst[dst_off..dst_off + len], s, "len {len} at {src_off}/{dst_off}");
                assert!(dst[..dst_off].iter().chain(&dst[dst_off + len..]).all(|&b| b == 0xee));
            }
        }
    }

    #[test]
    #[should_panic(expected = "unequal length")]
    fn copy_from_slice_checked_refuses_unequal_lengths() {
        let mut dst = [0u8; 4];
        let mut reg = ErrorRegister::deferred();
        copy_from_slice_checked(&mut dst, &[1, 2, 3], MemberId(0), &mut reg, Domain::User);
    }

    #[test]
    fn overflow_of_the_register_is_respected() {
        let mut file = PoisonedFile::new(40);
        for page in (0..40).step_by(2) {
            file.poison(page);
        }
        let mut dst = vec![0u8; 40 * PAGE];
        let mut reg = ErrorRegister::deferred();
        // SAFETY: the range is the file's live mapping.
        unsafe {
            read_safe(&mut dst, file.at(0), file.at(0), MemberId(2), &mut reg, Domain::Engine)
        };
        assert!(reg.overflowed());
        assert_eq!(reg.faults().len(), crate::limits::REGISTER_CAPACITY);
        for page in 0..40 {
            let bytes = &dst[page * PAGE..(page + 1) * PAGE];
            if page % 2 == 0 {
                assert!(bytes.iter().all(|&b| b == 0), "page {page}");
            } else {
                assert!(bytes.iter().enumerate().all(|(i, &b)| b == file.pattern(page * PAGE + i)));
            }
        }
    }

    #[test]
    fn machine_check_units_follow_lsb() {
        assert_eq!(
            poisoned_unit(0x1234_5678, libc::BUS_ADRERR, 0),
            (0x1234_5000, 4096, FaultCode::AdrErr)
        );
        assert_eq!(
            poisoned_unit(0x1234_5678, libc::BUS_MCEERR_AR, 12),
            (0x1234_5000, 4096, FaultCode::McErrAr)
        );
        assert_eq!(
            poisoned_unit(0x1234_5678, libc::BUS_MCEERR_AR, 21),
            (0x1220_0000, 1 << 21, FaultCode::McErrAr)
        );
        assert_eq!(
            poisoned_unit(0x1234_5678, libc::BUS_MCEERR_AR, 0),
            (0x1234_5640, 64, FaultCode::McErrAr)
        );
    }

    /// A machine check cannot be raised here; feed `recover` the fault the handler would pass
    /// back (page address below the start of the read, as memory_failure reports it).
    fn recover_from(
        file: &PoisonedFile,
        off: usize,
        len: usize,
        fault: ClaimedFault,
    ) -> (Vec<u8>, ErrorRegister) {
        let mut dst = vec![0xa5u8; len];
        let mut register = ErrorRegister::deferred();
        let read = Read {
            dst: dst.as_mut_ptr(),
            total: len,
            src: file.at(off) as usize,
            base: file.at(0) as usize,
            member: MemberId(1),
            domain: Domain::User,
            register: &mut register,
            dispatch: Dispatch::load(),
        };
        recover(read, fault, Routine::Fragile);
        (dst, register)
    }

    #[test]
    fn machine_check_units_are_recorded_whole() {
        let file = PoisonedFile::new(3);
        let page1 = file.at(PAGE) as usize;
        let ar = |addr, lsb| ClaimedFault { addr, si_code: libc::BUS_MCEERR_AR, lsb };
        let (dst, reg) = recover_from(&file, PAGE + 100, PAGE, ar(page1, 12));
        let want = Fault {
            member: MemberId(1),
            offset: PAGE as u64,
            len: PAGE as u64,
            domain: Domain::User,
            code: FaultCode::McErrAr,
        };
        assert_eq!(reg.faults(), &[want]);
        assert!(dst[..PAGE - 100].iter().all(|&b| b == 0));
        assert!(
            dst[PAGE - 100..].iter().enumerate().all(|(i, &b)| b == file.pattern(2 * PAGE + i))
        );
        // A line-sized unit (lsb 6) in the middle of the read.
        let (dst, reg) = recover_from(&file, PAGE, PAGE, ar(page1 + 130, 6));
        assert_eq!(reg.faults(), &[Fault { offset: (PAGE + 128) as u64, len: 64, ..want }]);
        for (i, &b) in dst.iter().enumerate() {
            let want_byte = if (128..192).contains(&i) { 0 } else { file.pattern(PAGE + i) };
            assert_eq!(b, want_byte, "byte {i}");
        }
    }

    #[test]
    fn two_threads_reading_different_poison_never_mix_registers() {
        let mut a = PoisonedFile::new(6);
        a.poison(1);
        let mut b = PoisonedFile::new(6);
        b.poison(4);
        std::thread::scope(|s| {
            for (file, member, page) in [(&a, MemberId(1), 1usize), (&b, MemberId(7), 4usize)] {
                s.spawn(move || {
                    let mut dst = vec![0u8; 6 * PAGE];
                    for _ in 0..300 {
                        let mut reg = ErrorRegister::deferred();
                        // SAFETY: the range is the file's live mapping.
                        unsafe {
                            read_safe(
                                &mut dst,
                                file.at(0),
                                file.at(0),
                                member,
                                &mut reg,
                                Domain::User,
                            )
                        };
                        let want = Fault {
                            member,
                            offset: (page * PAGE) as u64,
                            len: PAGE as u64,
                            domain: Domain::User,
                            code: FaultCode::AdrErr,
                        };
                        assert_eq!(reg.faults(), &[want]);
                        assert!(dst[page * PAGE..(page + 1) * PAGE].iter().all(|&x| x == 0));
                    }
                });
            }
        });
    }
}
