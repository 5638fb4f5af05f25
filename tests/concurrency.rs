//! Concurrency: linearizability under contention (puts, removes, CAS, updates, batches and
//! transactions on a small key space, with concurrent readers, iterators and compaction),
//! checked against per-key version numbers carried in the values; crashes with several writers
//! in flight; iterators that see every stable key exactly once while writers run.
//!
//! INVARIANT: every check here holds for any thread interleaving (no timing assumptions).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use mcstore::pmem::{CrashMode, Medium, MemberId, SimMedium};
use mcstore::{Batch, Db, Durability};
use mcstore_testkit::pools::{sim_db, small_options};

/// A value that names its key and version, padded with bytes derived from both, so a torn,
/// foreign or invented value never decodes.
fn encode(key: &[u8], version: u64) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(&version.to_le_bytes());
    let pad = 16 + (version % 61) as usize;
    out.extend((0..pad).map(|i| (i as u64 ^ version ^ key.len() as u64) as u8));
    out
}

/// The version in `value` of `key`; panics on a torn or foreign value.
fn decode(key: &[u8], value: &[u8]) -> u64 {
    let n = u32::from_le_bytes(value[..4].try_into().expect("length")) as usize;
    assert_eq!(&value[4..4 + n], key, "a value of another key");
    let version = u64::from_le_bytes(value[4 + n..12 + n].try_into().expect("version"));
    assert_eq!(value, encode(key, version).as_slice(), "a torn value of {key:?}");
    version
}

const COUNTERS: usize = 4;
const WRITERS: usize = 3;

fn counter_key(i: usize) -> Vec<u8> {
    format!("counter{i}").into_bytes()
}

/// Per-key history bounds: the highest version whose write completed (a later read must see
/// at least it) and the highest version any write started (no read may see beyond it).
#[derive(Default)]
struct Bounds {
    completed: AtomicU64,
    started: AtomicU64,
}

/// The owned key of writer `t`: written only by it, with put and remove, versions increasing.
#[derive(Default)]
struct Owned {
    /// (version, present) of the last completed write.
    completed: Mutex<(u64, bool)>,
    started: AtomicU64,
    started_remove: AtomicU64,
}

fn owned_key(t: usize) -> Vec<u8> {
    format!("own{t}").into_bytes()
}

fn pair_keys(t: usize) -> (Vec<u8>, Vec<u8>) {
    (format!("pair{t}a").into_bytes(), format!("pair{t}b").into_bytes())
}

/// Several writers and readers with compaction running: every read lies within its key's
/// history (never older than a completed write, never newer than a started one), RMW counters
/// lose no increment, batch pairs are seen whole, iterators are ordered without duplicates.
#[test]
fn linearizable_under_contention() {
    let (sim, db) = sim_db(4 << 20, small_options()).expect("a pool");
    let counters: Arc<Vec<Bounds>> = Arc::new((0..COUNTERS).map(|_| Bounds::default()).collect());
    let increments: Arc<Vec<AtomicU64>> =
        Arc::new((0..COUNTERS).map(|_| AtomicU64::new(0)).collect());
    let owned: Arc<Vec<Owned>> = Arc::new((0..WRITERS).map(|_| Owned::default()).collect());
    let stop = Arc::new(AtomicBool::new(false));
    for i in 0..COUNTERS {
        db.put(counter_key(i), encode(&counter_key(i), 0)).expect("seed");
    }
    std::thread::scope(|scope| {
        let mut writers = Vec::new();
        for t in 0..WRITERS {
            let (db, counters, increments, owned) =
                (db.clone(), counters.clone(), increments.clone(), owned.clone());
            writers.push(scope.spawn(move || {
                writer(t, &db, &counters, &increments, &owned);
            }));
        }
        for r in 0..2 {
            let (db, counters, owned, stop) =
                (db.clone(), counters.clone(), owned.clone(), stop.clone());
            scope.spawn(move || reader(r, &db, &counters, &owned, &stop));
        }
        let (compactor_db, compactor_stop) = (db.clone(), stop.clone());
        scope.spawn(move || {
            while !compactor_stop.load(Ordering::Relaxed) {
                compactor_db.compact().expect("compaction never fails here");
                std::thread::yield_now();
            }
        });
        for w in writers {
            w.join().expect("a writer panicked");
        }
        stop.store(true, Ordering::Relaxed);
    });
    // However the concurrent compactor was scheduled, one more pass finds dead segments.
    db.compact().expect("compact");
    for i in 0..COUNTERS {
        let value = db.get(counter_key(i)).expect("read").expect("present");
        let version = decode(&counter_key(i), &value);
        assert_eq!(version, increments[i].load(Ordering::SeqCst), "lost increments on {i}");
    }
    let stats = db.stats();
    assert!(stats.segments_reclaimed > 0, "compaction ran: {stats:?}");
    assert!(!stats.failed);
    drop(db);
    let db = mcstore_testkit::pools::reopen(&sim, small_options()).expect("reopen");
    for i in 0..COUNTERS {
        let value = db.get(counter_key(i)).expect("read").expect("present");
        assert_eq!(decode(&counter_key(i), &value), increments[i].load(Ordering::SeqCst));
    }
}

