//! The SIGBUS handler's decisions as pure functions of (signal, siginfo, saved RIP, previous
//! disposition), so they are unit-tested with synthetic `siginfo_t` and `ucontext_t`.
//!
//! INVARIANT: a fault is claimed only when `si_code` is `BUS_MCEERR_AR` or `BUS_ADRERR` and the
//! saved RIP lies in the mcsafe text range; `BUS_MCEERR_AO` goes to the ring; everything else is
//! chained. Nothing here allocates, locks, formats or panics: it runs inside the handler.
#![expect(unsafe_code, reason = "reads siginfo_t and writes ucontext_t handed to a signal handler")]

use libc::{c_int, siginfo_t, ucontext_t};

/// The `_sigfault` view of `siginfo_t` on x86-64 Linux: `si_addr` at byte 16, `si_addr_lsb`
/// (a `short`) right after it at byte 24.
#[repr(C)]
struct SigfaultLayout {
    signo: c_int,
    errno: c_int,
    code: c_int,
    _pad: c_int,
    addr: usize,
    addr_lsb: i16,
}

const _: () = assert!(size_of::<SigfaultLayout>() <= size_of::<siginfo_t>());
const _: () = assert!(std::mem::offset_of!(SigfaultLayout, addr) == 16);
const _: () = assert!(std::mem::offset_of!(SigfaultLayout, addr_lsb) == 24);

/// The fields of a SIGBUS the handler looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SigFields {
    /// `si_code`.
    pub code: c_int,
    /// `si_addr`.
    pub addr: usize,
    /// `si_addr_lsb` (valid for `BUS_MCEERR_*` only).
    pub lsb: u8,
}

/// Read the fault fields of a siginfo.
///
/// # Safety
/// `info` must point to a readable `siginfo_t`.
pub(crate) unsafe fn read_fields(info: *const siginfo_t) -> SigFields {
    let view = info.cast::<SigfaultLayout>();
    // SAFETY: the caller guarantees a readable siginfo_t, which is larger than the view and
    // suitably aligned (its union holds pointers).
    let view = unsafe { &*view };
    SigFields { code: view.code, addr: view.addr, lsb: view.addr_lsb.clamp(0, 63) as u8 }
}

/// A `siginfo_t` as the kernel fills it for a SIGBUS fault (synthetic signals in tests).
#[cfg(test)]
pub(crate) fn sigbus_info(code: c_int, addr: usize, lsb: i16) -> siginfo_t {
    // SAFETY: siginfo_t is plain old data; all-zero is a valid value.
    let mut info: siginfo_t = unsafe { std::mem::zeroed() };
    let view = (&raw mut info).cast::<SigfaultLayout>();
    // SAFETY: `info` is a live, aligned siginfo_t larger than the view.
    let view = unsafe { &mut *view };
    view.signo = libc::SIGBUS;
    view.code = code;
    view.addr = addr;
    view.addr_lsb = lsb;
    info
}

/// The disposition SIGBUS had before ours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Previous {
    /// `SIG_DFL`.
    Default,
    /// `SIG_IGN`.
    Ignore,
    /// A handler without `SA_SIGINFO`: `fn(c_int)`.
    Plain(usize),
    /// A handler with `SA_SIGINFO`: `fn(c_int, *mut siginfo_t, *mut c_void)`.
    SigInfo(usize),
}

impl Previous {
    /// From a `sigaction`'s handler word and flags.
    pub(crate) fn from_raw(handler: usize, flags: c_int) -> Self {
        if handler == libc::SIG_DFL {
            Previous::Default
        } else if handler == libc::SIG_IGN {
            Previous::Ignore
        } else if flags & libc::SA_SIGINFO != 0 {
            Previous::SigInfo(handler)
        } else {
            Previous::Plain(handler)
        }
    }
}

