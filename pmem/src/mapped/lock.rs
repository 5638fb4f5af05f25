//! The pool lock: `flock` on the pool file for as long as it is open.
//!
//! INVARIANT: while a `MappedMedium` lives, its descriptor holds `LOCK_EX` (read-write) or
//! `LOCK_SH` (read-only). The lock belongs to the open file description, so a second open of the
//! same file conflicts even inside this process; it is released when the descriptor closes.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::error::{Error, Result};

/// Take the pool lock without waiting: exclusive, or shared when `read_only`.
pub(super) fn lock(file: &File, path: &Path, read_only: bool) -> Result<()> {
    let kind = if read_only { libc::LOCK_SH } else { libc::LOCK_EX };
    loop {
        // SAFETY: plain syscall on a descriptor we own; no memory is passed.
        let rc = unsafe { libc::flock(file.as_raw_fd(), kind | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) => return Err(Error::Locked { path: path.to_path_buf() }),
            _ => return Err(Error::io(format!("flock {}", path.display()), err)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_exclusive_lock_in_process_is_refused() {
        let dir = tempfile::tempdir_in("/dev/shm").unwrap();
        let path = dir.path().join("p");
        std::fs::write(&path, b"x").unwrap();
        let a = File::open(&path).unwrap();
        let b = File::open(&path).unwrap();
        lock(&a, &path, false).unwrap();
        assert!(matches!(lock(&b, &path, true), Err(Error::Locked { .. })));
        assert!(matches!(lock(&b, &path, false), Err(Error::Locked { .. })));
        drop(a);
        lock(&b, &path, false).unwrap();
    }
}
