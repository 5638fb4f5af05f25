//! Micro workload: the machine-check-safe copy against `copy_from_slice`, at 64 B – 1 MiB, swept
//! over `(dst − src) mod 4096`, in two figures per size:
//! - `copy-*` (carries the targets): `mcsafe::copy_from_slice_checked` — the copy routine
//!   with its dispatch and fault check — from the same heap source as `copy_from_slice`;
//! - `read-*` (informative, no target): the whole `Medium::read` of a mapped pool through
//!   `&dyn Medium` (dynamic call, bounds check, `Result`), as the store's get path reaches it.
//!
//! Every side copies from a page-aligned source into a destination at the same distance modulo
//! 4096, hot in cache, in the same closure shape. The sides are timed in interleaved batches over
//! several passes of the sweep, and each keeps its fastest batch (the one least disturbed by other
//! processes on this shared 2-vCPU VM): the same rule for every side.
//! Ratio = memcpy time / mcsafe time (≥ 1 means mcsafe is faster).

use mcstore_pmem::mcsafe::{CopyVariant, copy_from_slice_checked, set_copy_variant};
use mcstore_pmem::{Domain, ErrorRegister, Medium, MemberId};

use std::time::Instant;

use crate::measure::{calls_for, keep, median};
use crate::report::Row;

/// Copy sizes the issue names.
pub const SIZES: [usize; 5] = [64, 256, 4096, 64 * 1024, 1024 * 1024];
/// `(dst − src) mod 4096` values swept; small distances are where `rep movsb` is slow on Zen.
pub const DELTAS: [usize; 10] = [0, 8, 16, 32, 48, 64, 256, 1024, 2048, 4032];
/// Passes over the whole sweep; each point keeps its fastest pass.
const ROUNDS: usize = 3;
/// Timed batches per side, point and pass.
const BATCHES: usize = 10;

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
        index_for(&self.buf, residue)
    }
}

/// Index in `buf` whose address is `residue` modulo 4096.
fn index_for(buf: &[u8], residue: usize) -> usize {
    let addr = buf.as_ptr() as usize;
    (residue + 4096 - addr % 4096) % 4096
}

/// Nanoseconds per call of three closures over the destination buffer `buf`, timed in interleaved batches of `calls` calls (a, b,
/// c, a, b, c, …); each side's figure is its fastest batch. Generic, so each timed loop inlines
/// its closure: no side pays an indirect call the others do not.
fn interleaved<A, B, C>(
    calls: usize,
    buf: &mut [u8],
    (a, b, c): (&mut A, &mut B, &mut C),
) -> [f64; 3]
where
    A: FnMut(&mut [u8]),
    B: FnMut(&mut [u8]),
    C: FnMut(&mut [u8]),
{
    fn batch(calls: usize, buf: &mut [u8], f: &mut impl FnMut(&mut [u8])) -> f64 {
        let start = Instant::now();
        for _ in 0..calls {
            f(buf);
        }
        start.elapsed().as_nanos() as f64 / calls as f64
    }
    // Warm up caches, page tables and branch predictors.
    for _ in 0..2 {
        batch(calls, buf, a);
        batch(calls, buf, b);
        batch(calls, buf, c);
    }
    let mut best = [f64::INFINITY; 3];
    for _ in 0..BATCHES {
        best[0] = best[0].min(batch(calls, buf, a));
        best[1] = best[1].min(batch(calls, buf, b));
        best[2] = best[2].min(batch(calls, buf, c));
    }
    best
}

/// One (size, delta) point: ns per call of each side.
#[derive(Clone, Copy, Debug)]
struct Point {
    size: usize,
    delta: usize,
    /// `copy_from_slice_checked`, heap to heap.
    copy_ns: f64,
    /// `Medium::read` through `&dyn Medium`, mapping to heap.
    read_ns: f64,
    /// `copy_from_slice`, heap to heap.
    memcpy_ns: f64,
}

/// Measure every size × delta for one copy variant: `ROUNDS` passes over the whole sweep, each
/// point keeping its fastest figure per side, so a noisy second hits one pass, not the result.
fn sweep(medium: &dyn Medium, src_offset: u64, variant: CopyVariant) -> Vec<Point> {
    set_copy_variant(variant);
    // Opaque to the optimiser, so `Medium::read` stays a dynamic call as on the store's get path
    // (the caller may know the concrete type and would otherwise devirtualise it).
    let medium: &dyn Medium = keep(medium);
    let mut buffers: Vec<(Placed, Placed)> =
        SIZES.iter().map(|&size| (Placed::new(size), Placed::new(size))).collect();
    let mut out: Vec<Point> = Vec::new();
    for round in 0..ROUNDS {
        let mut at = 0;
        for (&size, (dst, src)) in SIZES.iter().zip(&mut buffers) {
            let src_at = src.index_for(0);
            let s = &src.buf[src_at..src_at + size];
            for delta in DELTAS {
                let point = measure(medium, src_offset, &mut dst.buf, s, delta);
                if round == 0 {
                    out.push(point);
                } else {
                    let best = &mut out[at];
                    best.copy_ns = best.copy_ns.min(point.copy_ns);
                    best.read_ns = best.read_ns.min(point.read_ns);
                    best.memcpy_ns = best.memcpy_ns.min(point.memcpy_ns);
                }
                at += 1;
            }
        }
    }
    set_copy_variant(CopyVariant::Auto);
    out
}

