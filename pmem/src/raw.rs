//! The machine's raw persist sequence, for benchmarks only: a file mapped shared, stores, the
//! line write-back instruction over the stored lines, `sfence`. No bounds checks beyond an
//! assert, no poison handling, no register: this is the floor that `Medium` is measured against
//! ("persist within 1.1× of the raw sequence", "W1 ≥ 0.5× the raw two-fence append").
#![allow(unsafe_code)]

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::error::{Error, Result};

const LINE: usize = 64;

/// A shared file mapping with the raw persist sequence.
#[derive(Debug)]
pub struct RawRegion {
    base: *mut u8,
    len: usize,
    _file: File,
}

// SAFETY: the mapping is process-wide memory; `RawRegion` only writes through raw pointers in
// `&self` methods whose callers accept racing writes (benchmarks write disjoint ranges).
unsafe impl Send for RawRegion {}
// SAFETY: as above.
unsafe impl Sync for RawRegion {}

impl RawRegion {
    /// Create (or truncate) `path` to `len` bytes and map it shared and pre-faulted.
    pub fn create(path: &Path, len: usize) -> Result<Self> {
        let file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(|e| Error::io(format!("create {}", path.display()), e))?;
        file.set_len(len as u64).map_err(|e| Error::io("set_len", e))?;
        // SAFETY: a fresh shared mapping of a file we just sized; the kernel picks the address.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                file.as_raw_fd(),
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(Error::last_os("mmap raw region"));
        }
        Ok(Self { base: base.cast(), len, _file: file })
    }

    /// Length of the mapping in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Store `data` at `offset`, write back its lines, fence. Panics if out of bounds.
    pub fn persist(&self, offset: usize, data: &[u8]) {
        assert!(offset.checked_add(data.len()).is_some_and(|end| end <= self.len));
        let dst = self.base.wrapping_add(offset);
        // SAFETY: the range is inside the mapping (asserted above) and `data` is a separate buffer.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len()) };
        self.write_back(offset, data.len());
        // SAFETY: sfence has no operands.
        unsafe { std::arch::x86_64::_mm_sfence() };
    }

    /// The raw two-fence append: persist `record` at `offset`, then store `tail` as one word at
    /// `tail_offset` and persist it. Panics if out of bounds or `tail_offset` is not 8-aligned.
    pub fn two_fence_append(&self, offset: usize, record: &[u8], tail_offset: usize, tail: u64) {
        assert!(tail_offset.is_multiple_of(8) && tail_offset + 8 <= self.len);
        self.persist(offset, record);
        let word = self.base.wrapping_add(tail_offset).cast::<u64>();
        // SAFETY: in bounds and 8-aligned (asserted); the mapping is page-aligned.
        unsafe { std::ptr::write_volatile(word, tail.to_le()) };
        self.write_back(tail_offset, 8);
        // SAFETY: sfence has no operands.
        unsafe { std::arch::x86_64::_mm_sfence() };
    }

    fn write_back(&self, offset: usize, len: usize) {
        let first = offset & !(LINE - 1);
        let mut line = first;
        while line < offset + len {
            let p = self.base.wrapping_add(line);
            // SAFETY: p is mapped; `write_back_line` picks an instruction the CPU has.
            unsafe { write_back_line(p) };
            line += LINE;
        }
    }
}

/// Write back one line with clwb when the CPU has it, else clflushopt, else clflush.
///
/// # Safety
/// `p` must point into a live mapping.
#[inline]
unsafe fn write_back_line(p: *mut u8) {
    match line_insn() {
        // SAFETY: CPUID reported clwb; the caller guarantees `p` is mapped.
        2 => unsafe { std::arch::asm!("clwb [{0}]", in(reg) p, options(nostack, preserves_flags)) },
        // SAFETY: CPUID reported clflushopt; the caller guarantees `p` is mapped.
        1 => unsafe {
            std::arch::asm!("clflushopt [{0}]", in(reg) p, options(nostack, preserves_flags))
        },
        // SAFETY: clflush is baseline x86-64; the caller guarantees `p` is mapped.
        _ => unsafe { std::arch::x86_64::_mm_clflush(p) },
    }
}

/// 2 = clwb, 1 = clflushopt, 0 = clflush; read once from CPUID leaf 7.
fn line_insn() -> u8 {
    static INSN: std::sync::OnceLock<u8> = std::sync::OnceLock::new();
    *INSN.get_or_init(|| {
        let leaf7 = std::arch::x86_64::__cpuid_count(7, 0);
        if leaf7.ebx & (1 << 24) != 0 {
            2
        } else if leaf7.ebx & (1 << 23) != 0 {
            1
        } else {
            0
        }
    })
}

impl Drop for RawRegion {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the range mapped in `create`.
        unsafe { libc::munmap(self.base.cast(), self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persisted_bytes_reach_the_file() {
        let dir = tempfile::tempdir_in("/dev/shm").unwrap();
        let path = dir.path().join("raw");
        let region = RawRegion::create(&path, 8192).unwrap();
        region.two_fence_append(128, b"hello, pmem", 4096, 0x0102_0304_0506_0708);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[128..139], b"hello, pmem");
        assert_eq!(
            u64::from_le_bytes(bytes[4096..4104].try_into().unwrap()),
            0x0102_0304_0506_0708
        );
    }
}
