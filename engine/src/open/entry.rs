//! The ways into a store: create or open a pool file (with its replicas), open it or create it
//! if it was never finished, format or open a caller's medium (tests, fuzzing); every one ends in
//! `open_medium`. Also `Db::close`.
//!
//! INVARIANT: once the pool file is made, a create that fails removes it (and, once the replica
//! set is made, the replica files), so no later open meets a pool that was never whole.

use std::path::Path;
use std::sync::Arc;

use mcstore_pmem::{MapOptions, MappedMedium, Medium};
use mcstore_recovery::format::FormatError;
use mcstore_recovery::{CreateParams, pool};

use super::medium::open_medium;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::options::Options;

/// Granularity pool sizes are rounded up to.
const POOL_SIZE_ALIGN: u64 = mcstore_pmem::limits::PAGE_SIZE;

impl Db {
    /// Create a new pool file at `path` of `options.size_bytes` and open it
    /// (`Error::AlreadyExists` if the file exists).
    pub fn create(path: impl AsRef<Path>, options: Options) -> Result<Db> {
        let path = path.as_ref();
        options.validate(false)?;
        let len = options.size_bytes.next_multiple_of(POOL_SIZE_ALIGN);
        let map = map_options(&options, len);
        let medium = MappedMedium::create(path, len, &map)
            .map_err(|error| Error::pmem("creating the pool file", error))?;
        let mode = medium.mode().as_str();
        let created = if options.replicas.is_empty() {
            let medium: Arc<dyn Medium> = Arc::new(medium);
            format_pool(medium.as_ref(), &options).and_then(|()| {
                open_medium(medium, Some(path.to_path_buf()), mode, options, false, None)
            })
        } else {
            let replicas = options.replicas.clone();
            crate::replicas::create_set(medium, len, &map, &options).and_then(|set| {
                let at = Some(path.to_path_buf());
                let opened = open_medium(set.medium(), at, mode, options, false, Some(set));
                if opened.is_err() {
                    for replica in &replicas {
                        let _ = std::fs::remove_file(replica);
                    }
                }
                opened
            })
        };
        if created.is_err() {
            // Not a pool: do not leave a file that every later open would refuse.
            let _ = std::fs::remove_file(path);
        }
        created
    }

    /// Open the pool file at `path` (`Error::NotFound` if absent). The pool grows to
    /// `options.size_bytes` if that was set and the pool is smaller (unless read-only).
    pub fn open(path: impl AsRef<Path>, options: Options) -> Result<Db> {
        let path = path.as_ref();
        options.validate(false)?;
        let current = std::fs::metadata(path).map_or(0, |m| m.len());
        let map = map_options(&options, current);
        let medium = MappedMedium::open(path, &map)
            .map_err(|error| Error::pmem("opening the pool file", error))?;
        let mode = medium.mode().as_str();
        let wanted = options.size_bytes.next_multiple_of(POOL_SIZE_ALIGN);
        let len = medium.len();
        if !options.read_only && options.size_explicit && len < wanted {
            medium.grow(wanted).map_err(|error| match error {
                mcstore_pmem::Error::OutOfSpace { .. } => {
                    Error::OutOfSpace { needed: wanted - len, pool_bytes: len, max_bytes: wanted }
                }
                other => Error::pmem("growing the pool to size_bytes", other),
            })?;
        }
        if options.replicas.is_empty() {
            return open_medium(
                Arc::new(medium),
                Some(path.to_path_buf()),
                mode,
                options,
                false,
                None,
            );
        }
        let (set, _) = crate::replicas::open_set(medium, &map, &options)?;
        open_medium(set.medium(), Some(path.to_path_buf()), mode, options, false, Some(set))
    }

    /// Open the pool at `path`, creating it if absent or if a creation there never finished
    /// (a crash before its first superblock was whole: it holds nothing).
    pub fn open_or_create(path: impl AsRef<Path>, options: Options) -> Result<Db> {
        let path = path.as_ref();
        let create = |options: Options| match Db::create(path, options.clone()) {
            // Someone else created it between our open and create.
            Err(Error::AlreadyExists { .. }) => Db::open(path, options),
            other => other,
        };
        match Db::open(path, options.clone()) {
            Err(Error::NotFound { .. }) => create(options),
            Err(Error::UnsupportedFormat { .. })
                if options.replicas.is_empty() && never_created(path) =>
            {
                std::fs::remove_file(path).map_err(|source| Error::Io {
                    context: format!("removing the unfinished pool {}", path.display()),
                    source: Box::new(source),
                })?;
                create(options)
            }
            other => other,
        }
    }

    /// Format `medium` as a new pool and open it (tests and fuzzing: a `SimMedium`). The
    /// medium's length is the pool size; `size_bytes` is ignored, `max_size_bytes` applies.
    pub fn create_on(medium: Arc<dyn Medium>, options: Options) -> Result<Db> {
        options.validate(true)?;
        format_pool(medium.as_ref(), &options)?;
        open_medium(medium, None, "custom", options, true, None)
    }

    /// Open the pool on `medium` (tests and fuzzing: a `SimMedium` or a crash image).
    pub fn open_on(medium: Arc<dyn Medium>, options: Options) -> Result<Db> {
        options.validate(true)?;
        open_medium(medium, None, "custom", options, true, None)
    }

    /// Close this handle. The last handle persists, marks a clean shutdown and releases the
    /// pool's lock, returning what failed; other handles keep the store open (then this only
    /// reports the failed state).
    pub fn close(self) -> Result<()> {
        match Arc::try_unwrap(self.inner) {
            Ok(handle) => handle.close(),
            Err(shared) => shared.latch.check(),
        }
    }
}

