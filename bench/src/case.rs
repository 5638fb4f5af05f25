//! The names of the measured cases, shared by the workloads that produce figures and the targets
//! that read them (one spelling per case, so a renamed case cannot silently drop a target).

/// W1: one durable put per call, one thread.
pub const W1_PUT: &str = "put 100 B, 1 thread";
/// W2: batches of 1000 durable puts (figure: puts per second).
pub const W2_BATCH: &str = "batch of 1000 puts";
/// W3: bulk load of random keys in batches of 1000 (figure: records per second).
pub const W3_LOAD: &str = "bulk load";
/// W4: random get, one thread.
pub const W4_GET_1: &str = "get, 1 thread";
/// W4: random get, two threads (figure: both threads together).
pub const W4_GET_2: &str = "get, 2 threads";
/// W5: scan of 10 records from a random key.
pub const W5_SCAN_10: &str = "scan 10";
/// W5: full scan (figure: records per second).
pub const W5_FULL: &str = "full scan";
/// W5: full scan on the calling thread alone (mcstore with its read-ahead off).
pub const W5_FULL_ONE_CORE: &str = "full scan, one core";
/// W7 value sizes.
pub const W7_SIZES: [usize; 3] = [4 << 10, 64 << 10, 1 << 20];
/// W8: recovery, GB of log per second.
pub const W8_GBPS: &str = "recovery, log GB/s";
/// W8: recovery, records per second.
pub const W8_RECORDS: &str = "recovery, records/s";
/// W9: after the bulk load.
pub const W9_LOADED: &str = "after load";
/// W9: after half the keys are removed.
pub const W9_HALF: &str = "half removed";
/// W9: after compaction.
pub const W9_COMPACTED: &str = "half removed, compacted";
/// W10: W1 with flushes on.
pub const W10_W1_ON: &str = "W1 flushes on";
/// W10: W1 with flushes off (eADR).
pub const W10_W1_OFF: &str = "W1 flushes off (eADR)";
/// W10: W2 with flushes on.
pub const W10_W2_ON: &str = "W2 flushes on";
/// W10: W2 with flushes off (eADR).
pub const W10_W2_OFF: &str = "W2 flushes off (eADR)";
/// W10: W1 on / off.
pub const W10_TAX_W1: &str = "tax W1 (on/off)";
/// W10: W2 on / off.
pub const W10_TAX_W2: &str = "tax W2 (on/off)";
/// Machine: the raw two-fence append of one mcstore-sized record.
pub const TWO_FENCE: &str = "two-fence append 152 B";
/// Machine: memcpy between buffers larger than the last-level cache.
pub const MEMCPY: &str = "memcpy 256 MiB";
/// Machine: the same memcpy again, measured by W7 right before its own loops (W7's targets take
/// the higher of the two, so a slow moment of the VM at either time cannot flatter W7's ratios).
pub const MEMCPY_AT_W7: &str = "memcpy 256 MiB, before W7";
/// Machine: memcpy of `size`-byte pieces at random places of a buffer larger than the last-level
/// cache, each into the same destination: a plain copy of cold values of that size, with no
/// index, header or checksum, for comparison. It is not a bound: a get that prefetches ahead can
/// match it (at 1 MiB it did). W7 reports it beside its gets; the targets keep the large memcpy
/// as their reference, as the issue states them, and show this copy's ratio to it beside each
/// get target.
pub fn memcpy_pieces(size: usize) -> String {
    format!("memcpy {} pieces, cold, random", size_label(size))
}

/// Machine: dependent random DRAM load.
pub const CHASE: &str = "dependent load, 256 MiB chase";

/// W6: one YCSB workload.
pub fn ycsb(letter: char) -> String {
    format!("YCSB {letter}")
}

/// W1 with `threads` writer threads.
pub fn w1_threads(threads: usize) -> String {
    if threads == 1 { W1_PUT.to_string() } else { format!("put 100 B, {threads} threads") }
}

/// W7 put of one value size.
pub fn w7_put(size: usize) -> String {
    format!("put {}", size_label(size))
}

/// W7 get of one value size.
pub fn w7_get(size: usize) -> String {
    format!("get {}", size_label(size))
}

/// `4 KiB`, `64 KiB`, `1 MiB`.
pub fn size_label(bytes: usize) -> String {
    if bytes >= 1 << 20 { format!("{} MiB", bytes >> 20) } else { format!("{} KiB", bytes >> 10) }
}
