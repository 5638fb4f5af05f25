//! W9: space amplification — bytes the engine occupies on its medium over the bytes of live
//! keys and values, after a bulk load and after removing every other key. For mcstore the
//! occupied bytes are its used segments (`stats()`: segments total − free, × segment size,
//! the open segment counted whole; the pool file itself is preallocated); for the peers, the
//! blocks of their files. mcstore's third figure follows an explicit `Db::compact()`; the
//! format's floor for it is 152 encoded bytes per 116-byte record (32-byte header, 16 + 100
//! payload padded to 120) = 1.31, plus the last segment's slack (`docs/compaction.md`).

use crate::case;
use crate::keys::{KEY_BYTES, key};
use crate::kv::{Engine, Kv};
use crate::results::{Figure, Unit};
use crate::workloads::{Ctx, VALUE_BYTES, load, progress};

/// W9 for every engine.
pub fn w9(ctx: &Ctx) -> Vec<Figure> {
    let n = ctx.scaled(1_000_000, 10_000);
    let live = |keys: u64| (keys * (KEY_BYTES + VALUE_BYTES) as u64) as f64;
    let cases = [
        (case::W9_LOADED.to_string(), Unit::SpaceRatio),
        (case::W9_HALF.to_string(), Unit::SpaceRatio),
    ];
    let mut figures = Vec::new();
    for &engine in &ctx.engines {
        figures.extend(ctx.with_engine("W9", "w9", engine, n * 120, &cases, |kv| {
            let name = engine.name();
            let measure = |case: &str, keys: u64, kv: &dyn Kv| match kv.space_bytes() {
                Ok(bytes) => {
                    Figure::new("W9", case, name, bytes as f64 / live(keys), Unit::SpaceRatio)
                }
                Err(e) => Figure::unavailable("W9", case, name, Unit::SpaceRatio, &e),
            };
            if let Err(e) = load(kv, &ctx.values, 0, n, VALUE_BYTES) {
                return cases
                    .iter()
                    .map(|(c, u)| Figure::unavailable("W9", c, name, *u, &e))
                    .collect();
            }
            let mut out = vec![measure(case::W9_LOADED, n, kv)];
            progress("W9", name, "removing half");
            let removed = (0..n).step_by(2).try_for_each(|i| kv.remove(&key(i)));
            out.push(match removed {
                Ok(()) => measure(case::W9_HALF, n - n.div_ceil(2), kv),
                Err(e) => Figure::unavailable("W9", case::W9_HALF, name, Unit::SpaceRatio, &e),
            });
            if engine == Engine::Mcstore {
                out.push(match kv.compact() {
                    Ok(summary) => {
                        eprintln!("[W9] mcstore compaction: {summary}");
                        measure(case::W9_COMPACTED, n - n.div_ceil(2), kv)
                    }
                    Err(e) => {
                        Figure::unavailable("W9", case::W9_COMPACTED, name, Unit::SpaceRatio, &e)
                    }
                });
            }
            out
        }));
    }
    figures
}