fn bump(bounds: &Bounds, version: u64) {
    bounds.started.fetch_max(version, Ordering::SeqCst);
}

fn writer(t: usize, db: &Db, counters: &[Bounds], increments: &[AtomicU64], owned: &[Owned]) {
    let mut rng = 0x9e37_79b9_7f4a_7c15u64 ^ (t as u64 + 1);
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut own_version = 0u64;
    let mut pair_version = 0u64;
    for step in 0..1500u64 {
        let c = (next() % COUNTERS as u64) as usize;
        let key = counter_key(c);
        match next() % 6 {
            // Update: read-modify-write under the commit lock.
            0 => {
                let new = db
                    .update(&key, |v| {
                        let v = decode(&key, v.expect("counters are never removed"));
                        bump(&counters[c], v + 1);
                        Some(encode(&key, v + 1))
                    })
                    .expect("update");
                let v = decode(&key, &new.expect("a new value"));
                increments[c].fetch_add(1, Ordering::SeqCst);
                counters[c].completed.fetch_max(v, Ordering::SeqCst);
            }
            // Compare-and-swap, retried until it wins.
            1 => loop {
                let current = db.get(&key).expect("get").expect("present");
                let v = decode(&key, &current);
                bump(&counters[c], v + 1);
                match db.compare_and_swap(&key, Some(&current), Some(encode(&key, v + 1))) {
                    Ok(Ok(())) => {
                        increments[c].fetch_add(1, Ordering::SeqCst);
                        counters[c].completed.fetch_max(v + 1, Ordering::SeqCst);
                        break;
                    }
                    Ok(Err(_)) => continue,
                    Err(e) => panic!("cas: {e}"),
                }
            },
            // Transaction: two counters incremented atomically.
            2 => {
                let d = (c + 1) % COUNTERS;
                let other = counter_key(d);
                let (vc, vd) = db
                    .transaction(|tx| {
                        let vc = decode(&key, &tx.get(&key)?.expect("present"));
                        let vd = decode(&other, &tx.get(&other)?.expect("present"));
                        bump(&counters[c], vc + 1);
                        bump(&counters[d], vd + 1);
                        tx.put(&key, encode(&key, vc + 1));
                        tx.put(&other, encode(&other, vd + 1));
                        Ok((vc + 1, vd + 1))
                    })
                    .expect("transaction");
                increments[c].fetch_add(1, Ordering::SeqCst);
                increments[d].fetch_add(1, Ordering::SeqCst);
                counters[c].completed.fetch_max(vc, Ordering::SeqCst);
                counters[d].completed.fetch_max(vd, Ordering::SeqCst);
            }
            // Put or remove of the owned key (some with relaxed durability).
            3 | 4 => {
                let own = &owned[t];
                let okey = owned_key(t);
                own_version += 1;
                let durability = [Durability::Immediate, Durability::Eventual, Durability::None]
                    [(step % 3) as usize];
                if next() % 3 == 0 {
                    own.started_remove.fetch_max(own_version, Ordering::SeqCst);
                    db.with_durability(durability).remove(&okey).expect("remove");
                    *own.completed.lock().expect("lock") = (own_version, false);
                } else {
                    own.started.fetch_max(own_version, Ordering::SeqCst);
                    db.put_with(&okey, encode(&okey, own_version), durability).expect("put");
                    *own.completed.lock().expect("lock") = (own_version, true);
                }
            }
            // A batch writing (or removing) both keys of the writer's pair.
            _ => {
                pair_version += 1;
                let (a, b) = pair_keys(t);
                let batch = if next() % 4 == 0 {
                    Batch::default().remove(&a).remove(&b)
                } else {
                    Batch::default()
                        .put(&a, encode(&a, pair_version))
                        .put(&b, encode(&b, pair_version))
                };
                db.apply_batch(batch).expect("batch");
            }
        }
    }
}

fn reader(r: usize, db: &Db, counters: &[Bounds], owned: &[Owned], stop: &AtomicBool) {
    let mut last_seen = [0u64; COUNTERS];
    let mut round = 0u64;
    while !stop.load(Ordering::Relaxed) {
        round += 1;
        for (c, bounds) in counters.iter().enumerate() {
            let key = counter_key(c);
            let floor = bounds.completed.load(Ordering::SeqCst);
            let value = db.get(&key).expect("get").expect("counters are never removed");
            let v = decode(&key, &value);
            let ceiling = bounds.started.load(Ordering::SeqCst);
            assert!(v >= floor, "reader {r}: {key:?} at {v}, a write of {floor} had completed");
            assert!(v <= ceiling, "reader {r}: {key:?} at {v}, no write of it had started");
            assert!(
                v >= last_seen[c],
                "reader {r}: {key:?} went back from {} to {v}",
                last_seen[c]
            );
            last_seen[c] = v;
        }
        for (t, own) in owned.iter().enumerate() {
            let key = owned_key(t);
            let (floor, present) = *own.completed.lock().expect("lock");
            let got = db.get(&key).expect("get");
            match got {
                Some(value) => {
                    let v = decode(&key, &value);
                    assert!(v <= own.started.load(Ordering::SeqCst), "{key:?}: invented {v}");
                    assert!(v > floor || (v == floor && present), "{key:?}: stale {v} < {floor}");
                }
                None => assert!(
                    !present || own.started_remove.load(Ordering::SeqCst) > floor,
                    "{key:?}: absent although {floor} was put and no remove started"
                ),
            }
            // The pair is written only by batches: seen together, one version, or not at all.
            let (a, b) = pair_keys(t);
            let (va, vb) = db
                .transaction(|tx| {
                    let va = tx.get(&a)?.map(|v| decode(&a, &v));
                    let vb = tx.get(&b)?.map(|v| decode(&b, &v));
                    Ok((va, vb))
                })
                .expect("read-only transaction");
            assert_eq!(va, vb, "a batch was seen half applied");
        }
        if round.is_multiple_of(8) {
            let mut previous: Option<Vec<u8>> = None;
            for item in db.iter() {
                let (key, value) = item.expect("iterate");
                decode(&key, &value);
                if let Some(p) = &previous {
                    assert!(p.as_slice() < key.as_ref(), "iterator out of order or repeated");
                }
                previous = Some(key.to_vec());
            }
        }
    }
}

