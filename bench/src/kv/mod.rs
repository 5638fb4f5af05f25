//! The engines under test behind one object-safe trait, `Kv`, so every workload runs the same
//! code against mcstore and each peer. Peers compile only with the `peers` feature.
//!
//! INVARIANT: every write method is durable when it returns (each engine's own durable setting:
//! mcstore `Immediate`, RocksDB `sync`, redb `Immediate`, LMDB synchronous commit, sled and fjall
//! an fsync per write call), unless the engine was opened for a non-durable figure on purpose.

#[cfg(feature = "peers")]
mod fjall;
#[cfg(feature = "peers")]
mod lmdb;
pub mod mcstore;
#[cfg(feature = "peers")]
mod redb;
#[cfg(feature = "peers")]
mod rocks;
#[cfg(feature = "peers")]
mod sled;

use std::path::Path;

use crate::keys::Key;

/// An engine's error, as text (the bench only reports it).
pub type KvResult<T> = Result<T, String>;

/// Format any error as the bench's error text.
pub fn err(what: &str) -> impl Fn(&dyn std::fmt::Display) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// The operations the workloads need.
pub trait Kv: Send + Sync {
    /// Durably store `value` under `key`.
    fn put(&self, key: &[u8], value: &[u8]) -> KvResult<()>;
    /// Durably and atomically store every pair.
    fn put_batch(&self, pairs: &[(Key, &[u8])]) -> KvResult<()>;
    /// Copy the value of `key` into `out`; false when absent.
    fn get(&self, key: &[u8], out: &mut Vec<u8>) -> KvResult<bool>;
    /// Visit up to `limit` pairs in key order from `start`; returns the bytes of keys and values
    /// seen (the caller divides by the count it expects).
    fn scan(&self, start: &[u8], limit: usize) -> KvResult<(usize, usize)>;
    /// `scan` on the calling thread alone, for an engine whose scan may also use another core
    /// (mcstore's read-ahead); `None` for the others, whose scans use one.
    fn scan_one_core(&self, start: &[u8], limit: usize) -> Option<KvResult<(usize, usize)>> {
        let _ = (start, limit);
        None
    }
    /// Replace the value of `key` with `f(current)`, durably.
    fn read_modify_write(
        &self,
        key: &[u8],
        f: &mut dyn FnMut(Option<&[u8]>) -> Vec<u8>,
    ) -> KvResult<()> {
        let mut current = Vec::new();
        let found = self.get(key, &mut current)?;
        let new = f(found.then_some(&current[..]));
        self.put(key, &new)
    }
    /// Durably remove `key`.
    fn remove(&self, key: &[u8]) -> KvResult<()>;
    /// Bytes the engine occupies on its medium now.
    fn space_bytes(&self) -> KvResult<u64>;
    /// Run the engine's compaction now and describe what it did (W9's compacted figure; only
    /// mcstore reports one).
    fn compact(&self) -> KvResult<String> {
        Err("no compaction".into())
    }
}

/// An engine the bench knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    /// This project.
    Mcstore,
    /// redb: copy-on-write B-tree, Rust.
    Redb,
    /// LMDB through heed: copy-on-write B-tree over mmap, C.
    Lmdb,
    /// RocksDB: LSM tree, C++.
    Rocksdb,
    /// sled: Bw-tree-like log-structured store, Rust.
    Sled,
    /// fjall: LSM tree, Rust.
    Fjall,
}

impl Engine {
    /// Every engine compiled into this binary, mcstore first.
    pub fn compiled() -> Vec<Engine> {
        let mut all = vec![Engine::Mcstore];
        if cfg!(feature = "peers") {
            all.extend([Engine::Redb, Engine::Lmdb, Engine::Rocksdb, Engine::Sled, Engine::Fjall]);
        }
        all
    }

    /// The engine's name in tables and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Mcstore => "mcstore",
            Engine::Redb => "redb",
            Engine::Lmdb => "lmdb",
            Engine::Rocksdb => "rocksdb",
            Engine::Sled => "sled",
            Engine::Fjall => "fjall",
        }
    }

    /// Open a fresh store in the empty directory `dir`, sized for about `data_bytes` of data.
    pub fn open(self, dir: &Path, data_bytes: u64) -> KvResult<Box<dyn Kv>> {
        match self {
            Engine::Mcstore => Ok(Box::new(mcstore::McStore::create(dir, data_bytes)?)),
            #[cfg(feature = "peers")]
            Engine::Redb => Ok(Box::new(redb::Redb::create(dir)?)),
            #[cfg(feature = "peers")]
            Engine::Lmdb => Ok(Box::new(lmdb::Lmdb::create(dir, data_bytes)?)),
            #[cfg(feature = "peers")]
            Engine::Rocksdb => Ok(Box::new(rocks::Rocks::create(dir)?)),
            #[cfg(feature = "peers")]
            Engine::Sled => Ok(Box::new(sled::Sled::create(dir)?)),
            #[cfg(feature = "peers")]
            Engine::Fjall => Ok(Box::new(fjall::Fjall::create(dir)?)),
            #[cfg(not(feature = "peers"))]
            other => Err(format!("{} is a peer: build with --features peers", other.name())),
        }
    }
}

#[cfg(feature = "peers")]
/// Bytes allocated to the files under `dir` (what the engine really holds in tmpfs).
pub fn dir_bytes(dir: &Path) -> KvResult<u64> {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    for entry in std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))? {
        let entry = entry.map_err(|e| e.to_string())?;
        let meta = entry.metadata().map_err(|e| e.to_string())?;
        total += if meta.is_dir() { dir_bytes(&entry.path())? } else { meta.blocks() * 512 };
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::key;

    /// Every compiled engine passes the same round trip the workloads rely on.
    #[test]
    fn every_engine_round_trips() {
        for engine in Engine::compiled() {
            let dir = tempfile::tempdir().unwrap();
            let kv = engine.open(dir.path(), 1 << 20).unwrap();
            kv.put(&key(1), b"one").unwrap();
            let pairs: Vec<(Key, &[u8])> = (2..12).map(|i| (key(i), &b"many"[..])).collect();
            kv.put_batch(&pairs).unwrap();
            let mut out = Vec::new();
            assert!(kv.get(&key(1), &mut out).unwrap(), "{}", engine.name());
            assert_eq!(out, b"one");
            assert!(kv.get(&key(7), &mut out).unwrap());
            assert_eq!(out, b"many");
            assert!(!kv.get(&key(99), &mut out).unwrap());
            let (items, bytes) = kv.scan(&[0u8; 16], usize::MAX).unwrap();
            assert_eq!((items, bytes), (11, 11 * 16 + 3 + 10 * 4), "{}", engine.name());
            assert_eq!(kv.scan(&[0u8; 16], 4).unwrap().0, 4);
            kv.read_modify_write(&key(1), &mut |v| [v.unwrap_or_default(), b"+"].concat()).unwrap();
            assert!(kv.get(&key(1), &mut out).unwrap());
            assert_eq!(out, b"one+");
            kv.remove(&key(1)).unwrap();
            assert!(!kv.get(&key(1), &mut out).unwrap());
            assert!(kv.space_bytes().unwrap() > 0);
        }
    }
}
