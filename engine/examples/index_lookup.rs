//! Point lookups in the engine's index against an ordered map, 1 M keys of 16 bytes, random
//! order: `cargo run --release -p mcstore-engine --example index_lookup`. The numbers quoted
//! in `docs/concurrency.md` come from this program (DESIGN.md: point lookups must not pay for
//! order).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use mcstore_engine::index::{Index, Location};

const KEYS: u64 = 1_000_000;
const LOOKUPS: u64 = 2_000_000;

fn key(i: u64) -> [u8; 16] {
    let h = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&h.to_be_bytes());
    k[8..].copy_from_slice(&i.to_le_bytes());
    k
}

fn main() {
    let at = |i: u64| Location { offset: i * 64, len: 64, segment_seq: 1, lsn: i };
    let mut entries: Vec<(Arc<[u8]>, Location)> =
        (0..KEYS).map(|i| (Arc::<[u8]>::from(&key(i)[..]), at(i))).collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let index = Index::bulk_load(entries.iter().cloned());
    let btree: BTreeMap<Arc<[u8]>, Location> = entries.into_iter().collect();
    let order: Vec<[u8; 16]> =
        (0..LOOKUPS).map(|i| key(i.wrapping_mul(2_654_435_761) % KEYS)).collect();
    for round in 0..3 {
        let start = Instant::now();
        let mut hits = 0u64;
        for k in &order {
            hits += u64::from(black_box(index.get(k)).is_some());
        }
        let hash_ns = start.elapsed().as_nanos() as f64 / LOOKUPS as f64;
        let start = Instant::now();
        for k in &order {
            hits += u64::from(black_box(btree.get(&k[..])).is_some());
        }
        let btree_ns = start.elapsed().as_nanos() as f64 / LOOKUPS as f64;
        assert_eq!(hits, 2 * LOOKUPS);
        println!(
            "round {round}: index.get {hash_ns:.0} ns/lookup, BTreeMap::get {btree_ns:.0} ns/lookup, \
             index ~{} bytes/key",
            index.approx_bytes() / KEYS as usize
        );
    }
}
