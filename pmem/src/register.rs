//! The deferred error register: where machine-check-safe reads record the poison they met.
//!
//! A plain value owned by one operation (not by a thread), passed explicitly to every
//! [`crate::Medium::read`]; it moves with the operation across threads and `.await`s. Fixed
//! capacity, no allocation; when full it sets an overflow bit that the commit barrier must treat
//! as failure. INVARIANT: a register that reports clean saw no fault since it was made or cleared.

use std::marker::PhantomData;

use crate::limits::REGISTER_CAPACITY;
use crate::medium::MemberId;

/// Whose bytes a read fetched: decides which policy the commit barrier applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Domain {
    /// Bytes read for a caller's operation (a value, a key being compared).
    #[default]
    User,
    /// Bytes the store itself depends on: recovery, compaction, scrub, superblocks, headers.
    Engine,
}

/// What a read does on meeting poison.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mask {
    /// Record the unit, zero-fill it in the destination, and carry on; the barrier decides.
    #[default]
    Deferred,
    /// Stop at the first poisoned unit: the rest of the destination is zero-filled, unread.
    Immediate,
}

/// How a fault was reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum FaultCode {
    /// `SIGBUS` with `BUS_ADRERR`: emulated poison (a memfd hole); the unit is one page.
    #[default]
    AdrErr,
    /// `SIGBUS` with `BUS_MCEERR_AR`: a machine check consumed by this read.
    McErrAr,
    /// `BUS_MCEERR_AO`: poison the platform found that nobody consumed yet.
    McErrAo,
    /// Poison on a [`crate::SimMedium`] (cache-line units).
    Simulated,
    /// Bytes read cleanly but failed their checksum (recorded by upper layers).
    Checksum,
}

impl FaultCode {
    /// The `si_code` value of a real signal for this code, if it has one.
    pub fn si_code(self) -> Option<i32> {
        match self {
            FaultCode::AdrErr => Some(libc::BUS_ADRERR),
            FaultCode::McErrAr => Some(libc::BUS_MCEERR_AR),
            FaultCode::McErrAo => Some(libc::BUS_MCEERR_AO),
            FaultCode::Simulated | FaultCode::Checksum => None,
        }
    }
}

/// One recorded fault: a range of one member that could not be read (or did not verify).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Fault {
    /// Which member of the pool set.
    pub member: MemberId,
    /// Start of the unit, in bytes from the start of the member.
    pub offset: u64,
    /// Length of the unit in bytes.
    pub len: u64,
    /// The domain of the read that met it.
    pub domain: Domain,
    /// How it was reported.
    pub code: FaultCode,
}

impl Fault {
    /// One past the last byte of the unit.
    pub fn end(&self) -> u64 {
        self.offset.saturating_add(self.len)
    }
}

/// The deferred error register of one operation.
#[derive(Clone, Debug)]
pub struct ErrorRegister {
    faults: [Fault; REGISTER_CAPACITY],
    count: usize,
    overflow: bool,
    mask: Mask,
}

impl Default for ErrorRegister {
    fn default() -> Self {
        Self::new(Mask::Deferred)
    }
}

impl ErrorRegister {
    /// An empty register with the given mask.
    pub fn new(mask: Mask) -> Self {
        Self { faults: [Fault::default(); REGISTER_CAPACITY], count: 0, overflow: false, mask }
    }

    /// An empty register that records and carries on.
    pub fn deferred() -> Self {
        Self::new(Mask::Deferred)
    }

    /// An empty register that stops reads at the first fault.
    pub fn immediate() -> Self {
        Self::new(Mask::Immediate)
    }

    /// The mask reads honour.
    pub fn mask(&self) -> Mask {
        self.mask
    }

    /// Change the mask for later reads.
    pub fn set_mask(&mut self, mask: Mask) {
        self.mask = mask;
    }

    /// No fault recorded and no overflow.
    pub fn is_clean(&self) -> bool {
        self.count == 0 && !self.overflow
    }

    /// More faults were met than the register holds; the barrier treats this as failure.
    pub fn overflowed(&self) -> bool {
        self.overflow
    }

    /// The recorded faults, in the order met (adjacent units of one read coalesced).
    pub fn faults(&self) -> &[Fault] {
        &self.faults[..self.count]
    }

    /// The first recorded fault.
    pub fn first(&self) -> Option<&Fault> {
        self.faults().first()
    }

    /// Whether a later read should stop now: `Immediate` mask and a fault already recorded.
    pub fn should_stop(&self) -> bool {
        self.mask == Mask::Immediate && !self.is_clean()
    }