/// What the handler does with one signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Redirect the saved context to the landing pad with the fault in `rax:rdx`.
    Claim,
    /// Push `(addr, lsb)` into the asynchronous-notice ring and return.
    Ring,
    /// Call the previous `SA_SIGINFO` handler with `(sig, info, ctx)`.
    CallSigInfo(usize),
    /// Call the previous plain handler with `sig`.
    CallPlain(usize),
    /// Reset SIGBUS to `SIG_DFL` and return: the faulting instruction re-executes and the
    /// kernel's default action kills the process.
    ResetDefault,
    /// Reset to `SIG_DFL` and re-raise: a signal sent by a process does not re-execute.
    ResetDefaultAndRaise,
    /// The previous disposition ignored a signal sent by a process: do nothing.
    Ignore,
}

/// The decision for signal `sig` with `fields`, saved RIP `rip`, text range `[start, end)`.
pub(crate) fn decide(
    sig: c_int,
    fields: SigFields,
    rip: usize,
    text: (usize, usize),
    previous: Previous,
) -> Action {
    if sig == libc::SIGBUS {
        let synchronous = fields.code == libc::BUS_MCEERR_AR || fields.code == libc::BUS_ADRERR;
        if synchronous && text.0 <= rip && rip < text.1 {
            return Action::Claim;
        }
        if fields.code == libc::BUS_MCEERR_AO {
            return Action::Ring;
        }
    }
    // si_code > 0: raised by the kernel for an instruction, which re-executes on return.
    let from_kernel = fields.code > 0;
    match previous {
        Previous::SigInfo(handler) => Action::CallSigInfo(handler),
        Previous::Plain(handler) => Action::CallPlain(handler),
        Previous::Default if from_kernel => Action::ResetDefault,
        Previous::Default => Action::ResetDefaultAndRaise,
        Previous::Ignore if from_kernel => Action::ResetDefault,
        Previous::Ignore => Action::Ignore,
    }
}

/// The saved instruction pointer of a signal context.
pub(crate) fn saved_rip(ctx: &ucontext_t) -> usize {
    ctx.uc_mcontext.gregs[libc::REG_RIP as usize] as usize
}

