//! W7: large values (4 KiB, 64 KiB, 1 MiB): durable puts of fresh keys, then random gets of
//! them, as GB/s of value bytes — compared (in the targets) with a DRAM-to-DRAM memcpy between
//! buffers larger than the last-level cache, measured in the same run (`machine`).

use crate::case;
use crate::keys::{Rng, key};
use crate::measure::op_loop;
use crate::results::{Figure, Unit};
use crate::workloads::{Ctx, progress};

/// Bytes written per value size at scale 1.
const BYTES_PER_SIZE: u64 = 1 << 30;

fn gbps(stats: &crate::measure::OpStats, size: usize) -> Figure {
    Figure::new("W7", "", "", stats.ops as f64 * size as f64 / stats.seconds / 1e9, Unit::GbPerSec)
}

/// W7 for every engine.
pub fn w7(ctx: &Ctx) -> Vec<Figure> {
    let counts: Vec<u64> =
        case::W7_SIZES.iter().map(|&s| ctx.scaled(BYTES_PER_SIZE / s as u64, 16)).collect();
    let data: u64 = case::W7_SIZES.iter().zip(&counts).map(|(&s, &n)| s as u64 * n).sum();
    let cases: Vec<(String, Unit)> = case::W7_SIZES
        .iter()
        .flat_map(|&s| [(case::w7_put(s), Unit::GbPerSec), (case::w7_get(s), Unit::GbPerSec)])
        .collect();
    // The machine's memcpy right before the loops, beside the run's first one (see
    // `case::MEMCPY_AT_W7`).
    progress("W7", "machine", "memcpy");
    let mut figures = vec![crate::machine::memcpy(case::MEMCPY_AT_W7)];
    figures.extend(case::W7_SIZES.iter().map(|&size| crate::machine::memcpy_pieces(size)));
    for &engine in &ctx.engines {
        figures.extend(ctx.with_engine("W7", "w7", engine, data, &cases, |kv| {
            let name = engine.name();
            let mut out = Vec::new();
            for (&size, &n) in case::W7_SIZES.iter().zip(&counts) {
                progress("W7", name, &case::size_label(size));
                let base = (size as u64) << 32;
                let put =
                    op_loop(ctx.budget, n, |i| kv.put(&key(base | i), ctx.values.value(i, size)));
                let written = put.as_ref().map_or(0, |s| s.ops);
                let mut rng = Rng::new(size as u64);
                let mut buf = Vec::with_capacity(size);
                let get = if written == 0 {
                    Err("nothing was written".to_string())
                } else {
                    op_loop(ctx.budget, n, |_| {
                        let item = rng.below(written);
                        if kv.get(&key(base | item), &mut buf)? && buf.len() == size {
                            Ok(())
                        } else {
                            Err(format!("large value {item} missing or short"))
                        }
                    })
                };
                for (case, r) in [(case::w7_put(size), put), (case::w7_get(size), get)] {
                    out.push(match r {
                        Ok(stats) => Figure {
                            workload: "W7",
                            case: case.clone(),
                            engine: name.to_string(),
                            p50_ns: Some(stats.p50_ns),
                            p99_ns: Some(stats.p99_ns),
                            ..gbps(&stats, size)
                        },
                        Err(e) => Figure::unavailable("W7", &case, name, Unit::GbPerSec, &e),
                    });
                }
            }
            out
        }));
    }
    figures
}
