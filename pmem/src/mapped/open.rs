//! Opening a `MappedMedium`: file checks, the pool lock, the mode rule, the reservation, and the
//! bad-block lists applied as emulated poison.
//!
//! INVARIANT: a medium is returned only with its lock held, its mode resolved and reported, its
//! file mapped over `[0, len)` and every known-bad page inside it already a hole; on any error
//! nothing stays mapped or locked (and a file `create` made is removed).

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64};

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::limits::PAGE_SIZE;

use super::badblocks::BadBlocks;
use super::fiemap::{fiemap, sysfs_badblocks};
use super::glue;
use super::medium::{MappedMedium, State};
use super::mode::{self, Mode};
use super::options::MapOptions;
use super::reserve::{self, Reservation, Share};
use super::{file, lock};

impl MappedMedium {
    /// Create the pool file at `path` with `len` bytes (allocated with `fallocate`) and map it.
    /// `Error::AlreadyExists` if something is there; the file is removed again if mapping fails.
    pub fn create(path: &Path, len: u64, options: &MapOptions) -> Result<Self> {
        let file = file::create(path, len)?;
        Self::map(path, file, options).inspect_err(|_| {
            let _ = std::fs::remove_file(path);
        })
    }

    /// Open and map the existing pool file at `path` (`Error::NotFound` if absent).
    pub fn open(path: &Path, options: &MapOptions) -> Result<Self> {
        let file = file::open(path, options.read_only)?;
        Self::map(path, file, options)
    }

    fn map(path: &Path, file: File, options: &MapOptions) -> Result<Self> {
        glue::ensure_handler()?;
        let len =
            file.metadata().map_err(|e| Error::io(format!("fstat {}", path.display()), e))?.len();
        file::check_len(path, len)?;
        lock::lock(&file, path, options.read_only)?;
        let facts = file::facts(&file, path, reserve::probe_map_sync(&file, options.read_only))?;
        let mode = mode::resolve(
            options.mode,
            facts,
            options.force_pmem_requested(),
            options.allow_forced_pmem_on_any_fs,
        )
        .map_err(|(mode, reason)| Error::ModeUnavailable {
            path: path.to_path_buf(),
            mode,
            reason,
        })?;
        let eadr = mode.uses_flush_instructions()
            && options
                .eadr
                .unwrap_or_else(|| mode == Mode::Dax && mode::eadr_from_sysfs(Path::new("/sys")));
        let max_len = options
            .max_len
            .unwrap_or(len)
            .checked_next_multiple_of(PAGE_SIZE)
            .unwrap_or(u64::MAX - PAGE_SIZE + 1)
            .max(len);
        let reservation = Reservation::new(max_len)?;
        let share = Share { mode, read_only: options.read_only };
        reservation.map_file(&file, 0, len, share)?;
        if options.populate {
            reservation.populate(0, len, !options.read_only)?;
        }
        let mut state = State::default();
        for (offset, bad_len) in BadBlocks::load(&BadBlocks::sidecar_path(path))?.ranges() {
            state.known_bad.insert(offset, offset + bad_len);
        }
        if mode == Mode::Dax {
            for (offset, bad_len) in kernel_bad_blocks(&file, Path::new("/sys")) {
                state.known_bad.insert(offset, offset + bad_len);
            }
        }
        let registration = Some(glue::register(reservation.base(), max_len, options.member));
        let medium = Self {
            path: path.to_path_buf(),
            file,
            share,
            eadr,
            member: options.member,
            flush_insn: glue::flush_insn(),
            reservation,
            len: AtomicU64::new(len),
            any_poison: AtomicBool::new(false),
            state: Mutex::new(state),
            registration,
        };
        medium.apply_known_bad(&mut medium.state.lock(), 0, len)?;
        Ok(medium)
    }
}

/// On fs-dax, the kernel's bad blocks of the file's device translated to file offsets; empty when
/// anything is missing (best effort, untested on hardware). Only a file system on a whole pmem
/// disk is handled: FIEMAP's physical offsets are relative to the file system's device, and the
/// list read is `/sys/block/<that device>/badblocks`.
fn kernel_bad_blocks(file: &File, sysfs_root: &Path) -> Vec<(u64, u64)> {
    let Ok(meta) = file.metadata() else { return Vec::new() };
    let dev = meta.dev();
    let link = sysfs_root.join(format!("dev/block/{}:{}", libc::major(dev), libc::minor(dev)));
    let Some(name) = std::fs::read_link(link)
        .ok()
        .and_then(|target| target.file_name().map(|n| n.to_string_lossy().into_owned()))
    else {
        return Vec::new();
    };
    let Ok(extents) = fiemap(file) else { return Vec::new() };
    sysfs_badblocks(sysfs_root, &name, &extents).unwrap_or_default()
}
