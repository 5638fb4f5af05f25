//! The three mapping modes and the rule that picks one at open.
//!
//! `resolve` is a pure function of what was measured about the file (does `MAP_SYNC` work, is it
//! on tmpfs, is it DAX) and of what was asked, so every branch is unit-tested without touching the
//! process environment. INVARIANT: `ForcedPmem` is chosen from the environment only on tmpfs or
//! DAX, unless the caller's code explicitly allows any file system.

use std::fmt;
use std::path::Path;

/// The mode asked for at open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ModeRequest {
    /// `Dax` when `MAP_SYNC` works; else `ForcedPmem` when `MCSTORE_FORCE_PMEM=1` and the file is
    /// on tmpfs or DAX (refused on a disk-backed file unless explicitly allowed); else `Msync`.
    #[default]
    Auto,
    /// Require `MAP_SYNC` (fs-dax); refused with the reason otherwise.
    Dax,
    /// Page cache and `msync`.
    Msync,
    /// Flush instructions on a non-DAX mapping (durable against a process crash only).
    ForcedPmem,
}

/// The mode a medium runs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// `MAP_SHARED_VALIDATE|MAP_SYNC` mapping; flush = cache-line write-back, fence = `sfence`.
    Dax,
    /// Ordinary shared mapping; flush = `msync(MS_SYNC)` of the touched pages.
    Msync,
    /// Flush instructions on a non-DAX mapping: durable against a process crash only.
    ForcedPmem,
}

impl Mode {
    /// Lower-case name, as reported by `info`, `stats()` and the recovery report.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Dax => "dax",
            Mode::Msync => "msync",
            Mode::ForcedPmem => "forced-pmem",
        }
    }

    /// Whether flushes are cache-line write-back instructions (as opposed to `msync`).
    pub fn uses_flush_instructions(self) -> bool {
        matches!(self, Mode::Dax | Mode::ForcedPmem)
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ModeRequest {
    /// Lower-case name, for error messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ModeRequest::Auto => "auto",
            ModeRequest::Dax => "dax",
            ModeRequest::Msync => "msync",
            ModeRequest::ForcedPmem => "forced-pmem",
        }
    }
}

/// What was measured about an open pool file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct FileFacts {
    /// `Ok` when a `MAP_SHARED_VALIDATE|MAP_SYNC` probe mapping succeeded, else its errno.
    pub map_sync: Result<(), i32>,
    /// The file lives on tmpfs (`statfs` `TMPFS_MAGIC`).
    pub on_tmpfs: bool,
    /// The inode reports `STATX_ATTR_DAX`.
    pub is_dax: bool,
}

