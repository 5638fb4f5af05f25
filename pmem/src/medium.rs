//! The `Medium` trait: a persistent byte range as the layers above see it.
//!
//! INVARIANT: no method returns a reference into the medium's memory (poison or a concurrent
//! writer may change it under us; a Rust reference to it would be unsound). Bytes come out only
//! through [`Medium::read`], a machine-check-safe copy that records poison in the caller's
//! register instead of faulting.

use crate::error::{Error, Result};
use crate::mcsafe::MappingId;
use crate::register::{Domain, ErrorRegister};
use crate::xxh3::Xxh3Stream;

/// Index of a member in a pool set (0 = primary).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct MemberId(pub u8);

/// A named persist point: every `fence` says which one it is. The static registry of all sites
/// lives with the code that persists (`mcstore_recovery::sites`); crash harnesses count reaches
/// and crashes per site and fail when a site was never crashed at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FenceSite(pub &'static str);

/// A persistent byte range.
///
/// Writes become durable only after `flush` of their range followed by `fence`.
/// [`Medium::store_u64`] is the only failure-atomic write: after a crash the word holds either
/// its old or its new value, never a mix.
pub trait Medium: Send + Sync {
    /// Current length in bytes.
    fn len(&self) -> u64;

    /// Whether the medium has no bytes (never true for an opened pool).
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Which member of a pool set this medium is; recorded in every fault.
    fn member(&self) -> MemberId;

    /// Store `data` at `offset`. Not failure-atomic and not durable until flushed and fenced.
    fn write(&self, offset: u64, data: &[u8]) -> Result<()>;

    /// Store one aligned 8-byte word (little-endian) in a single store: the only failure-atomic
    /// write. Panics if `offset` is not 8-aligned (a programmer error).
    fn store_u64(&self, offset: u64, value: u64) -> Result<()>;

    /// Store `data` at `offset` and write it back: afterwards the range is as `write` then
    /// `flush` of it leave it, except that the next `fence` on ANY thread orders it (a medium
    /// whose write-back needs a fence on the storing thread, as non-temporal stores do, issues
    /// one itself). Refused like `write` (nothing stored) over a known-poisoned page. The
    /// default is `write` then `flush`.
    fn write_through(&self, offset: u64, data: &[u8]) -> Result<()> {
        self.write(offset, data)?;
        self.flush(offset, data.len() as u64)
    }

    /// Whether [`Medium::write_through`] is the cheaper way to persist a large store (streaming
    /// stores, no separate write-back pass), so the caller should use it and skip its own flush
    /// of that range. Default: no.
    fn writes_through(&self) -> bool {
        false
    }

    /// Make the pages of `[offset, offset + len)` resident and writable now, so that first
    /// stores there take no page fault (a hint: a medium may do nothing, and pages it knows to be
    /// bad are left alone). Default: nothing.
    fn prefault(&self, offset: u64, len: u64) -> Result<()> {
        let _ = (offset, len);
        Ok(())
    }

    /// Start loading the lines of `[offset, offset + len)` toward the cache, so that reads soon
    /// after miss less (a hint: no read happens, no fault is met or recorded, out-of-bounds
    /// ranges are ignored). Default: nothing.
    fn prefetch(&self, offset: u64, len: u64) {
        let _ = (offset, len);
    }

    /// Write back the cache lines (or pages) of `[offset, offset + len)`; ordered by `fence`.
    fn flush(&self, offset: u64, len: u64) -> Result<()>;

    /// Order: every flush issued before it is durable before any store issued after it.
    /// `site` names the persist point (see [`FenceSite`]); crash harnesses count and crash there.
    fn fence(&self, site: FenceSite) -> Result<()>;

    /// Machine-check-safe copy of `[offset, offset + dst.len())` into `dst`. Poisoned units are
    /// zero-filled in `dst` and recorded in `register` with `domain`; with the `Immediate` mask
    /// the copy stops at the first one (the rest of `dst` is zero-filled). Errors only for
    /// out-of-bounds access.
    fn read(
        &self,
        offset: u64,
        dst: &mut [u8],
        register: &mut ErrorRegister,
        domain: Domain,
    ) -> Result<()>;

    /// [`read`](Medium::read) that also feeds the bytes it wrote into `dst` to `hash`, as
    /// `hash.update(dst)` right after it would. A mapped medium copies and hashes the bulk in one
    /// pass (`mcsafe::read_safe_hashing`). Default: the read, then the update.
    fn read_hashing(
        &self,
        offset: u64,
        dst: &mut [u8],
        register: &mut ErrorRegister,
        domain: Domain,
        hash: &mut Xxh3Stream,
    ) -> Result<()> {
        self.read(offset, dst, register, domain)?;
        hash.update(dst);
        Ok(())
    }

    /// Grow to `new_len` bytes (never shrinks; a smaller or equal length is a no-op). New bytes
    /// read as zero. The base of a mapping never moves, so concurrent readers stay valid.
    fn grow(&self, new_len: u64) -> Result<()>;

    /// Whether a flush is a no-op for durability (eADR: caches are in the persistence domain).
    fn flush_is_noop(&self) -> bool {
        false
    }

    /// Rewrite `[offset, offset + data.len())` with good bytes through the medium's repair
    /// primitive: the write persists (as the mode requires) and clears poison there, and the
    /// range leaves the medium's bad-block list. A `MappedMedium` needs whole aligned pages.
    /// The default refuses: a medium without a repair path cannot be healed in place.
    fn repair(&self, offset: u64, data: &[u8]) -> Result<()> {
        Err(Error::io(
            format!("repair of [{offset}, +{}) on member {}", data.len(), self.member().0),
            std::io::Error::new(std::io::ErrorKind::Unsupported, "this medium has no repair path"),
        ))
    }

    /// Ranges `(offset, len)` the medium was told are bad (a bad-block list applied at open) and
    /// that are not repaired yet. Default: none.
    fn bad_blocks(&self) -> Vec<(u64, u64)> {
        Vec::new()
    }

    /// The mapping registered for asynchronous poison notices, if the medium is mapped (matches
    /// [`crate::mcsafe::AsyncNotice::mapping`]). Default: none.
    fn mapping(&self) -> Option<MappingId> {
        None
    }
}

/// Read a little-endian `u64` through the machine-check-safe path.
pub fn read_u64<M: Medium + ?Sized>(
    medium: &M,
    offset: u64,
    register: &mut ErrorRegister,
    domain: Domain,
) -> Result<u64> {
    let mut word = [0u8; 8];
    medium.read(offset, &mut word, register, domain)?;
    Ok(u64::from_le_bytes(word))
}

/// Read `len` bytes at `offset` of `m` in the User domain, asserting the read is clean (tests).
#[cfg(test)]
pub(crate) fn read_clean(m: &dyn Medium, offset: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    let mut register = ErrorRegister::deferred();
    m.read(offset, &mut out, &mut register, Domain::User).expect("a clean read");
    assert!(register.is_clean(), "{:?}", register.faults());
    out
}
