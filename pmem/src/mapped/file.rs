//! Opening and creating the pool file, and the facts about it the mode rule needs.
//!
//! INVARIANT: a `File` returned here is a regular file, opened `O_CLOEXEC`, whose length is at
//! least `MIN_MEDIUM_BYTES` and a whole number of pages. Everything else is a typed error that
//! says what the path is and why it is refused (devdax included).
#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use crate::error::{Error, Result};
use crate::limits::{MIN_MEDIUM_BYTES, PAGE_SIZE};

use super::mode::FileFacts;

/// Check a length a pool file may have.
pub(super) fn check_len(path: &Path, len: u64) -> Result<()> {
    let reason = if len < MIN_MEDIUM_BYTES {
        "smaller than the minimum medium size (limits::MIN_MEDIUM_BYTES)"
    } else if !len.is_multiple_of(PAGE_SIZE) {
        "not a whole number of 4096-byte pages"
    } else {
        return Ok(());
    };
    Err(Error::BadSize { path: path.to_path_buf(), len, reason })
}

/// Create `path` (which must not exist) with `len` bytes allocated.
pub(super) fn create(path: &Path, len: u64) -> Result<File> {
    check_len(path, len)?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => Error::AlreadyExists { path: path.to_path_buf() },
            io::ErrorKind::NotFound => Error::NotFound { path: path.to_path_buf() },
            _ => Error::io(format!("create {}", path.display()), e),
        })?;
    if let Err(e) = fallocate(&file, 0, len) {
        // The file is ours (O_EXCL): do not leave a half-made pool behind.
        let _ = std::fs::remove_file(path);
        return Err(match e.raw_os_error() {
            Some(libc::ENOSPC) => Error::OutOfSpace { requested: len },
            _ => Error::io(format!("fallocate {} bytes for {}", len, path.display()), e),
        });
    }
    Ok(file)
}

/// Open the existing pool file at `path`.
pub(super) fn open(path: &Path, read_only: bool) -> Result<File> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => Error::NotFound { path: path.to_path_buf() },
        _ => Error::io(format!("stat {}", path.display()), e),
    })?;
    check_regular(path, meta.file_type())?;
    let file = OpenOptions::new()
        .read(true)
        .write(!read_only)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => Error::NotFound { path: path.to_path_buf() },
            _ => Error::io(format!("open {}", path.display()), e),
        })?;
    // The path may have been replaced between stat and open: check what was opened.
    let meta = file.metadata().map_err(|e| Error::io(format!("fstat {}", path.display()), e))?;
    check_regular(path, meta.file_type())?;
    check_len(path, meta.len())?;
    Ok(file)
}

fn check_regular(path: &Path, kind: std::fs::FileType) -> Result<()> {
    let what = if kind.is_file() {
        return Ok(());
    } else if kind.is_dir() {
        "a directory".to_string()
    } else if kind.is_char_device() {
        "a character device; devdax (/dev/daxN.M) is refused: it has no pwrite or fallocate, \
         so poisoned pages cannot be repaired without root; put the pool on fs-dax instead"
            .to_string()
    } else if kind.is_block_device() {
        "a block device; create the pool as a file on a (DAX) file system".to_string()
    } else {
        "a socket or fifo".to_string()
    };
    Err(Error::NotRegularFile { path: path.to_path_buf(), reason: what })
}

/// `fallocate(fd, 0, offset, len)`, retried on `EINTR`.
pub(super) fn fallocate(file: &File, offset: u64, len: u64) -> io::Result<()> {
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return Err(io::Error::from_raw_os_error(libc::EFBIG));
    };
    loop {
        // SAFETY: plain syscall on a descriptor we own; no memory is passed.
        let rc = unsafe { libc::fallocate(file.as_raw_fd(), 0, offset, len) };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EINTR) {
            return Err(err);
        }
    }
}

/// Whether the file lives on tmpfs.
pub(super) fn on_tmpfs(file: &File) -> io::Result<bool> {
    let mut buf = std::mem::MaybeUninit::<libc::statfs>::zeroed();
    // SAFETY: `buf` is a valid, writable `statfs` the kernel fills.
    let rc = unsafe { libc::fstatfs(file.as_raw_fd(), buf.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fstatfs succeeded, so it initialised the struct (and it was zeroed before).
    let buf = unsafe { buf.assume_init() };
    Ok(buf.f_type == libc::TMPFS_MAGIC)
}

/// Whether the inode reports `STATX_ATTR_DAX` (false when unknown).
pub(super) fn is_dax(file: &File) -> bool {
    let mut buf = std::mem::MaybeUninit::<libc::statx>::zeroed();
    // SAFETY: the empty path with AT_EMPTY_PATH names the descriptor itself; `buf` is a valid,
    // writable `statx` the kernel fills.
    let rc = unsafe {
        libc::statx(
            file.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            libc::STATX_BASIC_STATS,
            buf.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return false;
    }
    // SAFETY: statx succeeded, so it initialised the struct (and it was zeroed before).
    let buf = unsafe { buf.assume_init() };
    let dax = libc::STATX_ATTR_DAX as u64;
    buf.stx_attributes_mask & dax != 0 && buf.stx_attributes & dax != 0
}

/// Facts for the mode rule; `map_sync` is measured by the caller (it needs a mapping).
pub(super) fn facts(file: &File, path: &Path, map_sync: Result<(), i32>) -> Result<FileFacts> {
    let on_tmpfs =
        on_tmpfs(file).map_err(|e| Error::io(format!("statfs {}", path.display()), e))?;
    Ok(FileFacts { map_sync, on_tmpfs, is_dax: is_dax(file) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_checked() {
        let p = Path::new("/x");
        assert!(check_len(p, MIN_MEDIUM_BYTES).is_ok());
        assert!(matches!(check_len(p, MIN_MEDIUM_BYTES - PAGE_SIZE), Err(Error::BadSize { .. })));
        assert!(matches!(check_len(p, MIN_MEDIUM_BYTES + 1), Err(Error::BadSize { .. })));
    }

    #[test]
    fn tmpfs_and_disk_told_apart() {
        let shm = tempfile::tempdir_in("/dev/shm").unwrap();
        let disk = tempfile::tempdir_in("/var/tmp").unwrap();
        let a = create(&shm.path().join("p"), MIN_MEDIUM_BYTES).unwrap();
        let b = create(&disk.path().join("p"), MIN_MEDIUM_BYTES).unwrap();
        assert!(on_tmpfs(&a).unwrap());
        assert!(!on_tmpfs(&b).unwrap());
        assert!(!is_dax(&a) && !is_dax(&b));
        assert_eq!(b.metadata().unwrap().len(), MIN_MEDIUM_BYTES);
    }
}
