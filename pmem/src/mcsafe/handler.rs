//! The process-wide SIGBUS handler: installed once (without `SA_ONSTACK`), it claims faults of
//! the mcsafe routines, rings asynchronous notices and chains everything else.
//!
//! INVARIANT: the handler touches no thread-local state (besides `errno`, which it preserves),
//! allocates nothing, takes no lock, formats nothing and cannot panic; it resumes a claimed fault
//! by moving the saved instruction pointer to the landing pad, never by longjmp.
#![expect(unsafe_code, reason = "installs a signal handler and calls the previous one")]

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering};

use libc::{c_int, c_void, siginfo_t, ucontext_t};

use super::asm::{landing_pad, text_range};
use super::call::encode_fault;
use super::chain::{Action, Previous, decide, read_fields, redirect, saved_rip};
use super::ring::AO_RING;
use crate::error::Error;

static INSTALLED: AtomicBool = AtomicBool::new(false);
static PREVIOUS_HANDLER: AtomicUsize = AtomicUsize::new(libc::SIG_DFL);
static PREVIOUS_FLAGS: AtomicI32 = AtomicI32::new(0);

type SigInfoHandler = extern "C" fn(c_int, *mut siginfo_t, *mut c_void);
type PlainHandler = extern "C" fn(c_int);

extern "C" fn on_sigbus(sig: c_int, info: *mut siginfo_t, ctx: *mut c_void) {
    // SAFETY: __errno_location is async-signal-safe and never fails.
    let errno = unsafe { libc::__errno_location() };
    // SAFETY: it points at this thread's errno.
    let saved_errno = unsafe { *errno };
    handle(sig, info, ctx);
    // SAFETY: as above.
    unsafe { *errno = saved_errno };
}

fn previous() -> Previous {
    Previous::from_raw(
        PREVIOUS_HANDLER.load(Ordering::Acquire),
        PREVIOUS_FLAGS.load(Ordering::Acquire),
    )
}

fn handle(sig: c_int, info: *mut siginfo_t, ctx: *mut c_void) {
    if info.is_null() || ctx.is_null() {
        chain(Action::ResetDefault, sig, info, ctx);
        return;
    }
    // SAFETY: the kernel passes a valid siginfo_t to an SA_SIGINFO handler.
    let fields = unsafe { read_fields(info) };
    let context = ctx.cast::<ucontext_t>();
    // SAFETY: the kernel passes a valid, writable ucontext_t for the interrupted thread.
    let context = unsafe { &mut *context };
    match decide(sig, fields, saved_rip(context), text_range(), previous()) {
        Action::Claim => {
            redirect(context, landing_pad(), fields.addr, encode_fault(fields.code, fields.lsb));
        }
        Action::Ring => {
            AO_RING.push(fields.addr, fields.lsb);
        }
        action => chain(action, sig, info, ctx),
    }
}

fn chain(action: Action, sig: c_int, info: *mut siginfo_t, ctx: *mut c_void) {
    match action {
        Action::CallSigInfo(handler) => {
            // SAFETY: the word came from the previous sigaction with SA_SIGINFO set, so it is a
            // three-argument handler; calling it with our arguments is what the kernel would do.
            let handler: SigInfoHandler = unsafe { std::mem::transmute(handler) };
            handler(sig, info, ctx);
        }
        Action::CallPlain(handler) => {
            // SAFETY: the word came from the previous sigaction without SA_SIGINFO.
            let handler: PlainHandler = unsafe { std::mem::transmute(handler) };
            handler(sig);
        }
        Action::ResetDefault => reset_default(),
        Action::ResetDefaultAndRaise => {
            reset_default();
            // SIGBUS is blocked while we run, so this stays pending and kills on return.
            // SAFETY: raise is async-signal-safe.
            unsafe { libc::raise(libc::SIGBUS) };
        }
        Action::Claim | Action::Ring | Action::Ignore => {}
    }
}