/// Why a mode cannot be had: the name asked for and the reason.
pub(super) type Refusal = (&'static str, String);

/// Pick the mode. `force_env` is `MCSTORE_FORCE_PMEM=1`; `allow_any_fs` the explicit override.
pub(super) fn resolve(
    request: ModeRequest,
    facts: FileFacts,
    force_env: bool,
    allow_any_fs: bool,
) -> Result<Mode, Refusal> {
    match request {
        ModeRequest::Msync => Ok(Mode::Msync),
        ModeRequest::ForcedPmem => Ok(Mode::ForcedPmem),
        ModeRequest::Dax => match facts.map_sync {
            Ok(()) => Ok(Mode::Dax),
            Err(errno) => Err(("dax", map_sync_refusal(errno, facts))),
        },
        ModeRequest::Auto => {
            if facts.map_sync.is_ok() {
                return Ok(Mode::Dax);
            }
            if !force_env {
                return Ok(Mode::Msync);
            }
            if facts.on_tmpfs || facts.is_dax || allow_any_fs {
                return Ok(Mode::ForcedPmem);
            }
            Err((
                "forced-pmem",
                "MCSTORE_FORCE_PMEM=1 is honoured only on tmpfs or DAX: this file is on a \
                 disk-backed file system, where flush instructions do not make data durable \
                 (unset it, or allow it explicitly in code)"
                    .to_string(),
            ))
        }
    }
}

fn map_sync_refusal(errno: i32, facts: FileFacts) -> String {
    let name = match errno {
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EINVAL => "EINVAL",
        _ => "error",
    };
    let fs = if facts.on_tmpfs { "tmpfs" } else { "a file system without DAX on this file" };
    format!(
        "MAP_SHARED_VALIDATE|MAP_SYNC refused ({name}, errno {errno}): the file is on {fs}; \
         use Msync or ForcedPmem"
    )
}

/// Whether any NVDIMM region under `sysfs_root` (normally `/sys`) reports its persistence domain
/// as `cpu_cache` (eADR). Missing or unreadable sysfs means no.
pub(super) fn eadr_from_sysfs(sysfs_root: &Path) -> bool {
    let Ok(dir) = std::fs::read_dir(sysfs_root.join("bus/nd/devices")) else {
        return false;
    };
    dir.flatten()
        .filter(|entry| entry.file_name().to_string_lossy().starts_with("region"))
        .filter_map(|entry| std::fs::read_to_string(entry.path().join("persistence_domain")).ok())
        .any(|domain| domain.trim() == "cpu_cache")
}

#[cfg(test)]
mod tests {
    use super::*;

    const DISK: FileFacts =
        FileFacts { map_sync: Err(libc::EOPNOTSUPP), on_tmpfs: false, is_dax: false };
    const TMPFS: FileFacts =
        FileFacts { map_sync: Err(libc::EOPNOTSUPP), on_tmpfs: true, is_dax: false };
    const FSDAX: FileFacts = FileFacts { map_sync: Ok(()), on_tmpfs: false, is_dax: true };

    #[test]
    fn auto_prefers_dax_then_msync() {
        assert_eq!(resolve(ModeRequest::Auto, FSDAX, false, false), Ok(Mode::Dax));
        assert_eq!(resolve(ModeRequest::Auto, FSDAX, true, false), Ok(Mode::Dax));
        assert_eq!(resolve(ModeRequest::Auto, DISK, false, false), Ok(Mode::Msync));
        assert_eq!(resolve(ModeRequest::Auto, TMPFS, false, false), Ok(Mode::Msync));
    }

    #[test]
    fn force_env_only_on_tmpfs_or_dax() {
        assert_eq!(resolve(ModeRequest::Auto, TMPFS, true, false), Ok(Mode::ForcedPmem));
        let dax_no_sync = FileFacts { is_dax: true, ..DISK };
        assert_eq!(resolve(ModeRequest::Auto, dax_no_sync, true, false), Ok(Mode::ForcedPmem));
        let (mode, reason) = resolve(ModeRequest::Auto, DISK, true, false).unwrap_err();
        assert_eq!(mode, "forced-pmem");
        assert!(reason.contains("disk-backed"), "{reason}");
        assert_eq!(resolve(ModeRequest::Auto, DISK, true, true), Ok(Mode::ForcedPmem));
    }

    #[test]
    fn explicit_requests() {
        assert_eq!(resolve(ModeRequest::Msync, FSDAX, true, false), Ok(Mode::Msync));
        assert_eq!(resolve(ModeRequest::ForcedPmem, DISK, false, false), Ok(Mode::ForcedPmem));
        let (mode, reason) = resolve(ModeRequest::Dax, TMPFS, false, false).unwrap_err();
        assert_eq!(mode, "dax");
        assert!(reason.contains("EOPNOTSUPP") && reason.contains("tmpfs"), "{reason}");
        let einval = FileFacts { map_sync: Err(libc::EINVAL), ..DISK };
        let (_, reason) = resolve(ModeRequest::Dax, einval, false, false).unwrap_err();
        assert!(reason.contains("EINVAL"), "{reason}");
    }

    #[test]
    fn eadr_read_from_fake_sysfs() {
        let root = tempfile::tempdir().unwrap();
        assert!(!eadr_from_sysfs(root.path()));
        let region = root.path().join("bus/nd/devices/region0");
        std::fs::create_dir_all(&region).unwrap();
        std::fs::write(region.join("persistence_domain"), "memory_controller\n").unwrap();
        std::fs::create_dir_all(root.path().join("bus/nd/devices/namespace0.0")).unwrap();
        assert!(!eadr_from_sysfs(root.path()));
        let region1 = root.path().join("bus/nd/devices/region1");
        std::fs::create_dir_all(&region1).unwrap();
        std::fs::write(region1.join("persistence_domain"), "cpu_cache\n").unwrap();
        assert!(eadr_from_sysfs(root.path()));
    }
}