/// One point: copy `s` into `dst` at `(dst − src) mod 4096 = delta`, each side in interleaved
/// batches.
fn measure(medium: &dyn Medium, src_offset: u64, dst: &mut [u8], s: &[u8], delta: usize) -> Point {
    let size = s.len();
    let dst_at = index_for(dst, (s.as_ptr() as usize + delta) % 4096);
    let mut copy_register = ErrorRegister::deferred();
    let mut read_register = ErrorRegister::deferred();
    let mut copy = |buf: &mut [u8]| {
        let d = &mut buf[dst_at..dst_at + size];
        copy_from_slice_checked(d, keep(s), MemberId(0), &mut copy_register, Domain::User);
        keep(d.as_ptr());
    };
    let mut read = |buf: &mut [u8]| {
        let d = &mut buf[dst_at..dst_at + size];
        let r = medium.read(keep(src_offset), d, &mut read_register, Domain::User);
        keep(r.is_ok());
        keep(d.as_ptr());
    };
    let mut memcpy = |buf: &mut [u8]| {
        let d = &mut buf[dst_at..dst_at + size];
        d.copy_from_slice(keep(s));
        keep(d.as_ptr());
    };
    let calls = (calls_for(size) / 4).max(8);
    let [copy_ns, read_ns, memcpy_ns] =
        interleaved(calls, dst, (&mut copy, &mut read, &mut memcpy));
    assert!(
        copy_register.is_clean() && read_register.is_clean(),
        "benchmark sources must be clean"
    );
    Point { size, delta, copy_ns, read_ns, memcpy_ns }
}

/// The summary rows (median over deltas, worst delta) of one figure for one size.
fn summary(
    group: &str,
    size: usize,
    points: &[Point],
    mcsafe_ns: impl Fn(&Point) -> f64,
    with_target: bool,
) -> [Row; 2] {
    let at_size: Vec<&Point> = points.iter().filter(|p| p.size == size).collect();
    let mut ratios: Vec<f64> = at_size.iter().map(|p| p.memcpy_ns / mcsafe_ns(p)).collect();
    let worst = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let mut mcsafe: Vec<f64> = at_size.iter().map(|p| mcsafe_ns(p)).collect();
    let mut memcpy: Vec<f64> = at_size.iter().map(|p| p.memcpy_ns).collect();
    let goal = if size >= 4096 { 0.9 } else { 0.75 };
    [
        Row {
            group: group.to_string(),
            case: format!("{size} B, median over deltas"),
            value: median(&mut mcsafe),
            reference: median(&mut memcpy),
            unit: "ns",
            ratio: median(&mut ratios),
            target: with_target.then_some((goal, ">=")),
        },
        Row {
            group: group.to_string(),
            case: format!("{size} B, worst delta"),
            value: f64::NAN,
            reference: f64::NAN,
            unit: "ns",
            ratio: worst,
            target: with_target.then_some((0.5, ">=")),
        },
    ]
}

/// Run the copy workload on `medium` (at least 1 MiB + 4 KiB long, bytes from `src_offset` clean).
///
/// Rows: `copy-<variant>` is the copy routine path (`copy_from_slice_checked`), which carries the
/// issue's targets under the automatic dispatch; `read-<variant>` is the full `Medium::read`
/// path, reported against the same memcpy without a target.
pub fn run(medium: &dyn Medium, src_offset: u64, all_variants: bool) -> Vec<Row> {
    let mut rows = Vec::new();
    let variants: &[CopyVariant] = if all_variants {
        &[CopyVariant::Auto, CopyVariant::RepMovsb, CopyVariant::Vector, CopyVariant::Fragile]
    } else {
        &[CopyVariant::Auto]
    };
    for &variant in variants {
        let points = sweep(medium, src_offset, variant);
        let label = format!("{variant:?}").to_lowercase();
        let is_auto = variant == CopyVariant::Auto;
        let copy_group = format!("copy-{label}");
        let read_group = format!("read-{label}");
        for size in SIZES {
            rows.extend(summary(&copy_group, size, &points, |p| p.copy_ns, is_auto));
        }
        for size in SIZES {
            rows.extend(summary(&read_group, size, &points, |p| p.read_ns, false));
        }
        for p in &points {
            for (group, mcsafe_ns) in [(&copy_group, p.copy_ns), (&read_group, p.read_ns)] {
                rows.push(Row {
                    group: group.clone(),
                    case: format!("{} B, delta {}", p.size, p.delta),
                    value: mcsafe_ns,
                    reference: p.memcpy_ns,
                    unit: "ns",
                    ratio: p.memcpy_ns / mcsafe_ns,
                    target: None,
                });
            }
        }
    }
    rows
}
