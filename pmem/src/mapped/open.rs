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
        Self::map(path, file, options, true).inspect_err(|_| {
            let _ = std::fs::remove_file(path);
        })
    }

    /// Open and map the existing pool file at `path` (`Error::NotFound` if absent).
    pub fn open(path: &Path, options: &MapOptions) -> Result<Self> {
        let file = file::open(path, options.read_only)?;
        Self::map(path, file, options, false)
    }

    fn map(path: &Path, file: File, options: &MapOptions, created: bool) -> Result<Self> {
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
        // A new pool in a flush-instruction mode is pre-faulted writable as grown ranges are:
        // otherwise the first store to each page faults (and on tmpfs zeroes it) inside the
        // write path.
        let prefaulted =
            options.populate || (created && mode.uses_flush_instructions() && !options.read_only);
        if prefaulted {
            reservation.populate(0, len, !options.read_only)?;
        }
        let mut state = State::default();
        if prefaulted && len > 0 {
            state.populated.insert(0, len);
        }
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

#[cfg(test)]
pub(super) mod tests {
    use std::process::Command;

    use super::*;
    use crate::limits::MIN_MEDIUM_BYTES;
    use crate::mapped::ModeRequest;
    use crate::medium::Medium;

    pub(crate) const LEN: u64 = MIN_MEDIUM_BYTES;

    /// A tmpfs directory and a disk-backed one (/var/tmp is ext4 here; `stat -f` checked).
    pub(crate) fn dirs() -> [tempfile::TempDir; 2] {
        [
            tempfile::Builder::new().prefix("mcstore-b").tempdir_in("/dev/shm").unwrap(),
            tempfile::Builder::new().prefix("mcstore-b").tempdir_in("/var/tmp").unwrap(),
        ]
    }

    pub(crate) fn with_mode(mode: ModeRequest) -> MapOptions {
        MapOptions::new().mode(mode)
    }

    #[test]
    fn msync_and_forced_pmem_open_on_tmpfs_and_disk() {
        for dir in dirs() {
            let path = dir.path().join("pool");
            let m = MappedMedium::create(&path, LEN, &with_mode(ModeRequest::Msync)).unwrap();
            assert_eq!(m.mode(), Mode::Msync);
            assert_eq!((m.len(), m.max_len(), m.path()), (LEN, LEN, path.as_path()));
            assert!(!m.eadr() && !m.flush_is_noop());
            drop(m);
            // A max_len below the file's length reserves the file's length.
            let forced = with_mode(ModeRequest::ForcedPmem).max_len(1);
            let m = MappedMedium::open(&path, &forced).unwrap();
            assert_eq!((m.mode(), m.max_len()), (Mode::ForcedPmem, LEN));
            assert_eq!(m.mode().to_string(), "forced-pmem");
        }
    }

    #[test]
    fn dax_is_refused_on_tmpfs_and_disk_with_the_reason() {
        for dir in dirs() {
            let path = dir.path().join("pool");
            match MappedMedium::create(&path, LEN, &with_mode(ModeRequest::Dax)) {
                Err(Error::ModeUnavailable { mode: "dax", reason, .. }) => {
                    assert!(
                        reason.contains("MAP_SYNC") && reason.contains("EOPNOTSUPP"),
                        "{reason}"
                    );
                }
                other => panic!("{other:?}"),
            }
            assert!(!path.exists(), "a failed create leaves no file behind");
            drop(MappedMedium::create(&path, LEN, &MapOptions::new()).unwrap());
            let err = MappedMedium::open(&path, &with_mode(ModeRequest::Dax)).unwrap_err();
            assert!(matches!(err, Error::ModeUnavailable { mode: "dax", .. }), "{err:?}");
            assert!(err.to_string().contains("unavailable"), "{err}");
            // Refusal released the lock.
            MappedMedium::open(&path, &MapOptions::new()).unwrap();
        }
    }

    #[test]
    fn force_pmem_env_picks_forced_pmem_on_tmpfs_and_is_refused_on_disk() {
        let [shm, disk] = dirs();
        let forced = MapOptions::new().force_pmem_env(true);
        let m = MappedMedium::create(&shm.path().join("pool"), LEN, &forced).unwrap();
        assert_eq!(m.mode(), Mode::ForcedPmem);
        let path = disk.path().join("pool");
        match MappedMedium::create(&path, LEN, &forced) {
            Err(Error::ModeUnavailable { mode: "forced-pmem", reason, .. }) => {
                assert!(reason.contains("disk-backed"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        let allowed = forced.clone().allow_forced_pmem_on_any_fs(true);
        let m = MappedMedium::create(&path, LEN, &allowed).unwrap();
        assert_eq!(m.mode(), Mode::ForcedPmem);
        drop(m);
        let plain = MapOptions::new().force_pmem_env(false);
        assert_eq!(MappedMedium::open(&path, &plain).unwrap().mode(), Mode::Msync);
    }

    #[test]
    fn eadr_option_skips_flushes_in_flush_instruction_modes_only() {
        let [shm, _] = dirs();
        let path = shm.path().join("pool");
        let eadr = with_mode(ModeRequest::ForcedPmem).eadr(Some(true));
        let m = MappedMedium::create(&path, LEN, &eadr).unwrap();
        assert!(m.eadr() && m.flush_is_noop());
        drop(m);
        let m = MappedMedium::open(&path, &eadr.mode(ModeRequest::Msync)).unwrap();
        assert!(!m.eadr() && !m.flush_is_noop());
    }

    #[test]
    fn missing_file_is_not_found() {
        let [shm, _] = dirs();
        let path = shm.path().join("absent");
        assert!(matches!(
            MappedMedium::open(&path, &MapOptions::new()),
            Err(Error::NotFound { .. })
        ));
        let nested = shm.path().join("no/such/dir/pool");
        let err = MappedMedium::create(&nested, LEN, &MapOptions::new()).unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err:?}");
    }

    #[test]
    fn create_over_an_existing_file_is_already_exists() {
        let [shm, _] = dirs();
        let path = shm.path().join("pool");
        std::fs::write(&path, b"precious").unwrap();
        let err = MappedMedium::create(&path, LEN, &MapOptions::new()).unwrap_err();
        assert!(matches!(err, Error::AlreadyExists { .. }), "{err:?}");
        assert_eq!(std::fs::read(&path).unwrap(), b"precious");
    }

    #[test]
    fn too_small_or_unaligned_is_bad_size() {
        let [shm, _] = dirs();
        let path = shm.path().join("pool");
        for len in [LEN - PAGE_SIZE, LEN + 100] {
            let err = MappedMedium::create(&path, len, &MapOptions::new()).unwrap_err();
            assert!(matches!(err, Error::BadSize { len: l, .. } if l == len), "{err:?}");
            assert!(!path.exists());
            std::fs::write(&path, vec![0u8; len as usize]).unwrap();
            let err = MappedMedium::open(&path, &MapOptions::new()).unwrap_err();
            assert!(matches!(err, Error::BadSize { .. }), "{err:?}");
            std::fs::remove_file(&path).unwrap();
        }
    }

    #[test]
    fn directory_and_devices_are_not_regular_files() {
        let [shm, _] = dirs();
        let err = MappedMedium::open(shm.path(), &MapOptions::new()).unwrap_err();
        assert!(
            matches!(&err, Error::NotRegularFile { reason, .. } if reason.contains("directory"))
        );
        // /dev/null is a character device, like devdax's /dev/daxN.M.
        match MappedMedium::open(Path::new("/dev/null"), &MapOptions::new()) {
            Err(Error::NotRegularFile { reason, .. }) => {
                assert!(
                    reason.contains("character device") && reason.contains("devdax"),
                    "{reason}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn second_open_in_this_process_is_locked() {
        for dir in dirs() {
            let path = dir.path().join("pool");
            let first = MappedMedium::create(&path, LEN, &MapOptions::new()).unwrap();
            let err = MappedMedium::open(&path, &MapOptions::new()).unwrap_err();
            assert!(matches!(err, Error::Locked { .. }), "{err:?}");
            let ro = MapOptions::new().read_only(true);
            assert!(matches!(MappedMedium::open(&path, &ro), Err(Error::Locked { .. })));
            drop(first);
            let a = MappedMedium::open(&path, &ro).unwrap();
            let b = MappedMedium::open(&path, &ro).unwrap();
            assert!(a.is_read_only() && b.is_read_only());
            assert!(matches!(
                MappedMedium::open(&path, &MapOptions::new()),
                Err(Error::Locked { .. })
            ));
        }
    }

    #[test]
    fn the_lock_is_seen_by_other_processes() {
        let [shm, _] = dirs();
        let path = shm.path().join("pool");
        let m = MappedMedium::create(&path, LEN, &MapOptions::new()).unwrap();
        // util-linux flock(1) in another process: it cannot take the lock while we hold it.
        let try_lock =
            || Command::new("flock").arg("--nonblock").arg(&path).arg("true").status().unwrap();
        assert!(!try_lock().success());
        drop(m);
        assert!(try_lock().success());
    }

    #[test]
    fn sidecar_parse_error_fails_open() {
        let [shm, _] = dirs();
        let path = shm.path().join("pool");
        drop(MappedMedium::create(&path, LEN, &MapOptions::new()).unwrap());
        std::fs::write(BadBlocks::sidecar_path(&path), "4096 4096\noops\n").unwrap();
        match MappedMedium::open(&path, &MapOptions::new()) {
            Err(Error::BadBlocksFormat { line: 2, .. }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn kernel_bad_blocks_need_a_pmem_device() {
        let [_, disk] = dirs();
        let path = disk.path().join("pool");
        let m = MappedMedium::create(&path, LEN, &MapOptions::new()).unwrap();
        // A fake sysfs whose dev/block link names a pmem disk with one bad page at the file's
        // first physical block.
        let extents = fiemap(&m.file).unwrap();
        let root = tempfile::tempdir().unwrap();
        let dev = m.file.metadata().unwrap().dev();
        let link_dir = root.path().join("dev/block");
        std::fs::create_dir_all(&link_dir).unwrap();
        let name = format!("{}:{}", libc::major(dev), libc::minor(dev));
        std::os::unix::fs::symlink("../../devices/ndbus0/region0/pmem0", link_dir.join(name))
            .unwrap();
        let disk_dir = root.path().join("block/pmem0");
        std::fs::create_dir_all(&disk_dir).unwrap();
        let sector = extents[0].physical / 512;
        std::fs::write(disk_dir.join("badblocks"), format!("{sector} 8\n")).unwrap();
        assert_eq!(kernel_bad_blocks(&m.file, root.path()), vec![(0, 4096)]);
        assert!(kernel_bad_blocks(&m.file, Path::new("/nonexistent")).is_empty());
    }

    /// Environment variable that makes the map-count test run its child role.
    const MAP_COUNT_CHILD: &str = "MCSTORE_TEST_MAP_COUNT_CHILD";

    /// `vm.max_map_count` exhaustion, for real: a child (this test binary re-executed, so the
    /// harness's other threads never meet the exhausted limit) splits the mapping with holes
    /// until `mmap` fails with ENOMEM, and must see `Error::MapCountExhausted`, not a crash.
    #[test]
    fn map_count_exhaustion_is_a_typed_error() {
        if std::env::var_os(MAP_COUNT_CHILD).is_some() {
            return map_count_child();
        }
        let out = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "mapped::open::tests::map_count_exhaustion_is_a_typed_error"])
            .args(["--nocapture", "--test-threads=1"])
            .env(MAP_COUNT_CHILD, "1")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
        assert!(stdout.contains("map-count: exhausted as a typed error"), "{stdout}");
    }

    fn map_count_child() {
        let max: u64 =
            std::fs::read_to_string("/proc/sys/vm/max_map_count").unwrap().trim().parse().unwrap();
        assert!(max <= 1 << 21, "vm.max_map_count {max} too large to exhaust in a test");
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        let pages = max + 4096;
        let m =
            MappedMedium::create(&dir.path().join("pool"), pages * PAGE_SIZE, &MapOptions::new())
                .unwrap();
        let mut holes = 0u64;
        let err = loop {
            let page = 2 * holes + 1;
            assert!(page < pages, "ran out of pages before the map count ({max})");
            // Non-destructive holes: the same mapping work as inject_poison, without the pwrite.
            if let Err(err) =
                m.map_holes(&mut m.state.lock(), page * PAGE_SIZE, (page + 1) * PAGE_SIZE)
            {
                break err;
            }
            holes += 1;
        };
        assert!(matches!(err, Error::MapCountExhausted), "{err:?}");
        assert!(holes > max / 4, "failed after only {holes} holes: {err:?}");
        assert_eq!(m.poisoned_ranges().len() as u64, holes, "a failed hole is not recorded");
        // The medium still works where it is not poisoned, and dropping it frees every mapping.
        let path = m.path().to_path_buf();
        m.write(0, b"alive").unwrap();
        m.flush(0, 5).unwrap();
        drop(m);
        let m = MappedMedium::open(&path, &MapOptions::new()).unwrap();
        let mut back = [0u8; 5];
        m.read(0, &mut back, &mut crate::ErrorRegister::deferred(), crate::Domain::User).unwrap();
        assert_eq!(&back, b"alive");
        println!("map-count: exhausted as a typed error after {holes} holes");
    }
}