/// Make the interrupted code resume at `landing` with `rax = addr`, `rdx = info`.
pub(crate) fn redirect(ctx: &mut ucontext_t, landing: usize, addr: usize, info: u64) {
    let gregs = &mut ctx.uc_mcontext.gregs;
    gregs[libc::REG_RAX as usize] = addr as i64;
    gregs[libc::REG_RDX as usize] = info as i64;
    gregs[libc::REG_RIP as usize] = landing as i64;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcsafe::asm::text_range;
    use crate::mcsafe::call::encode_fault;

    const TEXT: (usize, usize) = (0x1000, 0x2000);

    fn fields(code: c_int) -> SigFields {
        SigFields { code, addr: 0x7f00_1234, lsb: 12 }
    }

    #[test]
    fn claims_only_the_two_codes_inside_the_range() {
        let prev = Previous::Default;
        for code in [libc::BUS_ADRERR, libc::BUS_MCEERR_AR] {
            assert_eq!(decide(libc::SIGBUS, fields(code), 0x1000, TEXT, prev), Action::Claim);
            assert_eq!(decide(libc::SIGBUS, fields(code), 0x1fff, TEXT, prev), Action::Claim);
            assert_ne!(decide(libc::SIGBUS, fields(code), 0x2000, TEXT, prev), Action::Claim);
            assert_ne!(decide(libc::SIGBUS, fields(code), 0x0fff, TEXT, prev), Action::Claim);
            // Not SIGBUS: never claimed.
            assert_ne!(decide(libc::SIGSEGV, fields(code), 0x1800, TEXT, prev), Action::Claim);
        }
        for code in [libc::BUS_ADRALN, libc::BUS_OBJERR, libc::SI_USER, libc::SI_QUEUE] {
            assert_ne!(decide(libc::SIGBUS, fields(code), 0x1800, TEXT, prev), Action::Claim);
        }
    }

    #[test]
    fn action_optional_goes_to_the_ring_from_anywhere() {
        for rip in [0x10, 0x1800, 0xffff_0000] {
            let action =
                decide(libc::SIGBUS, fields(libc::BUS_MCEERR_AO), rip, TEXT, Previous::Default);
            assert_eq!(action, Action::Ring);
        }
    }

    #[test]
    fn unclaimed_faults_chain_to_the_previous_disposition() {
        let outside = 0x5000;
        let fault = fields(libc::BUS_ADRERR);
        let sent = fields(libc::SI_USER);
        let info = Previous::from_raw(0xdead_b000, libc::SA_SIGINFO | libc::SA_ONSTACK);
        let plain = Previous::from_raw(0xdead_c000, 0);
        let dfl = Previous::from_raw(libc::SIG_DFL, 0);
        let ign = Previous::from_raw(libc::SIG_IGN, libc::SA_SIGINFO);
        assert_eq!(info, Previous::SigInfo(0xdead_b000));
        assert_eq!(plain, Previous::Plain(0xdead_c000));
        assert_eq!(dfl, Previous::Default);
        assert_eq!(ign, Previous::Ignore);
        let d = |f, p| decide(libc::SIGBUS, f, outside, TEXT, p);
        assert_eq!(d(fault, info), Action::CallSigInfo(0xdead_b000));
        assert_eq!(d(fault, plain), Action::CallPlain(0xdead_c000));
        assert_eq!(d(fault, dfl), Action::ResetDefault);
        assert_eq!(d(fault, ign), Action::ResetDefault);
        assert_eq!(d(sent, dfl), Action::ResetDefaultAndRaise);
        assert_eq!(d(sent, ign), Action::Ignore);
        assert_eq!(d(sent, info), Action::CallSigInfo(0xdead_b000));
        // A claimed code outside the range chains, an unclaimed code inside the range too.
        let inside_bad_code = decide(libc::SIGBUS, fields(libc::BUS_ADRALN), 0x1800, TEXT, info);
        assert_eq!(inside_bad_code, Action::CallSigInfo(0xdead_b000));
    }

    #[test]
    fn synthetic_siginfo_round_trips_through_the_layout() {
        let info = sigbus_info(libc::BUS_MCEERR_AR, 0x7f12_3456_7000, 12);
        assert_eq!(info.si_signo, libc::SIGBUS);
        assert_eq!(info.si_code, libc::BUS_MCEERR_AR);
        // SAFETY: si_addr reads the sigfault union member that sigbus_info wrote.
        assert_eq!(unsafe { info.si_addr() } as usize, 0x7f12_3456_7000);
        // SAFETY: `info` is a live siginfo_t.
        let read = unsafe { read_fields(&info) };
        assert_eq!(read, SigFields { code: libc::BUS_MCEERR_AR, addr: 0x7f12_3456_7000, lsb: 12 });
    }

    #[test]
    fn redirect_rewrites_a_synthetic_context() {
        // SAFETY: ucontext_t is plain old data; all-zero is a valid value.
        let mut ctx: ucontext_t = unsafe { std::mem::zeroed() };
        let (start, end) = text_range();
        ctx.uc_mcontext.gregs[libc::REG_RIP as usize] = (start + 4) as i64;
        ctx.uc_mcontext.gregs[libc::REG_RBX as usize] = 77;
        let info = sigbus_info(libc::BUS_ADRERR, 0x4000_0040, 0);
        // SAFETY: `info` is a live siginfo_t.
        let f = unsafe { read_fields(&info) };
        let rip = saved_rip(&ctx);
        assert_eq!(decide(libc::SIGBUS, f, rip, (start, end), Previous::Default), Action::Claim);
        redirect(&mut ctx, 0x1234, f.addr, encode_fault(f.code, f.lsb));
        let g = &ctx.uc_mcontext.gregs;
        assert_eq!(g[libc::REG_RIP as usize], 0x1234);
        assert_eq!(g[libc::REG_RAX as usize], 0x4000_0040);
        assert_eq!(g[libc::REG_RDX as usize] as u64, encode_fault(libc::BUS_ADRERR, 0));
        assert_eq!(g[libc::REG_RBX as usize], 77, "callee-saved registers untouched");
    }
}
