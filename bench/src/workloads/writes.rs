//! Write workloads: W1 one durable put per call (1 or N threads), W2 durable batches of 1000,
//! W3 a bulk load of random keys, W10 the persistence tax (W1 and W2 on a pool mapped with
//! eADR semantics — flushes skipped, fences kept — against the same with flushes).
//!
//! Writer thread `t` puts keys `key(t << 40 | i)`, so threads never write the same key.

use std::time::Duration;

use crate::case;
use crate::keys::{Key, ValuePool, key};
use crate::kv::mcstore::McStore;
use crate::kv::{Kv, KvResult};
use crate::measure::{OpStats, op_loop};
use crate::results::{Figure, Unit};
use crate::workloads::{
    BATCH, Ctx, VALUE_BYTES, load, ops_figure, parallel_loops, progress, records_figure,
};

fn w1_loop(ctx: &Ctx, kv: &dyn Kv, threads: usize, max_ops: u64) -> KvResult<OpStats> {
    let values = &ctx.values;
    parallel_loops(threads, ctx.budget, max_ops, |t| {
        move |i| {
            let item = (t as u64) << 40 | i;
            kv.put(&key(item), values.value(item, VALUE_BYTES))
        }
    })
}

/// W1 on one thread with items from `base` (W10 rounds write fresh keys).
fn w1_loop_from(
    budget: Duration,
    values: &ValuePool,
    kv: &dyn Kv,
    base: u64,
    max_ops: u64,
) -> KvResult<OpStats> {
    op_loop(budget, max_ops, |i| kv.put(&key(base | i), values.value(base | i, VALUE_BYTES)))
}

fn w2_loop(ctx: &Ctx, kv: &dyn Kv, max_batches: u64) -> KvResult<OpStats> {
    w2_loop_from(ctx.budget, &ctx.values, kv, 0, max_batches)
}

/// W2 with items from `base | (1 << 31)` (apart from W1's items of the same round).
fn w2_loop_from(
    budget: Duration,
    values: &ValuePool,
    kv: &dyn Kv,
    base: u64,
    max_batches: u64,
) -> KvResult<OpStats> {
    let mut pairs: Vec<(Key, &[u8])> = Vec::with_capacity(BATCH);
    op_loop(budget, max_batches, |b| {
        pairs.clear();
        let first = base | (1 << 31) | (b * BATCH as u64);
        pairs.extend((first..first + BATCH as u64).map(|i| (key(i), values.value(i, VALUE_BYTES))));
        kv.put_batch(&pairs)
    })
}

/// W1: one durable put of a 100-byte value per call, for each thread count.
pub fn w1(ctx: &Ctx) -> Vec<Figure> {
    let max_ops = ctx.scaled(2_000_000, 10_000);
    let mut figures = Vec::new();
    for &engine in &ctx.engines {
        for &threads in &ctx.w1_threads {
            let name = case::w1_threads(threads);
            let cases = [(name.clone(), Unit::OpsPerSec)];
            let data = max_ops * threads as u64 * 120;
            figures.extend(ctx.with_engine("W1", "w1", engine, data, &cases, |kv| {
                vec![ops_figure("W1", &name, engine.name(), w1_loop(ctx, kv, threads, max_ops))]
            }));
        }
    }
    figures
}

/// W2: durable batches of 1000 puts (figure: puts per second; latency per batch).
pub fn w2(ctx: &Ctx) -> Vec<Figure> {
    let max_batches = ctx.scaled(2_000, 20);
    let data = max_batches * BATCH as u64 * 120;
    let cases = [(case::W2_BATCH.to_string(), Unit::RecordsPerSec)];
    let mut figures = Vec::new();
    for &engine in &ctx.engines {
        figures.extend(ctx.with_engine("W2", "w2", engine, data, &cases, |kv| {
            let r = w2_loop(ctx, kv, max_batches);
            vec![records_figure("W2", case::W2_BATCH, engine.name(), BATCH as u64, r)]
        }));
    }
    figures
}

/// W3: bulk load of `load_records` random keys in durable batches of 1000 (one timed pass).
pub fn w3(ctx: &Ctx) -> Vec<Figure> {
    let n = ctx.load_records;
    let cases = [(case::W3_LOAD.to_string(), Unit::RecordsPerSec)];
    let mut figures = Vec::new();
    for &engine in &ctx.engines {
        figures.extend(ctx.with_engine("W3", "w3", engine, n * 120, &cases, |kv| {
            let figure = match load(kv, &ctx.values, 0, n, VALUE_BYTES) {
                Ok(t) => Figure::new(
                    "W3",
                    case::W3_LOAD,
                    engine.name(),
                    n as f64 / t.as_secs_f64(),
                    Unit::RecordsPerSec,
                ),
                Err(e) => {
                    Figure::unavailable("W3", case::W3_LOAD, engine.name(), Unit::RecordsPerSec, &e)
                }
            };
            vec![figure]
        }));
    }
    figures
}

