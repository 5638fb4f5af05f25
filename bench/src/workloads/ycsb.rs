//! W6: YCSB core workloads on 1 KB records (16-byte key, 1000-byte value), one client thread,
//! on one loaded store per engine: A (50 % read, 50 % update), B (95/5), C (read only),
//! F (50 % read, 50 % read-modify-write) under a scrambled zipfian (θ 0.99), then D (95 % read
//! of the latest-skewed item, 5 % insert of a new one). D runs last because it inserts.

use crate::case;
use crate::keys::{Rng, key};
use crate::kv::Kv;
use crate::measure::op_loop;
use crate::results::{Figure, Unit};
use crate::workloads::{Ctx, load, ops_figure, progress};
use crate::zipf::Zipfian;

/// Value bytes of a YCSB record (with the 16-byte key, about 1 KB).
pub const RECORD_VALUE_BYTES: usize = 1000;
/// YCSB's default request skew.
pub const THETA: f64 = 0.99;

/// The workloads in the order they run.
pub const LETTERS: [char; 5] = ['A', 'B', 'C', 'F', 'D'];

/// W6 for every engine.
pub fn w6(ctx: &Ctx) -> Vec<Figure> {
    let records = ctx.scaled(1_000_000, 10_000);
    let cases: Vec<(String, Unit)> =
        LETTERS.iter().map(|&l| (case::ycsb(l), Unit::OpsPerSec)).collect();
    let mut figures = Vec::new();
    for &engine in &ctx.engines {
        figures.extend(ctx.with_engine("W6", "w6", engine, records * 2 * 1024, &cases, |kv| {
            let name = engine.name();
            if let Err(e) = load(kv, &ctx.values, 0, records, RECORD_VALUE_BYTES) {
                return cases
                    .iter()
                    .map(|(c, u)| Figure::unavailable("W6", c, name, *u, &e))
                    .collect();
            }
            progress("W6", name, "loaded");
            let mut zipf = Zipfian::new(records, THETA);
            LETTERS
                .iter()
                .map(|&letter| {
                    let r = run(ctx, kv, letter, &mut zipf, records);
                    ops_figure("W6", &case::ycsb(letter), name, r)
                })
                .collect()
        }));
    }
    figures
}

/// Run one workload; `zipf` grows as D inserts.
fn run(
    ctx: &Ctx,
    kv: &dyn Kv,
    letter: char,
    zipf: &mut Zipfian,
    records: u64,
) -> Result<crate::measure::OpStats, String> {
    let mut rng = Rng::new(u64::from(letter));
    let mut out = Vec::with_capacity(RECORD_VALUE_BYTES);
    let values = &ctx.values;
    let read_percent = match letter {
        'A' | 'F' => 50,
        'B' | 'D' => 95,
        _ => 100,
    };
    let mut version = 0u64;
    op_loop(ctx.budget, records, |_| {
        let read = rng.below(100) < read_percent;
        if letter == 'D' {
            if read {
                let item = zipf.latest(&mut rng);
                return expect_found(kv.get(&key(item), &mut out)?, item);
            }
            let item = zipf.len();
            kv.put(&key(item), values.value(item, RECORD_VALUE_BYTES))?;
            zipf.grow(item + 1);
            return Ok(());
        }
        let item = zipf.scrambled(&mut rng);
        if read {
            return expect_found(kv.get(&key(item), &mut out)?, item);
        }
        version += 1;
        let fresh = values.value(item ^ version << 32, RECORD_VALUE_BYTES);
        if letter == 'F' {
            kv.read_modify_write(&key(item), &mut |current| {
                let mut v = current.map_or_else(Vec::new, <[u8]>::to_vec);
                v.resize(RECORD_VALUE_BYTES, 0);
                v[..8].copy_from_slice(&fresh[..8]);
                v
            })
        } else {
            kv.put(&key(item), fresh)
        }
    })
}

fn expect_found(found: bool, item: u64) -> Result<(), String> {
    if found { Ok(()) } else { Err(format!("YCSB read of loaded item {item} found nothing")) }
}
