//! Limits of the engine, in one place (documented in `docs/limits.md`). Input beyond them is a
//! typed error, never a panic. The format's limits (`mcstore_recovery::limits`) are the source
//! of the key and segment limits here.

use std::time::Duration;

use mcstore_recovery::limits as format;

/// Longest key, in bytes.
pub const KEY_BYTES_MAX: usize = format::KEY_BYTES_MAX;
/// Longest value, in bytes. A record (header, key, value, padding) must also fit in one
/// segment's data area, so small segments allow less (`Error::ValueTooLarge` says how much).
pub const VALUE_BYTES_MAX: usize = 256 * 1024 * 1024;
/// Most operations in one batch. A batch must also fit in one segment's data area.
pub const BATCH_OPS_MAX: usize = 1 << 20;
/// Largest pool, in bytes (also the largest `max_size_bytes`).
pub const POOL_BYTES_MAX: u64 = 1 << 44;
/// Pool size `Options::default()` creates.
pub const DEFAULT_POOL_BYTES: u64 = 64 << 20;
/// Segment size `Options::default()` creates.
pub const DEFAULT_SEGMENT_BYTES: u64 = format::SEGMENT_BYTES_DEFAULT;
/// Smallest segment size accepted.
pub const SEGMENT_BYTES_MIN: u64 = format::SEGMENT_BYTES_MIN;
/// Largest segment size accepted.
pub const SEGMENT_BYTES_MAX: u64 = format::SEGMENT_BYTES_MAX;
/// Most replicas a pool may have (`Options::replicas`): the replica set holds
/// `mcstore_recovery::limits::MEMBERS_MAX` members, the primary included.
pub const REPLICAS_MAX: usize = format::MEMBERS_MAX - 1;
/// Keys fetched from the ordered index per lock acquisition while iterating.
pub const ITER_CHUNK_KEYS: usize = 64;
/// The last segment a pool can have keeps `capacity / REMOVE_RESERVE_FRACTION` bytes for
/// delete-only writes, so a full pool can still remove.
pub const REMOVE_RESERVE_FRACTION: u64 = 16;
/// A pool of at least this many segments (at its maximum size) also keeps its last free
/// segment for removes and compaction's copies, so compaction can run in a full pool.
pub const SEGMENT_RESERVE_MIN_SEGMENTS: u32 = 8;
/// How often the background flusher persists `Eventual` writes by default.
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_millis(100);
/// How often the background compactor runs by default.
pub const DEFAULT_COMPACTION_INTERVAL: Duration = Duration::from_millis(250);
/// A sealed segment whose live bytes are at most this fraction of its data is cleaned. Sealed
/// segments then hold at least this fraction live, so space amplification stays near its
/// inverse (≤ 1.43 plus the open segment); copying costs up to 1 / (1 − ratio) ≈ 3.3× writes.
pub const DEFAULT_COMPACTION_LIVE_RATIO: f64 = 0.7;
/// A transaction retries at most this many times on conflict before `Error::Conflict`.
pub const TRANSACTION_ATTEMPTS_MAX: u32 = 1000;
/// Spins a waiting writer makes (lock released) for the group in flight before it sleeps.
pub const COMMIT_SPINS: u32 = 4000;
