//! Asynchronous poison notices (`BUS_MCEERR_AO`): draining the handler's ring, translating each
//! address through the mapping table, and opting a thread in to early delivery.
//!
//! INVARIANT: a notice is delivered to exactly one drainer; one that did not fit in the ring is
//! only counted ([`async_overflow_count`]), so a scrubber that sees the count grow must rescan.
#![expect(unsafe_code, reason = "prctl for early machine-check notices")]

use super::handler::ensure_handler;
use super::mappings::{MappingId, locate};
use super::ring::AO_RING;
use crate::error::Error;
use crate::medium::MemberId;

/// Poison the platform found but nobody consumed yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AsyncNotice {
    /// `si_addr`: an address in the poisoned unit.
    pub addr: usize,
    /// `si_addr_lsb`: the unit is `1 << lsb` bytes.
    pub lsb: u8,
    /// The member whose registered mapping holds `addr`.
    pub member: Option<MemberId>,
    /// Offset of `addr` in that member.
    pub offset: Option<u64>,
    /// The registered mapping holding `addr` (tells apart members of different pools).
    pub mapping: Option<MappingId>,
}

/// Hand every pending notice to `f`, oldest first, translated through the registered mappings.
pub fn drain_async_notices(mut f: impl FnMut(AsyncNotice)) {
    while let Some((addr, lsb)) = AO_RING.pop() {
        let located = locate(addr);
        f(AsyncNotice {
            addr,
            lsb,
            member: located.map(|l| l.member),
            offset: located.map(|l| l.offset),
            mapping: located.map(|l| l.mapping),
        });
    }
}

/// Notices dropped because the ring was full, since the process started.
pub fn async_overflow_count() -> u64 {
    AO_RING.overflow_count()
}

/// Ask the kernel to deliver `BUS_MCEERR_AO` for this process's pages to the calling thread as
/// soon as poison is found (`PR_MCE_KILL_EARLY`); for the scrubber thread. Installs the handler
/// first, so the notice lands in the ring instead of killing the process.
pub fn enable_early_notices() -> Result<(), Error> {
    ensure_handler()?;
    let (set, early) =
        (libc::PR_MCE_KILL_SET as libc::c_ulong, libc::PR_MCE_KILL_EARLY as libc::c_ulong);
    // SAFETY: prctl with integer arguments only; affects the calling thread.
    if unsafe { libc::prctl(libc::PR_MCE_KILL, set, early, 0 as libc::c_ulong, 0 as libc::c_ulong) }
        != 0
    {
        return Err(Error::last_os("prctl(PR_MCE_KILL, PR_MCE_KILL_SET, PR_MCE_KILL_EARLY)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::limits::AO_RING_CAPACITY;
    use crate::mcsafe::chain::sigbus_info;
    use crate::mcsafe::mappings::{register_mapping, unregister_mapping};

    /// Tests that use the global ring hold this.
    static RING_LOCK: Mutex<()> = Mutex::new(());

    /// Send this thread a SIGBUS with `BUS_MCEERR_AO`, as the kernel would; it is delivered
    /// before the syscall returns.
    fn send_action_optional(addr: usize, lsb: i16) {
        let mut info = sigbus_info(libc::BUS_MCEERR_AO, addr, lsb);
        // SAFETY: a plain getter.
        let pid = unsafe { libc::getpid() };
        // SAFETY: a plain getter.
        let tid = unsafe { libc::gettid() };
        // SAFETY: rt_tgsigqueueinfo to our own thread with a valid siginfo_t.
        let rc = unsafe {
            libc::syscall(libc::SYS_rt_tgsigqueueinfo, pid, tid, libc::SIGBUS, &raw mut info)
        };
        assert_eq!(rc, 0, "rt_tgsigqueueinfo: {}", std::io::Error::last_os_error());
    }

    fn drain() -> Vec<AsyncNotice> {
        let mut got = Vec::new();
        drain_async_notices(|n| got.push(n));
        got
    }

    #[test]
    fn action_optional_lands_in_the_ring_with_member_and_offset() {
        let _guard = RING_LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        ensure_handler().unwrap();
        drain();
        let region = vec![0u8; 64 * 1024];
        let base = region.as_ptr() as usize;
        let id = register_mapping(base, region.len(), MemberId(5));
        assert!(id.is_tracked());
        send_action_optional(base + 0x3000, 12);
        send_action_optional(0x10, 12);
        let got = drain();
        assert_eq!(
            got,
            vec![
                AsyncNotice {
                    addr: base + 0x3000,
                    lsb: 12,
                    member: Some(MemberId(5)),
                    offset: Some(0x3000),
                    mapping: Some(id),
                },
                AsyncNotice { addr: 0x10, lsb: 12, member: None, offset: None, mapping: None },
            ]
        );
        unregister_mapping(id);
        send_action_optional(base + 0x3000, 12);
        assert_eq!(drain()[0].member, None);
    }

    #[test]
    fn ring_overflow_is_counted() {
        let _guard = RING_LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        ensure_handler().unwrap();
        drain();
        let before = async_overflow_count();
        for i in 0..AO_RING_CAPACITY + 5 {
            send_action_optional(0x1000 * (i + 1), 12);
        }
        assert_eq!(async_overflow_count() - before, 5);
        let got = drain();
        assert_eq!(got.len(), AO_RING_CAPACITY);
        assert_eq!(got[0].addr, 0x1000);
        assert_eq!(got[AO_RING_CAPACITY - 1].addr, 0x1000 * AO_RING_CAPACITY);
    }

    #[test]
    fn early_notices_are_enabled_per_thread() {
        let mode = std::thread::spawn(|| {
            enable_early_notices().unwrap();
            // SAFETY: prctl query with integer arguments only.
            unsafe { libc::prctl(libc::PR_MCE_KILL_GET, 0, 0, 0, 0) }
        })
        .join()
        .unwrap();
        assert_eq!(mode, libc::PR_MCE_KILL_EARLY);
    }
}
