//! Test fixtures: a file in /dev/shm mapped shared, filled with a known pattern, whose pages can
//! be replaced by pages of an empty memfd so that loads, stores and flushes there raise a real
//! SIGBUS `BUS_ADRERR` at the exact address (this kernel has no `MADV_HWPOISON`).
#![expect(unsafe_code, reason = "maps test files and memfd holes")]

use std::io::Write;

const PAGE: usize = 4096;

/// A mapped pattern file with emulated poison.
pub(crate) struct PoisonedFile {
    map: *mut u8,
    pages: usize,
    poisoned: Vec<bool>,
    _file: std::fs::File,
}

// SAFETY: the mapping is owned by this value and only read (or faulted on) through raw pointers.
unsafe impl Sync for PoisonedFile {}
// SAFETY: as above; nothing is tied to the creating thread.
unsafe impl Send for PoisonedFile {}

impl PoisonedFile {
    /// A file of `pages` pages holding `pattern`, mapped shared.
    pub(crate) fn new(pages: usize) -> Self {
        let mut file = tempfile::tempfile_in("/dev/shm").expect("temp file in /dev/shm");
        let bytes: Vec<u8> = (0..pages * PAGE).map(Self::pattern_at).collect();
        file.write_all(&bytes).expect("write pattern");
        let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        // SAFETY: a fresh shared mapping of a file we own; the kernel picks the address.
        let map = unsafe {
            libc::mmap(std::ptr::null_mut(), pages * PAGE, prot, libc::MAP_SHARED, fd, 0)
        };
        assert_ne!(map, libc::MAP_FAILED, "mmap: {}", std::io::Error::last_os_error());
        Self { map: map.cast(), pages, poisoned: vec![false; pages], _file: file }
    }

    fn pattern_at(at: usize) -> u8 {
        (at.wrapping_mul(131).wrapping_add(at >> 12).wrapping_add(7) % 251) as u8
    }

    /// The byte the file holds at `at` (unless poisoned).
    pub(crate) fn pattern(&self, at: usize) -> u8 {
        Self::pattern_at(at)
    }

    /// Address of byte `off` of the mapping.
    pub(crate) fn at(&self, off: usize) -> *const u8 {
        self.map.wrapping_add(off)
    }

    /// Mutable address of byte `off` (for stores that must fault).
    pub(crate) fn at_mut(&self, off: usize) -> *mut u8 {
        self.map.wrapping_add(off)
    }

    /// Whether `page` was poisoned.
    pub(crate) fn is_poisoned(&self, page: usize) -> bool {
        self.poisoned.get(page).copied().unwrap_or(false)
    }

    /// Map a page of an empty memfd over `page`: every access there raises SIGBUS.
    pub(crate) fn poison(&mut self, page: usize) {
        assert!(page < self.pages);
        // SAFETY: a plain memfd_create with a NUL-terminated name.
        let memfd = unsafe { libc::memfd_create(c"mcsafe-poison".as_ptr(), libc::MFD_CLOEXEC) };
        assert!(memfd >= 0, "memfd_create: {}", std::io::Error::last_os_error());
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        let flags = libc::MAP_SHARED | libc::MAP_FIXED;
        let at = self.map.wrapping_add(page * PAGE).cast();
        // SAFETY: replaces one page of our own mapping; no Rust reference points into it.
        let got = unsafe { libc::mmap(at, PAGE, prot, flags, memfd, 0) };
        assert_eq!(got, at, "mmap memfd hole: {}", std::io::Error::last_os_error());
        // SAFETY: the mapping keeps the memfd alive; the descriptor is ours.
        unsafe { libc::close(memfd) };
        self.poisoned[page] = true;
    }
}

impl Drop for PoisonedFile {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the range this value mapped.
        unsafe { libc::munmap(self.map.cast(), self.pages * PAGE) };
    }
}

/// Run the calling test again in a child process with `role` in the environment; returns how it
/// ended. The child runs the same test function, which sees [`child_role`] and plays the role.
pub(crate) fn run_child(test_path: &str, role: &str) -> std::process::Output {
    let exe = std::env::current_exe().expect("current_exe");
    let name = test_path.split_once("::").map_or(test_path, |(_, rest)| rest);
    std::process::Command::new(exe)
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD_ROLE, role)
        .output()
        .expect("spawn child test process")
}

const CHILD_ROLE: &str = "MCSTORE_MCSAFE_CHILD_ROLE";

/// The role this process was started to play, if it is a child.
pub(crate) fn child_role() -> Option<String> {
    std::env::var(CHILD_ROLE).ok()
}

/// No core dump for a child that is meant to die.
pub(crate) fn no_core_dumps() {
    let zero = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: a valid rlimit for this process only.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &zero) };
}