/// Interleaved rounds of W10 (flushes on, off, on, off, …): the machine's noise hits both sides.
const W10_ROUNDS: u64 = 3;

/// The round whose throughput is the median.
fn median_round(mut rounds: Vec<OpStats>) -> Option<OpStats> {
    rounds.sort_by(|a, b| a.ops_per_sec().total_cmp(&b.ops_per_sec()));
    rounds.get(rounds.len() / 2).copied()
}

/// W10: mcstore's W1 and W2 on a pool with flushes (ForcedPmem) and on one mapped with eADR
/// semantics (flushes skipped, fences kept), in interleaved rounds; each figure is the median
/// round, and the tax is on / off (1.0 = persistence is free).
pub fn w10(ctx: &Ctx) -> Vec<Figure> {
    let max_ops = ctx.scaled(2_000_000, 10_000) / W10_ROUNDS;
    let max_batches = (ctx.scaled(2_000, 20) / W10_ROUNDS).max(1);
    let data = W10_ROUNDS * (max_ops + max_batches * BATCH as u64) * 120;
    let budget = ctx.budget / W10_ROUNDS as u32;
    let cases = [
        [(case::W10_W1_ON, Unit::OpsPerSec), (case::W10_W2_ON, Unit::RecordsPerSec)],
        [(case::W10_W1_OFF, Unit::OpsPerSec), (case::W10_W2_OFF, Unit::RecordsPerSec)],
    ];
    let dirs = [ctx.dir.join("w10-flushes-on"), ctx.dir.join("w10-flushes-off")];
    let mut stores = Vec::new();
    for (dir, eadr) in dirs.iter().zip([false, true]) {
        let _ = std::fs::remove_dir_all(dir);
        let opened = std::fs::create_dir_all(dir)
            .map_err(|e| e.to_string())
            .and_then(|()| McStore::with_eadr(dir, data, eadr));
        stores.push(opened);
    }
    let mut rounds: [[Vec<OpStats>; 2]; 2] = Default::default();
    let mut failures: [[Option<String>; 2]; 2] = Default::default();
    progress("W10", "mcstore", "interleaved rounds, flushes on and off");
    for round in 0..W10_ROUNDS {
        for (side, store) in stores.iter().enumerate() {
            let Ok(store) = store else { continue };
            let base = round << 32;
            match w1_loop_from(budget, &ctx.values, store, base, max_ops) {
                Ok(stats) => rounds[side][0].push(stats),
                Err(e) => failures[side][0] = Some(e),
            }
            match w2_loop_from(budget, &ctx.values, store, base, max_batches) {
                Ok(stats) => rounds[side][1].push(stats),
                Err(e) => failures[side][1] = Some(e),
            }
        }
    }
    stores_or_errors(&mut stores, &mut failures);
    for dir in &dirs {
        let _ = std::fs::remove_dir_all(dir);
    }
    let mut figures = Vec::new();
    let mut rates = [[None; 2]; 2];
    for side in 0..2 {
        for row in 0..2 {
            let (name, unit) = cases[side][row];
            let per_op = if row == 0 { 1 } else { BATCH as u64 };
            let figure = match (
                &failures[side][row],
                median_round(std::mem::take(&mut rounds[side][row])),
            ) {
                (None, Some(stats)) => records_or_ops(name, per_op, stats),
                (Some(e), _) => Figure::unavailable("W10", name, "mcstore", unit, e),
                (None, None) => Figure::unavailable("W10", name, "mcstore", unit, "no round ran"),
            };
            rates[row][side] = figure.value;
            figures.push(figure);
        }
    }
    for (row, tax_case) in [case::W10_TAX_W1, case::W10_TAX_W2].into_iter().enumerate() {
        figures.push(match rates[row] {
            [Some(on), Some(off)] if off > 0.0 => {
                Figure::new("W10", tax_case, "mcstore", on / off, Unit::Ratio)
            }
            _ => Figure::unavailable(
                "W10",
                tax_case,
                "mcstore",
                Unit::Ratio,
                "a flushes on/off figure is missing",
            ),
        });
    }
    figures
}

/// Drop the stores, turning an open failure into the failure of both of its figures.
fn stores_or_errors(stores: &mut Vec<KvResult<McStore>>, failures: &mut [[Option<String>; 2]; 2]) {
    for (side, store) in stores.drain(..).enumerate() {
        if let Err(e) = store {
            let why = format!("no eADR-style switch: {e}");
            failures[side] = [Some(why.clone()), Some(why)];
        }
    }
}

fn records_or_ops(name: &str, per_op: u64, stats: OpStats) -> Figure {
    if per_op == 1 {
        ops_figure("W10", name, "mcstore", Ok(stats))
    } else {
        records_figure("W10", name, "mcstore", per_op, Ok(stats))
    }
}
