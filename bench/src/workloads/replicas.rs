//! The replica workload of issue \[4\] (mcstore only): random gets and durable puts on a pool with
//! one replica against the same without, and a poisoned 4 KiB page repaired end to end (emulated
//! poison on the mapped primary in `ForcedPmem`: inject, get → retry → repair from the replica →
//! value), timed per repair.
//!
//! INVARIANT: the plain and the replicated store are measured in alternating rounds in the same
//! run (the figure is the median round), so load on the machine moves both alike; a repair that
//! did not go through the replica (no retry counted, wrong value) makes the figure unavailable.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use mcstore::pmem::{
    Domain, ErrorRegister, MapOptions, MappedMedium, Medium, MemberId, ModeRequest,
};
use mcstore::{Batch, Db};

use crate::keys::{KEY_BYTES, Rng, key};
use crate::kv::mcstore::options;
use crate::measure::{OpStats, op_loop, percentile};
use crate::results::{Figure, Unit};
use crate::workloads::{BATCH, Ctx, VALUE_BYTES, progress};

/// Workload name in tables.
pub const WORKLOAD: &str = "replicas";
/// Random get, no replica.
pub const GET_PLAIN: &str = "get, no replica";
/// Random get, one replica.
pub const GET_REPLICA: &str = "get, 1 replica";
/// Durable (Immediate) put of a fresh key, no replica.
pub const PUT_PLAIN: &str = "durable put, no replica";
/// Durable (Immediate) put of a fresh key, one replica.
pub const PUT_REPLICA: &str = "durable put, 1 replica";
/// A poisoned 4 KiB page of the primary repaired end to end by a get (figure: median ns).
pub const REPAIR: &str = "poisoned 4 KiB page repaired by a get";

/// Rounds each loop runs, alternating plain and replicated.
const ROUNDS: usize = 5;
/// Keys of the repair store.
const REPAIR_KEYS: u64 = 20_000;
/// Fewest repairs a repair figure is taken over.
const REPAIRS_MIN: usize = 50;

type Result<T> = std::result::Result<T, String>;

/// Every figure of the workload.
pub fn replicas(ctx: &Ctx) -> Vec<Figure> {
    let mut figures = match throughput(ctx) {
        Ok(figures) => figures,
        Err(e) => [GET_PLAIN, GET_REPLICA, PUT_PLAIN, PUT_REPLICA]
            .iter()
            .map(|c| Figure::unavailable(WORKLOAD, c, "mcstore", Unit::OpsPerSec, &e))
            .collect(),
    };
    figures.push(match repairs(ctx) {
        Ok(figure) => figure,
        Err(e) => Figure::unavailable(WORKLOAD, REPAIR, "mcstore", Unit::NsPerOp, &e),
    });
    figures
}

