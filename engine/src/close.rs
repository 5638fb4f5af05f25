//! Closing a store: the last handle's drop (or `close`) stops the background threads, makes
//! every reserved record durable, writes the index snapshot a fast open loads, and marks the
//! clean shutdown in the superblock, in that order.
//!
//! INVARIANT: a store that is read-only, failed, or running in a process other than the one that
//! opened it (a forked child) writes nothing at close; a clean flag is never durable without the
//! snapshot that goes with it (or with none).

use std::path::Path;
use std::sync::atomic::Ordering;

use mcstore_recovery::format::{Lsn, RecordKind};
use mcstore_recovery::scan::{self, IndexEntry, IndexSnapshot};

use crate::db::{Handle, Inner};
use crate::error::Result;

impl Inner {
    /// Make everything durable and mark a clean shutdown (once). Skipped when read-only,
    /// failed, or in a forked child; a failed store reports `Failed`.
    pub(crate) fn shutdown(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.latch.check()?;
        if std::process::id() != self.opener_pid {
            return Ok(());
        }
        // PERSIST: every reserved record (Eventual, None) is published before the flag.
        self.persist_reserved(true)?;
        let mut st = self.commit.lock();
        let Some(writer) = st.writer.as_mut() else { return Ok(()) };
        let count = self
            .options
            .unsafe_shutdown_count_path
            .as_deref()
            .and_then(|p| scan::read_unsafe_shutdown_count(p).ok());
        if let Some(path) = &self.path {
            self.store_snapshot(path, writer.next_lsn());
        }
        // PERSIST: the flag is the last write (SUPERBLOCK_WRITE), after the snapshot file is
        // durable: a clean flag is never seen without the snapshot that goes with it (or none).
        writer.update_superblock(|sb| {
            sb.clean_shutdown = true;
            sb.unsafe_shutdown_count = count;
        })
    }

    /// Write the index snapshot a fast open loads, beside the pool file at `path` (commit lock
    /// held: nothing changes meanwhile). A snapshot that cannot be taken or written is removed,
    /// so the next open runs the full scan; that is not an error of the shutdown.
    fn store_snapshot(&self, path: &Path, next_lsn: u64) {
        let file = scan::snapshot_path(path);
        let Ok(Ok(marks)) =
            scan::segment_marks(self.medium.as_ref(), &self.geometry, &self.set_uuid)
        else {
            let _ = std::fs::remove_file(&file);
            return;
        };
        let entries = self
            .index
            .entries()
            .into_iter()
            .map(|(key, l)| IndexEntry {
                key: key.into(),
                kind: RecordKind::Put,
                lsn: Lsn(l.lsn),
                offset: l.offset,
                len: l.len,
                segment_seq: l.segment_seq,
            })
            .collect();
        let snapshot =
            IndexSnapshot { set_uuid: self.set_uuid, next_lsn: Lsn(next_lsn), marks, entries };
        if scan::store_snapshot(&file, &snapshot.encode()).is_err() {
            let _ = std::fs::remove_file(&file);
        }
    }
}

impl Handle {
    /// Stop the background threads, then close the store.
    pub(crate) fn close(self) -> Result<()> {
        self.stop_background();
        self.core.shutdown()
    }

    fn stop_background(&self) {
        if let Some(background) = self.background.lock().take() {
            background.stop();
        }
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.stop_background();
        if !std::thread::panicking() {
            // Errors have nowhere to go from a drop; `close()` returns them.
            let _ = self.core.shutdown();
        }
        // The background threads held the only other references to the store: it (and the
        // medium with the pool's lock) is released when `core` drops, before this returns.
    }
}

#[cfg(test)]
mod tests {
    use mcstore_recovery::scan::{self, OpenKind};

    use crate::db::Db;
    use crate::error::Error;
    use crate::options::Options;
    use crate::test_support::{shm_dir, small_options};

    fn forced(options: Options) -> Options {
        options.size_bytes(1 << 20).mode(crate::Mode::ForcedPmem)
    }