fn reset_default() {
    // SAFETY: sigaction is plain old data; all-zero is SIG_DFL with no flags and an empty mask.
    let default: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: sigaction is async-signal-safe; `default` is a valid disposition.
    unsafe { libc::sigaction(libc::SIGBUS, &default, std::ptr::null_mut()) };
}

fn remember(previous: &libc::sigaction) {
    PREVIOUS_FLAGS.store(previous.sa_flags, Ordering::Release);
    PREVIOUS_HANDLER.store(previous.sa_sigaction, Ordering::Release);
}

fn current_disposition() -> Result<libc::sigaction, Error> {
    // SAFETY: sigaction is plain old data.
    let mut current: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a query (null new action) into a valid out-pointer.
    if unsafe { libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut current) } != 0 {
        return Err(Error::last_os("sigaction(SIGBUS) query"));
    }
    Ok(current)
}

fn ours() -> usize {
    on_sigbus as SigInfoHandler as usize
}

/// Install the SIGBUS handler if it is not installed yet. Idempotent; after the first success it
/// is one atomic load (a plain `mov` on x86-64).
#[inline]
pub fn ensure_handler() -> Result<(), Error> {
    if INSTALLED.load(Ordering::Acquire) {
        return Ok(());
    }
    install()
}

/// [`ensure_handler`] for the read and flush paths, which cannot return an error: inlined to one
/// load; a failure is asserted in debug builds (release proceeds, and a fault would then kill the
/// process as it would without mcstore).
#[inline]
pub(crate) fn ensure_handler_on_hot_path() {
    if !INSTALLED.load(Ordering::Acquire) {
        install_from_hot_path();
    }
}

#[cold]
#[inline(never)]
fn install_from_hot_path() {
    let installed = install();
    debug_assert!(installed.is_ok(), "SIGBUS handler unavailable: {installed:?}");
}

#[cold]
fn install() -> Result<(), Error> {
    static INSTALL: Mutex<()> = Mutex::new(());
    let _guard = INSTALL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if INSTALLED.load(Ordering::Acquire) {
        return Ok(());
    }
    let before = current_disposition()?;
    if before.sa_sigaction != ours() {
        // Known before ours goes live, so a fault in between still chains correctly.
        remember(&before);
    }
    // SAFETY: sigaction is plain old data.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = ours();
    // No SA_ONSTACK: the handler runs on the faulting thread's own stack, where the interrupted
    // leaf routine left it (std's 8 KiB alternate stacks are not ours to use).
    action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
    // SAFETY: sigemptyset initialises the mask in place.
    unsafe { libc::sigemptyset(&mut action.sa_mask) };
    // SAFETY: sigaction is plain old data.
    let mut replaced: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: valid new action and out-pointer.
    if unsafe { libc::sigaction(libc::SIGBUS, &action, &mut replaced) } != 0 {
        return Err(Error::last_os("sigaction(SIGBUS) install"));
    }
    if replaced.sa_sigaction != ours() {
        remember(&replaced);
    }
    verify_handler()?;
    INSTALLED.store(true, Ordering::Release);
    Ok(())
}

/// Read the SIGBUS disposition back: `Err(Error::Handler)` unless it is ours, with
/// `SA_SIGINFO` and without `SA_ONSTACK` (another library, such as ASan with
/// `handle_sigbus=2`, may have replaced it; use `handle_sigbus=1`). One syscall.
pub fn verify_handler() -> Result<(), Error> {
    let current = current_disposition()?;
    let flags = current.sa_flags;
    if current.sa_sigaction != ours()
        || flags & libc::SA_SIGINFO == 0
        || flags & libc::SA_ONSTACK != 0
    {
        return Err(Error::Handler(format!(
            "the SIGBUS disposition is not mcstore's (handler {:#x}, flags {flags:#x}): another \
             library replaced it (with ASan use handle_sigbus=1)",
            current.sa_sigaction
        )));
    }
    Ok(())
}