/// Whether the file at `path` is what a crashed `Db::create` leaves (`pool::never_created`).
fn never_created(path: &Path) -> bool {
    use std::io::Read;
    let mut area = vec![0u8; mcstore_recovery::limits::SUPERBLOCK_AREA_BYTES as usize];
    let read = std::fs::File::open(path).and_then(|mut file| file.read_exact(&mut area));
    read.is_ok() && pool::never_created(&area)
}

fn map_options(options: &Options, current_len: u64) -> MapOptions {
    MapOptions::new()
        .mode(options.mode.into())
        .max_len(options.max_len(current_len, false).next_multiple_of(POOL_SIZE_ALIGN))
        .read_only(options.read_only)
}

fn format_pool(medium: &dyn Medium, options: &Options) -> Result<()> {
    let params =
        CreateParams { segment_size_bytes: options.segment_size_bytes, ..Default::default() };
    match pool::create(medium, &params) {
        Ok(_) => Ok(()),
        // A pool too small for one segment is the caller's input, not a damaged pool.
        Err(mcstore_recovery::Error::Format(FormatError::BadGeometry { reason })) => {
            Err(Error::InvalidOptions { reason })
        }
        Err(error) => Err(Error::recovery("formatting the pool", error)),
    }
}

#[cfg(test)]
mod tests {
    use mcstore_pmem::SimMedium;

    use super::*;
    use crate::test_support::{shm_dir, small_options};

    #[test]
    fn mapped_pool_create_open_and_lock() {
        let dir = shm_dir();
        let path = dir.path().join("pool");
        let options = small_options().size_bytes(1 << 20).mode(crate::Mode::ForcedPmem);
        let db = Db::create(&path, options.clone()).unwrap();
        assert_eq!(db.stats().mode, "forced-pmem");
        db.put("a", "1").unwrap();
        assert!(matches!(Db::create(&path, options.clone()), Err(Error::AlreadyExists { .. })));
        assert!(matches!(Db::open(&path, options.clone()), Err(Error::Locked { .. })));
        drop(db);
        // The lock is released by the time drop returns.
        let db = Db::open(&path, options.clone()).unwrap();
        assert!(db.recovery_report().clean_shutdown);
        assert_eq!(db.get("a").unwrap().unwrap(), b"1");
        db.close().unwrap();
        let missing = dir.path().join("missing");
        assert!(matches!(Db::open(&missing, options.clone()), Err(Error::NotFound { .. })));
        let db = Db::open_or_create(&missing, options.clone()).unwrap();
        db.put("b", "2").unwrap();
        drop(db);
        let db = Db::open_or_create(&missing, options).unwrap();
        assert_eq!(db.get("b").unwrap().unwrap(), b"2");
    }

    #[test]
    fn open_grows_to_size_bytes_and_never_shrinks() {
        let dir = shm_dir();
        let path = dir.path().join("pool");
        let options = small_options().mode(crate::Mode::ForcedPmem);
        Db::create(&path, options.clone().size_bytes(512 << 10)).unwrap().close().unwrap();
        let db = Db::open(&path, options.clone().size_bytes(1 << 20)).unwrap();
        assert_eq!(db.stats().pool_bytes, 1 << 20);
        db.close().unwrap();
        let db = Db::open(&path, options.clone().size_bytes(256 << 10)).unwrap();
        assert_eq!(db.stats().pool_bytes, 1 << 20);
        db.close().unwrap();
        // Without an explicit size an open keeps the pool's size (the default is for create).
        let path = dir.path().join("small");
        Db::create(&path, options.clone().size_bytes(512 << 10)).unwrap().close().unwrap();
        let db = Db::open(&path, options).unwrap();
        assert_eq!(db.stats().pool_bytes, 512 << 10);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 512 << 10);
    }

    #[test]
    fn too_small_a_pool_is_invalid_options() {
        let medium: Arc<dyn Medium> = Arc::new(SimMedium::new(96 << 10));
        assert!(matches!(
            Db::create_on(medium, small_options()),
            Err(Error::InvalidOptions { .. })
        ));
        let dir = shm_dir();
        let path = dir.path().join("pool");
        let tiny = small_options().size_bytes(64 << 10).mode(crate::Mode::ForcedPmem);
        assert!(matches!(Db::create(&path, tiny), Err(Error::InvalidOptions { .. })));
        assert!(!path.exists(), "a failed create leaves no file behind");
    }

    /// Regression: more replicas than a set holds reached `ReplicaSet::create`'s assert (a
    /// panic, after the replica files were created) instead of a typed error.
    #[test]
    fn too_many_replicas_is_invalid_options_not_a_panic() {
        let dir = shm_dir();
        let path = dir.path().join("pool");
        let replicas: Vec<_> = (0..crate::limits::REPLICAS_MAX + 1)
            .map(|i| dir.path().join(format!("r{i}")))
            .collect();
        let options = small_options().mode(crate::Mode::ForcedPmem).replicas(replicas.clone());
        assert!(matches!(Db::create(&path, options.clone()), Err(Error::InvalidOptions { .. })));
        assert!(matches!(Db::open(&path, options), Err(Error::InvalidOptions { .. })));
        assert!(!path.exists() && replicas.iter().all(|r| !r.exists()), "nothing created");
        let most = small_options().mode(crate::Mode::ForcedPmem).replicas(&replicas[..1]);
        Db::create(&path, most).unwrap().close().unwrap();
    }
}
