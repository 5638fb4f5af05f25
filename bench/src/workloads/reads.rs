//! Read workloads on one loaded store per engine: W4 random gets over `get_keys` keys (1 and 2
//! threads) and W5 range scans (10 records from a random key; the whole store, the median of
//! three passes).
//!
//! INVARIANT: every key drawn was loaded, so a get that finds nothing is an engine error and the
//! figure becomes unavailable rather than counting a miss as a fast read.

use std::time::Instant;

use crate::case;
use crate::keys::{KEY_BYTES, Rng, key};
use crate::kv::Kv;
use crate::measure::op_loop;
use crate::results::{Figure, Unit};
use crate::workloads::{
    Ctx, VALUE_BYTES, load, ops_figure, parallel_loops, progress, records_figure,
};

/// W4 and W5 for every engine.
pub fn w4_w5(ctx: &Ctx) -> Vec<Figure> {
    let n = ctx.get_keys;
    let cases = [
        (case::W4_GET_1.to_string(), Unit::OpsPerSec),
        (case::W4_GET_2.to_string(), Unit::OpsPerSec),
        (case::W5_SCAN_10.to_string(), Unit::OpsPerSec),
        (case::W5_FULL.to_string(), Unit::RecordsPerSec),
    ];
    let mut figures = Vec::new();
    for &engine in &ctx.engines {
        figures.extend(ctx.with_engine("W4", "w4", engine, n * 120, &cases, |kv| {
            let name = engine.name();
            if let Err(e) = load(kv, &ctx.values, 0, n, VALUE_BYTES) {
                return cases
                    .iter()
                    .map(|(c, u)| Figure::unavailable("W4", c, name, *u, &e))
                    .collect();
            }
            progress("W4", name, "loaded");
            let mut out = vec![
                ops_figure("W4", case::W4_GET_1, name, gets(ctx, kv, 1, n)),
                ops_figure("W4", case::W4_GET_2, name, gets(ctx, kv, 2, n)),
            ];
            let mut rng = Rng::new(5);
            let scan10 = op_loop(ctx.budget, n, |_| {
                let (items, _) = kv.scan(&key(rng.below(n)), 10)?;
                if items == 0 {
                    Err("scan from a loaded key found nothing".to_string())
                } else {
                    Ok(())
                }
            });
            out.push(ops_figure("W5", case::W5_SCAN_10, name, scan10));
            let from = [0u8; KEY_BYTES];
            // A scan of no items says whether the engine has a one-core scan apart.
            let one_core = kv.scan_one_core(&from, 0).is_some();
            let mut full = full_scan(n, name, case::W5_FULL, || kv.scan(&from, usize::MAX));
            if one_core {
                full = full.with_note(
                    "reads ahead on a second core once the scan is long (Options::scan_read_ahead); \
                     \"full scan, one core\" is the same scan without",
                );
            }
            out.push(full);
            if one_core {
                out.push(full_scan(n, name, case::W5_FULL_ONE_CORE, || {
                    kv.scan_one_core(&from, usize::MAX).unwrap_or_else(|| Err("no one-core scan".into()))
                }));
            }
            out
        }));
    }
    figures
}

fn gets(ctx: &Ctx, kv: &dyn Kv, threads: usize, n: u64) -> Result<crate::measure::OpStats, String> {
    parallel_loops(threads, ctx.budget, 4 * n, |t| {
        let mut out = Vec::with_capacity(VALUE_BYTES);
        move |i| {
            let item = crate::keys::mix64((t as u64) << 48 | i) % n;
            if kv.get(&key(item), &mut out)? && out.len() == VALUE_BYTES {
                Ok(())
            } else {
                Err(format!("key {item} was loaded but the get found no {VALUE_BYTES}-byte value"))
            }
        }
    })
}

/// Passes of the full scan; the figure is the median pass (one pass of 1 M records takes well
/// under a second for most engines, so a single pass is at the mercy of this machine's noise).
const FULL_SCAN_PASSES: usize = 3;

/// The full scan's figure `case`: the median of `FULL_SCAN_PASSES` passes of `scan`.
fn full_scan(
    n: u64,
    name: &str,
    case: &str,
    scan: impl Fn() -> crate::kv::KvResult<(usize, usize)>,
) -> Figure {
    let mut seconds = Vec::with_capacity(FULL_SCAN_PASSES);
    for _ in 0..FULL_SCAN_PASSES {
        let start = Instant::now();
        match scan() {
            Ok((items, bytes))
                if items as u64 == n && bytes as u64 == n * (KEY_BYTES + VALUE_BYTES) as u64 =>
            {
                seconds.push(start.elapsed().as_secs_f64());
            }
            Ok((items, _)) => {
                return Figure::unavailable(
                    "W5",
                    case,
                    name,
                    Unit::RecordsPerSec,
                    &format!("full scan saw {items} of {n} records"),
                );
            }
            Err(e) => {
                return Figure::unavailable("W5", case, name, Unit::RecordsPerSec, &e);
            }
        }
    }
    seconds.sort_by(f64::total_cmp);
    let r = Ok(crate::measure::OpStats {
        ops: 1,
        seconds: seconds[seconds.len() / 2],
        p50_ns: 0.0,
        p99_ns: 0.0,
    });
    let mut f = records_figure("W5", case, name, n, r);
    (f.p50_ns, f.p99_ns) = (None, None);
    f
}