    /// A clean shutdown leaves an index snapshot bound to the log; the next open loads it (fast)
    /// and says so; without it, or once the log changed, the open is the full scan.
    #[test]
    fn clean_shutdown_opens_fast_and_says_why() {
        let dir = shm_dir();
        let path = dir.path().join("pool");
        let db = Db::create(&path, forced(small_options())).unwrap();
        assert_eq!(db.recovery_report().open_kind, OpenKind::Full);
        for i in 0..300u32 {
            db.put(i.to_be_bytes(), i.to_string()).unwrap();
        }
        for i in (0..300u32).step_by(3) {
            db.remove(i.to_be_bytes()).unwrap();
        }
        db.close().unwrap();
        assert!(scan::snapshot_path(&path).exists());
        let db = Db::open(&path, forced(small_options())).unwrap();
        let report = db.recovery_report().clone();
        assert_eq!(report.open_kind, OpenKind::Fast, "{}", report.open_reason);
        assert!(report.open_reason.contains("snapshot matches"), "{}", report.open_reason);
        assert_eq!(report.records, 0, "a fast open verifies no record at open");
        assert_eq!(db.len(), 200);
        for i in 0..300u32 {
            let want = (i % 3 != 0).then(|| i.to_string());
            assert_eq!(
                db.get(i.to_be_bytes()).unwrap().as_deref(),
                want.as_deref().map(str::as_bytes)
            );
        }
        // New writes after a fast open get LSNs above every older one.
        db.put(1u32.to_be_bytes(), "newer").unwrap();
        db.close().unwrap();
        let db = Db::open(&path, forced(small_options())).unwrap();
        assert_eq!(db.recovery_report().open_kind, OpenKind::Fast);
        assert_eq!(db.get(1u32.to_be_bytes()).unwrap().unwrap(), b"newer");
        drop(db);
        // The same log scanned in full agrees (the snapshot removed).
        std::fs::remove_file(scan::snapshot_path(&path)).unwrap();
        let db = Db::open(&path, forced(small_options())).unwrap();
        let report = db.recovery_report();
        assert_eq!(report.open_kind, OpenKind::Full);
        assert!(report.open_reason.contains("no index snapshot"), "{}", report.open_reason);
        assert_eq!(db.len(), 200);
        assert_eq!(db.get(1u32.to_be_bytes()).unwrap().unwrap(), b"newer");
        drop(db);
        // A damaged snapshot file is refused.
        let file = scan::snapshot_path(&path);
        let mut bytes = std::fs::read(&file).unwrap();
        bytes[60] ^= 1;
        std::fs::write(&file, &bytes).unwrap();
        let db = Db::open(&path, forced(small_options())).unwrap();
        assert_eq!(db.recovery_report().open_kind, OpenKind::Full);
        assert!(db.recovery_report().open_reason.contains("not usable"));
        assert_eq!(db.len(), 200);
    }

    /// Why the fast open is safe: it trusts the snapshot for *which* record is newest, never the
    /// record's bytes. A newest version damaged while the pool was closed fails its read; the
    /// older version is never returned in its place.
    #[test]
    fn damage_after_a_clean_shutdown_is_caught_at_read_never_stale() {
        use std::os::unix::fs::FileExt;
        let dir = shm_dir();
        let path = dir.path().join("pool");
        let db = Db::create(&path, forced(small_options())).unwrap();
        db.put("k", "old value").unwrap();
        db.put("k", "new value").unwrap();
        let newest = db.inner.index.get(b"k").unwrap();
        db.close().unwrap();
        let file = std::fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
        let at = newest.offset + 40;
        let mut byte = [0u8];
        file.read_exact_at(&mut byte, at).unwrap();
        file.write_all_at(&[byte[0] ^ 0x40], at).unwrap();
        drop(file);
        let db = Db::open(&path, forced(small_options())).unwrap();
        assert_eq!(db.recovery_report().open_kind, OpenKind::Fast);
        assert!(matches!(db.get("k"), Err(Error::Corrupt { .. })), "never the old value");
        drop(db);
        // The full scan finds the same damage at open (Engine policy: latch).
        std::fs::remove_file(scan::snapshot_path(&path)).unwrap();
        let db = Db::open(&path, forced(small_options())).unwrap();
        assert_eq!(db.recovery_report().open_kind, OpenKind::Full);
        assert_eq!(db.recovery_report().damage_found, 1);
    }

    /// The unsafe-shutdown count (a fake sysfs file): recorded at a clean shutdown, compared at
    /// open; a change, an unreadable file or a missing record forces the full scan.
    #[test]
    fn a_changed_unsafe_shutdown_count_forces_the_full_scan() {
        let dir = shm_dir();
        let path = dir.path().join("pool");
        let count = dir.path().join("dirty_shutdown");
        std::fs::write(&count, "3\n").unwrap();
        let with_count = || forced(small_options()).unsafe_shutdown_count_path(&count);
        // Closed by an opener that was not told about the count: nothing recorded.
        let db = Db::create(&path, forced(small_options())).unwrap();
        db.put("a", "1").unwrap();
        db.close().unwrap();
        let open = |options: Options| {
            let db = Db::open(&path, options).unwrap();
            let report = db.recovery_report().clone();
            assert_eq!(db.get("a").unwrap().unwrap(), b"1");
            db.close().unwrap();
            (report.open_kind, report.open_reason)
        };
        let (kind, reason) = open(with_count());
        assert_eq!(kind, OpenKind::Full);
        assert!(reason.contains("no unsafe-shutdown count was recorded"), "{reason}");
        let (kind, reason) = open(with_count());
        assert_eq!(kind, OpenKind::Fast, "{reason}");
        assert!(reason.contains("unchanged (3)"), "{reason}");
        std::fs::write(&count, "4\n").unwrap();
        let (kind, reason) = open(with_count());
        assert_eq!(kind, OpenKind::Full);
        assert!(reason.contains("changed (3 -> 4)"), "{reason}");
        assert_eq!(open(with_count()).0, OpenKind::Fast);
        std::fs::write(&count, "garbage").unwrap();
        let (kind, reason) = open(with_count());
        assert_eq!(kind, OpenKind::Full);
        assert!(reason.contains("unknown"), "{reason}");
        // Without the option the clean flag and the snapshot decide alone.
        assert_eq!(open(forced(small_options())).0, OpenKind::Fast);
    }
}
