//! Micro workload: the machine-check-safe read (`Medium::read` on a mapped pool) against
//! `copy_from_slice` between heap buffers, at 64 B – 1 MiB, swept over `(dst − src) mod 4096`.
//!
//! Both sides copy from a page-aligned source into a destination placed at the same distance
//! modulo 4096, hot in cache; the ratio is memcpy time / mcsafe time (≥ 1 means mcsafe is faster).

use mcstore_pmem::mcsafe::{CopyVariant, set_copy_variant};
use mcstore_pmem::{Domain, ErrorRegister, Medium};

use crate::measure::{calls_for, keep, median, ns_per_call};
use crate::report::Row;

/// Copy sizes the issue names.
pub const SIZES: [usize; 5] = [64, 256, 4096, 64 * 1024, 1024 * 1024];
/// `(dst − src) mod 4096` values swept; small distances are where `rep movsb` is slow on Zen.
pub const DELTAS: [usize; 10] = [0, 8, 16, 32, 48, 64, 256, 1024, 2048, 4032];

/// A buffer with room to place a slice at any address residue modulo 4096.
struct Placed {
    buf: Vec<u8>,
}

impl Placed {
    fn new(len: usize) -> Self {
        Self { buf: vec![0x5a; len + 8192] }
    }

    /// Index in `buf` whose address is `residue` modulo 4096.
    fn index_for(&self, residue: usize) -> usize {
        let addr = self.buf.as_ptr() as usize;
        (residue + 4096 - addr % 4096) % 4096
    }
}

/// Measure every size × delta for one copy variant; returns (size, delta, mcsafe ns, memcpy ns).
fn sweep(
    medium: &dyn Medium,
    src_offset: u64,
    variant: CopyVariant,
) -> Vec<(usize, usize, f64, f64)> {
    set_copy_variant(variant);
    let mut out = Vec::new();
    for size in SIZES {
        let mut dst = Placed::new(size);
        let src = Placed::new(size);
        let src_at = src.index_for(0);
        for delta in DELTAS {
            let dst_at = dst.index_for(delta);
            let calls = calls_for(size);
            let mut register = ErrorRegister::deferred();
            let mcsafe_ns = ns_per_call(15, calls, || {
                let d = &mut dst.buf[dst_at..dst_at + size];
                let r = medium.read(src_offset, d, &mut register, Domain::User);
                keep(r.is_ok());
                keep(d.as_ptr());
            });
            assert!(register.is_clean(), "benchmark source must be clean");
            let s = &src.buf[src_at..src_at + size];
            let memcpy_ns = ns_per_call(15, calls, || {
                let d = &mut dst.buf[dst_at..dst_at + size];
                d.copy_from_slice(keep(s));
                keep(d.as_ptr());
            });
            out.push((size, delta, mcsafe_ns, memcpy_ns));
        }
    }
    set_copy_variant(CopyVariant::Auto);
    out
}

/// Run the copy workload on `medium` (at least 1 MiB + 4 KiB long, bytes from `src_offset` clean).
pub fn run(medium: &dyn Medium, src_offset: u64, all_variants: bool) -> Vec<Row> {
    let mut rows = Vec::new();
    let variants: &[CopyVariant] = if all_variants {
        &[CopyVariant::Auto, CopyVariant::RepMovsb, CopyVariant::Vector, CopyVariant::Fragile]
    } else {
        &[CopyVariant::Auto]
    };
    for &variant in variants {
        let results = sweep(medium, src_offset, variant);
        let label = format!("{variant:?}").to_lowercase();
        for size in SIZES {
            let mut ratios: Vec<f64> =
                results.iter().filter(|r| r.0 == size).map(|r| r.3 / r.2).collect();
            let worst = ratios.iter().copied().fold(f64::INFINITY, f64::min);
            let mut mc: Vec<f64> = results.iter().filter(|r| r.0 == size).map(|r| r.2).collect();
            let mut mm: Vec<f64> = results.iter().filter(|r| r.0 == size).map(|r| r.3).collect();
            let median_ratio = median(&mut ratios);
            let is_auto = variant == CopyVariant::Auto;
            let goal = if size >= 4096 { 0.9 } else { 0.75 };
            rows.push(Row {
                group: format!("copy-{label}"),
                case: format!("{size} B, median over deltas"),
                value: median(&mut mc),
                reference: median(&mut mm),
                unit: "ns",
                ratio: median_ratio,
                target: is_auto.then_some((goal, ">=")),
            });
            rows.push(Row {
                group: format!("copy-{label}"),
                case: format!("{size} B, worst delta"),
                value: f64::NAN,
                reference: f64::NAN,
                unit: "ns",
                ratio: worst,
                target: is_auto.then_some((0.5, ">=")),
            });
        }
        for &(size, delta, mcsafe_ns, memcpy_ns) in &results {
            rows.push(Row {
                group: format!("copy-{label}"),
                case: format!("{size} B, delta {delta}"),
                value: mcsafe_ns,
                reference: memcpy_ns,
                unit: "ns",
                ratio: memcpy_ns / mcsafe_ns,
                target: None,
            });
        }
    }
    rows
}