/// Crash at fences spread over a run of several concurrent writers (each writes its own key
/// with increasing versions, `Immediate`): in every crash image of both modes the pool opens
/// without damage and each writer's key holds its last acknowledged version or the one in
/// flight; a relaxed-durability writer's key never holds a version it did not write.
#[test]
fn crash_with_several_writers_in_flight() {
    for crash_at in [4u64, 9, 15, 22, 31, 45] {
        let (sim, db) = sim_db(1 << 20, small_options()).expect("a pool");
        db.put("seed", "s").expect("seed");
        let acked: Arc<Vec<AtomicU64>> = Arc::new((0..4).map(|_| AtomicU64::new(0)).collect());
        sim.crash_at_fence(Some(sim.fences_seen() + crash_at));
        std::thread::scope(|scope| {
            for t in 0..4usize {
                let (db, acked) = (db.clone(), acked.clone());
                scope.spawn(move || {
                    let key = format!("w{t}").into_bytes();
                    let durability = if t == 3 { Durability::None } else { Durability::Immediate };
                    for v in 1..=200u64 {
                        if db.put_with(&key, encode(&key, v), durability).is_err() {
                            return;
                        }
                        acked[t].store(v, Ordering::SeqCst);
                    }
                });
            }
        });
        assert!(sim.is_crashed(), "crash point {crash_at} not reached");
        drop(db);
        for mode in [CrashMode::PerLinePrefix, CrashMode::AnySubset] {
            for image in sim.crash_images(mode, 8, crash_at) {
                let medium: Arc<dyn Medium> = Arc::new(SimMedium::from_image(image, MemberId(0)));
                let db = Db::open_on(medium, small_options()).expect("open a crash image");
                assert!(!db.stats().failed, "crash at {crash_at} {mode:?}: damage");
                assert!(db.get("seed").expect("get").is_some());
                for t in 0..4usize {
                    let key = format!("w{t}").into_bytes();
                    let got = db.get(&key).expect("get").map(|v| decode(&key, &v)).unwrap_or(0);
                    let a = acked[t].load(Ordering::SeqCst);
                    assert!(got <= a + 1, "w{t}: version {got} was never written (acked {a})");
                    if t < 3 {
                        assert!(got >= a, "w{t}: acknowledged {a} lost, found {got}");
                    }
                }
            }
        }
    }
}

/// While writers insert and remove other keys, an iterator (forward and backward) returns
/// every key that stays live exactly once, in order.
#[test]
fn iterators_see_every_stable_key_once_while_writers_run() {
    let (_sim, db) = sim_db(4 << 20, small_options()).expect("a pool");
    let stable: Vec<Vec<u8>> = (0..300u32).map(|i| format!("k{:05}", i * 2).into_bytes()).collect();
    for key in &stable {
        db.put(key, encode(key, 1)).expect("put");
    }
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let churn = db.clone();
        let stop = &stop;
        scope.spawn(move || {
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("k{:05}", (i % 300) * 2 + 1).into_bytes();
                churn.put(&key, encode(&key, u64::from(i))).expect("put");
                if i.is_multiple_of(3) {
                    churn.remove(&key).expect("remove");
                }
                i += 1;
            }
        });
        for reverse in [false, true, false, true] {
            let items: Vec<Vec<u8>> = if reverse {
                db.iter().rev().map(|item| item.expect("item").0.to_vec()).collect()
            } else {
                db.iter().map(|item| item.expect("item").0.to_vec()).collect()
            };
            let mut sorted = items.clone();
            if reverse {
                sorted.reverse();
            }
            assert!(sorted.windows(2).all(|w| w[0] < w[1]), "not strictly ordered");
            let seen: BTreeMap<&Vec<u8>, ()> = items.iter().map(|k| (k, ())).collect();
            for key in &stable {
                assert!(seen.contains_key(key), "stable key {key:?} missing");
            }
        }
        stop.store(true, Ordering::Relaxed);
    });
}