/// Gets and durable puts, plain against one replica, in alternating rounds.
fn throughput(ctx: &Ctx) -> Result<Vec<Figure>> {
    let n = ctx.get_keys.max(1000);
    let put_ops = ctx.scaled(300_000, 10_000);
    let data = (n + put_ops * ROUNDS as u64) * (VALUE_BYTES + KEY_BYTES + 64) as u64;
    let dir = ctx.dir.join("replicas");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let result = (|| {
        let plain = Db::create(dir.join("plain.pool"), options(data)).map_err(|e| e.to_string())?;
        let replicated =
            Db::create(dir.join("set.pool"), options(data).replicas([dir.join("set.replica1")]))
                .map_err(|e| e.to_string())?;
        let stores = [("plain", &plain), ("1 replica", &replicated)];
        for (name, db) in stores {
            load(ctx, db, n)?;
            progress(WORKLOAD, "mcstore", &format!("{name}: {n} keys loaded"));
        }
        let mut gets: [Vec<OpStats>; 2] = Default::default();
        let mut puts: [Vec<OpStats>; 2] = Default::default();
        for round in 0..ROUNDS {
            for (i, (_, db)) in stores.iter().enumerate() {
                gets[i].push(get_loop(ctx, db, n, round as u64)?);
            }
            for (i, (_, db)) in stores.iter().enumerate() {
                let base = (1 << 40) | ((round as u64) << 32);
                puts[i].push(put_loop(ctx, db, base, put_ops)?);
            }
        }
        let replicas_ok = replicated.stats().replicas_not_in_sync == 0;
        if !replicas_ok {
            return Err("the replica fell out of sync during the run".to_string());
        }
        Ok(vec![
            median_figure(GET_PLAIN, &gets[0]),
            median_figure(GET_REPLICA, &gets[1]),
            median_figure(PUT_PLAIN, &puts[0]),
            median_figure(PUT_REPLICA, &puts[1]),
        ])
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// The round with the median throughput, noted as such.
fn median_figure(case: &str, rounds: &[OpStats]) -> Figure {
    let mut sorted = rounds.to_vec();
    sorted.sort_by(|a, b| a.ops_per_sec().total_cmp(&b.ops_per_sec()));
    let all: Vec<String> = rounds.iter().map(|r| format!("{:.0}", r.ops_per_sec())).collect();
    Figure::from_ops(WORKLOAD, case, "mcstore", &sorted[sorted.len() / 2]).with_note(format!(
        "median of {} alternating rounds (ops/s: {})",
        rounds.len(),
        all.join(", ")
    ))
}

/// Keys `0..n` with `VALUE_BYTES` values, in durable batches.
fn load(ctx: &Ctx, db: &Db, n: u64) -> Result<()> {
    let mut i = 0;
    while i < n {
        let mut batch = Batch::default();
        let end = (i + BATCH as u64).min(n);
        for j in i..end {
            batch.push_put(key(j), ctx.values.value(j, VALUE_BYTES));
        }
        db.apply_batch(batch).map_err(|e| e.to_string())?;
        i = end;
    }
    Ok(())
}

fn get_loop(ctx: &Ctx, db: &Db, n: u64, seed: u64) -> Result<OpStats> {
    let mut rng = Rng::new(seed + 11);
    let mut out = Vec::with_capacity(VALUE_BYTES);
    op_loop(ctx.budget / ROUNDS as u32, 4 * n, |_| {
        if db.get_into(key(rng.below(n)), &mut out).map_err(|e| e.to_string())? {
            Ok(())
        } else {
            Err("a loaded key was not found".to_string())
        }
    })
}

fn put_loop(ctx: &Ctx, db: &Db, base: u64, max_ops: u64) -> Result<OpStats> {
    op_loop(ctx.budget / ROUNDS as u32, max_ops, |i| {
        db.put(key(base | i), ctx.values.value(base | i, VALUE_BYTES)).map_err(|e| e.to_string())
    })
}

/// Mapped members in `dir` (ForcedPmem), `len` bytes each.
fn members(dir: &Path, len: u64) -> Result<Vec<Arc<MappedMedium>>> {
    (0..2u8)
        .map(|i| {
            let map = MapOptions::new()
                .mode(ModeRequest::ForcedPmem)
                .allow_forced_pmem_on_any_fs(true)
                .member(MemberId(i));
            MappedMedium::create(&dir.join(format!("member{i}")), len, &map)
                .map(Arc::new)
                .map_err(|e| e.to_string())
        })
        .collect()
}

/// The pool offset of every key `0..REPAIR_KEYS` in the primary's bytes.
fn key_offsets(primary: &MappedMedium) -> Result<HashMap<u64, u64>> {
    let mut image = vec![0u8; primary.len() as usize];
    let mut register = ErrorRegister::deferred();
    primary.read(0, &mut image, &mut register, Domain::Engine).map_err(|e| e.to_string())?;
    let wanted: HashMap<Vec<u8>, u64> =
        (0..REPAIR_KEYS).map(|i| (key(i)[..8].to_vec(), i)).collect();
    let mut found = HashMap::new();
    for at in 0..image.len().saturating_sub(KEY_BYTES) {
        if let Some(&i) = wanted.get(&image[at..at + 8])
            && image[at..at + KEY_BYTES] == key(i)
        {
            found.insert(i, at as u64);
        }
    }
    Ok(found)
}

/// Poison one page of the primary under a key (a page not poisoned before), time the get that
/// retries from the replica and repairs the page, check the value; over ≥ `REPAIRS_MIN` pages.
fn repairs(ctx: &Ctx) -> Result<Figure> {
    let dir = ctx.dir.join("replicas-repair");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let result = (|| {
        let len = 64 << 20;
        let members = members(&dir, len)?;
        let media: Vec<Arc<dyn Medium>> =
            members.iter().map(|m| m.clone() as Arc<dyn Medium>).collect();
        let db = Db::create_on_replicas(media, options(len).background(false))
            .map_err(|e| e.to_string())?;
        load(ctx, &db, REPAIR_KEYS)?;
        let offsets = key_offsets(&members[0])?;
        let mut pages = std::collections::BTreeMap::new();
        for (&i, &offset) in &offsets {
            pages.entry(offset / 4096).or_insert(i);
        }
        let wanted = ctx.scaled(200, REPAIRS_MIN as u64) as usize;
        let chosen: Vec<(u64, u64)> = pages.into_iter().take(wanted.max(REPAIRS_MIN)).collect();
        if chosen.len() < REPAIRS_MIN {
            return Err(format!("only {} pages hold a key", chosen.len()));
        }
        let mut out = Vec::new();
        let mut micros = Vec::with_capacity(chosen.len());
        for &(page, i) in &chosen {
            let retries = db.stats().replica_retries;
            members[0].inject_poison(page * 4096, 4096).map_err(|e| e.to_string())?;
            let start = Instant::now();
            let found = db.get_into(key(i), &mut out).map_err(|e| e.to_string())?;
            let elapsed = start.elapsed();
            if !found || out != ctx.values.value(i, VALUE_BYTES) {
                return Err(format!("key {i}: the repaired get returned the wrong value"));
            }
            if db.stats().replica_retries != retries + 1 || !members[0].poisoned_ranges().is_empty()
            {
                return Err(format!("key {i}: the get did not retry and repair"));
            }
            micros.push(elapsed.as_nanos() as u64);
        }
        micros.sort_unstable();
        let (p50, p99) = (percentile(&micros, 0.5), percentile(&micros, 0.99));
        Ok(Figure {
            p50_ns: Some(p50),
            p99_ns: Some(p99),
            ..Figure::new(WORKLOAD, REPAIR, "mcstore", p50, Unit::NsPerOp)
        }
        .with_note(format!(
            "median {:.1} µs, p99 {:.1} µs over {} repairs (emulated poison, ForcedPmem)",
            p50 / 1000.0,
            p99 / 1000.0,
            micros.len()
        )))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::targets::{Verdict, judge};

    fn stats(ops: u64) -> OpStats {
        OpStats { ops, seconds: 1.0, p50_ns: ops as f64, p99_ns: 2.0 * ops as f64 }
    }

    #[test]
    fn the_figure_is_the_median_round_and_the_targets_read_it() {
        let f = median_figure(GET_REPLICA, &[stats(300), stats(100), stats(200)]);
        assert_eq!((f.value, f.p50_ns), (Some(200.0), Some(200.0)));
        assert!(f.note.as_deref().unwrap_or("").contains("300, 100, 200"));
        let mut results = crate::results::Results::default();
        results.extend([
            median_figure(GET_PLAIN, &[stats(210)]),
            f,
            median_figure(PUT_PLAIN, &[stats(100)]),
            median_figure(PUT_REPLICA, &[stats(59)]),
        ]);
        let judged = judge(&results);
        let verdict = |label: &str| {
            judged.iter().find(|j| j.label.starts_with(label)).map(|j| j.verdict.clone())
        };
        assert_eq!(verdict("get with 1 replica"), Some(Verdict::Ok));
        assert_eq!(verdict("durable put with 1 replica"), Some(Verdict::Missed));
    }
}
