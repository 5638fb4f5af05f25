//! Micro workload: persist (write + flush + fence) through `Medium` in `ForcedPmem` against the
//! raw instruction sequence (stores, clwb per line, sfence) on a mapping of the same kind.
//!
//! Offsets rotate over 1 MiB so neither side keeps rewriting one hot line; the ratio is raw time /
//! medium time (1.0 = no overhead; the target "within 1.1×" is ratio ≥ 0.909).

use mcstore_pmem::raw::RawRegion;
use mcstore_pmem::{FenceSite, Medium};

use crate::measure::ns_per_call;
use crate::report::Row;

/// Persist sizes the issue names.
pub const SIZES: [usize; 5] = [64, 128, 256, 1024, 4096];
const SPAN: usize = 1 << 20;
const SITE: FenceSite = FenceSite("bench.persist");

/// Run the persist workload: `medium` and `raw` must both be at least 1 MiB + 4 KiB long.
pub fn run(medium: &dyn Medium, raw: &RawRegion) -> Vec<Row> {
    let mut rows = Vec::new();
    for size in SIZES {
        let data = vec![0xc3u8; size];
        let slots = SPAN / size.max(64);
        let mut i = 0usize;
        let medium_ns = ns_per_call(15, 2000, || {
            let off = ((i % slots) * size.max(64)) as u64;
            i += 1;
            let ok = medium.write(off, &data).is_ok()
                && medium.flush(off, size as u64).is_ok()
                && medium.fence(SITE).is_ok();
            assert!(ok, "persist through the medium failed");
        });
        let mut j = 0usize;
        let raw_ns = ns_per_call(15, 2000, || {
            let off = (j % slots) * size.max(64);
            j += 1;
            raw.persist(off, &data);
        });
        rows.push(Row {
            group: "persist".into(),
            case: format!("{size} B"),
            value: medium_ns,
            reference: raw_ns,
            unit: "ns",
            ratio: raw_ns / medium_ns,
            target: Some((1.0 / 1.1, ">=")),
        });
    }
    rows
}