/// Whether SIGBUS is blocked in the calling thread (a mcsafe read there would be fatal).
pub(crate) fn sigbus_blocked() -> bool {
    // SAFETY: sigset_t is plain old data.
    let mut mask: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: a query (null new set) into a valid out-pointer.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut mask) };
    // SAFETY: `mask` was initialised by pthread_sigmask.
    rc == 0 && unsafe { libc::sigismember(&mask, libc::SIGBUS) } == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_is_idempotent_and_verified() {
        ensure_handler().unwrap();
        ensure_handler().unwrap();
        verify_handler().unwrap();
        let current = current_disposition().unwrap();
        assert_eq!(current.sa_sigaction, ours());
        assert_eq!(current.sa_flags & libc::SA_ONSTACK, 0);
        // std installed its handler before main: that is what we chain to.
        assert!(matches!(previous(), Previous::SigInfo(h) if h != ours()));
    }

    #[test]
    fn a_blocked_sigbus_is_seen() {
        let blocked = std::thread::spawn(|| {
            // SAFETY: sigset_t is plain old data.
            let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
            // SAFETY: initialises `set` in place.
            unsafe { libc::sigemptyset(&mut set) };
            // SAFETY: `set` is initialised.
            unsafe { libc::sigaddset(&mut set, libc::SIGBUS) };
            // SAFETY: blocks SIGBUS in this short-lived thread only.
            unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
            sigbus_blocked()
        })
        .join()
        .unwrap();
        assert!(blocked);
        assert!(!sigbus_blocked());
    }

    use std::sync::atomic::AtomicUsize;

    use crate::mcsafe::testutil::{PoisonedFile, child_role, no_core_dumps, run_child};

    const PAGE: usize = 4096;

    /// The address the SA_SIGINFO previous handler expects.
    static EXPECTED_ADDR: AtomicUsize = AtomicUsize::new(0);

    extern "C" fn plain_previous(_sig: c_int) {
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(42) };
    }

    extern "C" fn siginfo_previous(sig: c_int, info: *mut siginfo_t, _ctx: *mut c_void) {
        // SAFETY: the kernel (via our chaining) passes the original siginfo.
        let fields = unsafe { read_fields(info) };
        let right = sig == libc::SIGBUS
            && fields.code == libc::BUS_ADRERR
            && fields.addr == EXPECTED_ADDR.load(Ordering::Relaxed);
        // SAFETY: _exit is async-signal-safe.
        unsafe { libc::_exit(if right { 43 } else { 44 }) };
    }

    static CLOBBERED: AtomicBool = AtomicBool::new(false);

    fn set_errno(value: c_int) {
        // SAFETY: __errno_location never fails.
        let errno = unsafe { libc::__errno_location() };
        // SAFETY: it points at this thread's errno.
        unsafe { *errno = value };
    }

    extern "C" fn clobber_errno(_sig: c_int) {
        set_errno(libc::EIO);
        CLOBBERED.store(true, Ordering::Relaxed);
    }

    /// In a child: a previous handler that clobbers errno; a SIGBUS sent by a process is chained
    /// to it, and the interrupted code must still see its own errno.
    fn play_errno() {
        set_disposition(clobber_errno as extern "C" fn(c_int) as usize, 0);
        ensure_handler().unwrap();
        // SAFETY: sigqueue-style siginfo, sent to this very thread.
        let mut info: siginfo_t = unsafe { std::mem::zeroed() };
        info.si_signo = libc::SIGBUS;
        info.si_code = libc::SI_QUEUE;
        // SAFETY: plain getters.
        let pid = unsafe { libc::getpid() };
        // SAFETY: as above.
        let tid = unsafe { libc::gettid() };
        set_errno(libc::EAGAIN);
        // SAFETY: rt_tgsigqueueinfo to our own thread; the signal is handled before it returns.
        let rc = unsafe {
            libc::syscall(libc::SYS_rt_tgsigqueueinfo, pid, tid, libc::SIGBUS, &raw mut info)
        };
        let errno = std::io::Error::last_os_error().raw_os_error();
        let code = if rc == 0 && CLOBBERED.load(Ordering::Relaxed) && errno == Some(libc::EAGAIN) {
            45
        } else {
            46
        };
        // SAFETY: ends the child with the verdict.
        unsafe { libc::_exit(code) };
    }

    fn set_disposition(handler: usize, flags: c_int) {
        // SAFETY: sigaction is plain old data.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = handler;
        action.sa_flags = flags;
        // SAFETY: a valid disposition, in a child process that exists for this.
        assert_eq!(unsafe { libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut()) }, 0);
    }

    /// In a child: set up the previous disposition for `role`, install ours, then touch poison
    /// outside the copy range. Never returns normally if the process dies as it should.
    fn play(role: &str) {
        no_core_dumps();
        match role {
            "errno" => play_errno(),
            "store" | "load" => {}
            "default" => set_disposition(libc::SIG_DFL, 0),
            "ignore" => set_disposition(libc::SIG_IGN, 0),
            "plain" => set_disposition(plain_previous as extern "C" fn(c_int) as usize, 0),
            "siginfo" => {
                set_disposition(siginfo_previous as SigInfoHandler as usize, libc::SA_SIGINFO)
            }
            other => panic!("unknown child role {other}"),
        }
        ensure_handler().unwrap();
        let mut file = PoisonedFile::new(3);
        file.poison(1);
        let target = file.at_mut(PAGE + 8);
        EXPECTED_ADDR.store(target as usize, Ordering::Relaxed);
        if role == "store" {
            // SAFETY: mapped (as a memfd hole); the fault is the point of the test.
            unsafe { target.write_volatile(1) };
        } else {
            // SAFETY: as above.
            let _ = unsafe { target.cast_const().read_volatile() };
        }
        println!("child survived the poisoned access");
    }

    fn child_outcome(test: &str, role: &str) -> (Option<i32>, Option<i32>) {
        use std::os::unix::process::ExitStatusExt;
        let out = run_child(test, role);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!stdout.contains("child survived"), "{role}: {stdout}");
        (out.status.signal(), out.status.code())
    }

    #[test]
    fn a_store_into_poison_kills_the_process() {
        if let Some(role) = child_role() {
            return play(&role);
        }
        let test = concat!(module_path!(), "::a_store_into_poison_kills_the_process");
        assert_eq!(child_outcome(test, "store"), (Some(libc::SIGBUS), None));
    }

    #[test]
    fn a_sigbus_outside_the_copy_range_kills_the_process() {
        if let Some(role) = child_role() {
            return play(&role);
        }
        let test = concat!(module_path!(), "::a_sigbus_outside_the_copy_range_kills_the_process");
        // Chained to std's handler (the usual previous one), to SIG_DFL and to SIG_IGN: all die.
        for role in ["load", "default", "ignore"] {
            assert_eq!(child_outcome(test, role), (Some(libc::SIGBUS), None), "{role}");
        }
    }

    #[test]
    fn unclaimed_faults_reach_previous_handlers() {
        if let Some(role) = child_role() {
            return play(&role);
        }
        let test = concat!(module_path!(), "::unclaimed_faults_reach_previous_handlers");
        assert_eq!(child_outcome(test, "plain"), (None, Some(42)));
        assert_eq!(child_outcome(test, "siginfo"), (None, Some(43)), "siginfo and address intact");
    }

    #[test]
    fn errno_survives_a_chained_handler() {
        if let Some(role) = child_role() {
            return play(&role);
        }
        let test = concat!(module_path!(), "::errno_survives_a_chained_handler");
        assert_eq!(child_outcome(test, "errno"), (None, Some(45)));
    }
}
