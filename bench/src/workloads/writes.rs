//! Write workloads: W1 one durable put per call (1 or N threads), W2 durable batches of 1000,
//! W3 a bulk load of random keys, W10 the persistence tax (W1 and W2 on a pool mapped with
//! eADR semantics — flushes skipped, fences kept — against the same with flushes).
//!
//! Writer thread `t` puts keys `key(t << 40 | i)`, so threads never write the same key.

use crate::case;
use crate::keys::{Key, key};
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

fn w2_loop(ctx: &Ctx, kv: &dyn Kv, max_batches: u64) -> KvResult<OpStats> {
    let mut pairs: Vec<(Key, &[u8])> = Vec::with_capacity(BATCH);
    op_loop(ctx.budget, max_batches, |b| {
        pairs.clear();
        let first = b * BATCH as u64;
        pairs.extend(
            (first..first + BATCH as u64).map(|i| (key(i), ctx.values.value(i, VALUE_BYTES))),
        );
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

/// W10: mcstore's W1 and W2 with flushes on and off; the tax is on / off (1.0 = free).
pub fn w10(ctx: &Ctx) -> Vec<Figure> {
    let max_ops = ctx.scaled(2_000_000, 10_000);
    let max_batches = ctx.scaled(2_000, 20);
    let data = (max_ops + max_batches * BATCH as u64) * 120;
    let mut figures = Vec::new();
    let mut rates = [[None; 2]; 2];
    for (slot, eadr) in [false, true].into_iter().enumerate() {
        let (w1_case, w2_case) = if eadr {
            (case::W10_W1_OFF, case::W10_W2_OFF)
        } else {
            (case::W10_W1_ON, case::W10_W2_ON)
        };
        let dir = ctx.dir.join(format!("w10-{eadr}"));
        let _ = std::fs::remove_dir_all(&dir);
        let opened = std::fs::create_dir_all(&dir)
            .map_err(|e| e.to_string())
            .and_then(|()| McStore::with_eadr(&dir, data, eadr));
        match opened {
            Ok(store) => {
                progress("W10", "mcstore", if eadr { "flushes off" } else { "flushes on" });
                let w1 = ops_figure("W10", w1_case, "mcstore", w1_loop(ctx, &store, 1, max_ops));
                let w2 = records_figure(
                    "W10",
                    w2_case,
                    "mcstore",
                    BATCH as u64,
                    w2_loop(ctx, &store, max_batches),
                );
                rates[0][slot] = w1.value;
                rates[1][slot] = w2.value;
                figures.extend([w1, w2]);
            }
            Err(e) => {
                let why = format!("no eADR-style switch: {e}");
                figures.push(Figure::unavailable("W10", w1_case, "mcstore", Unit::OpsPerSec, &why));
                figures.push(Figure::unavailable(
                    "W10",
                    w2_case,
                    "mcstore",
                    Unit::RecordsPerSec,
                    &why,
                ));
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
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