    /// Record a fault. A fault contiguous with the last one of the same member, domain and code
    /// extends it. Returns `false` when the register was full (the overflow bit is now set).
    pub fn record(&mut self, fault: Fault) -> bool {
        if let Some(last) = self.count.checked_sub(1).map(|i| &mut self.faults[i])
            && last.member == fault.member
            && last.domain == fault.domain
            && last.code == fault.code
            && last.end() == fault.offset
        {
            last.len = last.len.saturating_add(fault.len);
            return true;
        }
        if self.count == REGISTER_CAPACITY {
            self.overflow = true;
            return false;
        }
        self.faults[self.count] = fault;
        self.count += 1;
        true
    }

    /// Append every fault of `other` (keeping its overflow bit).
    pub fn merge(&mut self, other: &ErrorRegister) {
        for fault in other.faults() {
            self.record(*fault);
        }
        self.overflow |= other.overflow;
    }

    /// Forget every fault and the overflow bit; the mask stays.
    pub fn clear(&mut self) {
        self.count = 0;
        self.overflow = false;
    }
}

/// A `!Send` guard that owns a register for synchronous code and insists it be looked at.
///
/// Dereferences to the register. Dropping it with faults that nobody inspected (through
/// [`RegisterScope::finish`] or [`RegisterScope::is_clean`]) is a programmer error, asserted in
/// debug builds (not while panicking).
pub struct RegisterScope {
    register: ErrorRegister,
    inspected: bool,
    _not_send: PhantomData<*const ()>,
}

impl RegisterScope {
    /// A scope with an empty register of the given mask.
    pub fn enter(mask: Mask) -> Self {
        Self { register: ErrorRegister::new(mask), inspected: false, _not_send: PhantomData }
    }

    /// Whether the register is clean; counts as inspecting it.
    pub fn is_clean(&mut self) -> bool {
        self.inspected = true;
        self.register.is_clean()
    }

    /// End the scope and hand back the register for the barrier.
    pub fn finish(mut self) -> ErrorRegister {
        self.inspected = true;
        std::mem::take(&mut self.register)
    }
}

impl std::ops::Deref for RegisterScope {
    type Target = ErrorRegister;
    fn deref(&self) -> &ErrorRegister {
        &self.register
    }
}

impl std::ops::DerefMut for RegisterScope {
    fn deref_mut(&mut self) -> &mut ErrorRegister {
        self.inspected = false;
        &mut self.register
    }
}

impl Drop for RegisterScope {
    fn drop(&mut self) {
        debug_assert!(
            self.inspected || self.register.is_clean() || std::thread::panicking(),
            "RegisterScope dropped with uninspected faults: {:?}",
            self.register.faults()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(offset: u64, len: u64) -> Fault {
        Fault { member: MemberId(0), offset, len, domain: Domain::User, code: FaultCode::AdrErr }
    }

    #[test]
    fn coalesces_adjacent_units() {
        let mut reg = ErrorRegister::deferred();
        assert!(reg.record(fault(4096, 4096)));
        assert!(reg.record(fault(8192, 4096)));
        assert_eq!(reg.faults(), &[fault(4096, 8192)]);
    }

    #[test]
    fn overflow_is_reported() {
        let mut reg = ErrorRegister::deferred();
        for i in 0..REGISTER_CAPACITY as u64 {
            assert!(reg.record(fault(i * 8192, 4096)));
        }
        assert!(!reg.overflowed());
        assert!(!reg.record(fault(1 << 30, 4096)));
        assert!(reg.overflowed());
        assert!(!reg.is_clean());
        assert_eq!(reg.faults().len(), REGISTER_CAPACITY);
        reg.clear();
        assert!(reg.is_clean());
    }

    #[test]
    fn different_domains_do_not_coalesce() {
        let mut reg = ErrorRegister::deferred();
        reg.record(fault(0, 64));
        reg.record(Fault { domain: Domain::Engine, ..fault(64, 64) });
        assert_eq!(reg.faults().len(), 2);
    }

    #[test]
    fn register_moved_to_another_thread_keeps_entries() {
        let mut reg = ErrorRegister::immediate();
        reg.record(fault(4096, 4096));
        let back = std::thread::spawn(move || {
            assert!(reg.should_stop());
            reg
        })
        .join()
        .unwrap();
        assert_eq!(back.faults(), &[fault(4096, 4096)]);
    }

    #[test]
    fn scope_hands_back_its_register() {
        let mut scope = RegisterScope::enter(Mask::Deferred);
        scope.record(fault(0, 64));
        assert!(!scope.is_clean());
        let reg = scope.finish();
        assert_eq!(reg.faults().len(), 1);
    }
}
