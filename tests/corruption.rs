//! Corrupt pools: truncated files, zeroed and swapped superblocks, flipped bits in segment
//! headers, tail words, records and superblocks, a valid record copied elsewhere, a segment
//! from another pool, garbage after the tail. Opening never panics; it returns a typed error or
//! a store whose report lists damage, or — where the bytes hit are not part of the committed
//! state — the exact contents. A bad record inside the committed range is always reported.
//! Figure: corruption cases detected of those that must be.

use std::ops::Range;
use std::panic::AssertUnwindSafe;

use mcstore::recovery::format::{
    Geometry, SUPERBLOCK_BYTES, SUPERBLOCK_SLOT_OFFSETS, SegmentHeader, SegmentId, Superblock,
    decode_header, decode_tail,
};
use mcstore::{Db, Options};
use mcstore_testkit::model::{Bytes, Model, Op, apply_db, db_contents};
use mcstore_testkit::pools::{SEGMENT_BYTES, as_medium, image_medium, sim_db, small_options};

/// Superblocks and four segments.
const POOL_BYTES: u64 = 320 << 10;

/// A cleanly closed pool over three segments (puts, overwrites, removes, a batch), its model.
fn base_pool() -> (Vec<u8>, Model) {
    let (sim, db) = sim_db(POOL_BYTES, small_options()).expect("sim_db");
    let mut model = Model::new();
    let mut ops = Vec::new();
    for i in 0u32..170 {
        let key = format!("key{:03}", i % 80).into_bytes();
        ops.push(Op::Put { key, value: vec![(i % 256) as u8; 200 + (i as usize * 41) % 1700] });
    }
    for i in (0u32..80).step_by(9) {
        ops.push(Op::Remove { key: format!("key{i:03}").into_bytes() });
    }
    ops.push(Op::Batch(vec![(b"b".to_vec(), Some(b"1".to_vec())), (b"key001".to_vec(), None)]));
    for op in &ops {
        model.apply(op);
        apply_db(&db, op).expect("base workload");
    }
    assert!(db.stats().segment_rolls >= 3, "the base pool spans three segments");
    db.close().expect("close");
    (sim.persistent_image(), model)
}

/// Where things are in the base pool.
struct Layout {
    geometry: Geometry,
    /// Per used segment: header offset, tail-word offset, committed record ranges.
    segments: Vec<(u64, u64, Vec<Range<u64>>)>,
    /// End of the committed range of the open (last) segment, and that segment's end.
    open_tail: Range<u64>,
}

fn layout(image: &[u8]) -> Layout {
    let sb = [0usize, 1]
        .iter()
        .filter_map(|&slot| {
            let at = SUPERBLOCK_SLOT_OFFSETS[slot] as usize;
            Superblock::decode(&image[at..at + SUPERBLOCK_BYTES], slot).ok()
        })
        .max_by_key(|sb| sb.generation)
        .expect("a valid superblock");
    let geometry = sb.geometry;
    let mut segments = Vec::new();
    let mut open_tail = 0..0;
    let mut best_seq = 0;
    for id in 0..geometry.segment_count(image.len() as u64) {
        let at = geometry.segment_offset(SegmentId(id));
        let Ok(Some(header)) = SegmentHeader::decode(&image[at as usize..at as usize + 64]) else {
            continue;
        };
        let tail_at = geometry.tail_offset(SegmentId(id));
        let word = u64::from_le_bytes(
            image[tail_at as usize..tail_at as usize + 8].try_into().expect("8"),
        );
        let tail = decode_tail(word, header.seq, &sb.set_uuid).expect("a valid tail word");
        let start = geometry.data_start(SegmentId(id));
        let mut records = Vec::new();
        let mut pos = start;
        while pos < start + tail {
            let h = decode_header(&image[pos as usize..]).expect("a record header");
            records.push(pos..pos + h.encoded_len());
            pos += h.encoded_len();
        }
        if header.seq > best_seq {
            best_seq = header.seq;
            open_tail = start + tail..at + geometry.segment_size_bytes;
        }
        segments.push((at, tail_at, records));
    }
    Layout { geometry, segments, open_tail }
}

/// How an open of a corrupted image ended.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// A typed error, or a store whose report lists damage (or that is failed).
    Detected,
    /// Opened clean with exactly the model's contents.
    Intact,
    /// Opened clean with other contents: silent corruption.
    Silent(String),
    /// Open (or a read after it) panicked.
    Panicked(String),
}

fn open_and_judge(image: Vec<u8>, model: &Model, options: &Options) -> Verdict {
    let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| {
        let medium = image_medium(image);
        let db = match Db::open_on(as_medium(&medium), options.clone()) {
            Ok(db) => db,
            Err(_) => return Verdict::Detected,
        };
        if !db.recovery_report().is_clean() || db.stats().failed {
            return Verdict::Detected;
        }
        match db_contents(&db) {
            Ok(contents) if contents == model.contents() => Verdict::Intact,
            Ok(contents) => Verdict::Silent(summary(&contents, model)),
            Err(e) => Verdict::Silent(format!("a clean store failed to iterate: {e}")),
        }
    }));
    outcome.unwrap_or_else(|panic| {
        let text = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_string()))
            .unwrap_or_default();
        Verdict::Panicked(text)
    })
}

fn summary(contents: &[(Bytes, Bytes)], model: &Model) -> String {
    let want = model.contents();
    let missing = want.iter().filter(|kv| !contents.contains(kv)).count();
    let extra = contents.iter().filter(|kv| !want.contains(kv)).count();
    format!("{missing} entries missing or changed, {extra} extra")
}

/// Tally of cases: `must` cases must be detected; the others may be detected or intact.
#[derive(Default)]
struct Tally {
    must_injected: u64,
    must_detected: u64,
    cases: u64,
    failures: Vec<String>,
}

impl Tally {
    fn case(&mut self, name: &str, must_detect: bool, verdict: Verdict) {
        self.cases += 1;
        if must_detect {
            self.must_injected += 1;
        }
        match verdict {
            Verdict::Detected => self.must_detected += u64::from(must_detect),
            Verdict::Intact if !must_detect => {}
            Verdict::Intact => self.failures.push(format!("{name}: not detected (opened clean)")),
            Verdict::Silent(what) => self.failures.push(format!("{name}: silent: {what}")),
            Verdict::Panicked(what) => self.failures.push(format!("{name}: panicked: {what}")),
        }
    }

    /// Assert every case passed; record the figure if named.
    fn finish(self, figure: Option<&str>) {
        if let Some(figure) = figure {
            mcstore::pmem::figures::of(
                "corruption",
                figure,
                self.must_detected,
                self.must_injected,
            );
        }
        assert!(self.cases > 0);
        let shown: Vec<_> = self.failures.iter().take(20).collect();
        assert!(self.failures.is_empty(), "{} failure(s):\n{shown:#?}", self.failures.len());
        assert_eq!(self.must_detected, self.must_injected);
    }
}

fn flip(image: &[u8], bit: u64) -> Vec<u8> {
    let mut out = image.to_vec();
    out[(bit / 8) as usize] ^= 1 << (bit % 8);
    out
}

/// Flipped bits in every used segment's header and tail word and in every record.
fn flipped_bits(image: &[u8], model: &Model, layout: &Layout, tally: &mut Tally) {
    let options = small_options();
    for (header, tail, records) in &layout.segments {
        for bit in (header * 8..(header + 64) * 8).step_by(3) {
            tally.case(
                &format!("header bit {bit}"),
                true,
                open_and_judge(flip(image, bit), model, &options),
            );
        }
        for bit in tail * 8..(tail + 8) * 8 {
            tally.case(
                &format!("tail bit {bit}"),
                true,
                open_and_judge(flip(image, bit), model, &options),
            );
        }
        // Every record: a bit in its checksum, its lengths, its key, its middle and its last
        // (value or padding) byte.
        for record in records {
            let middle = (record.start + record.end) / 2;
            let positions =
                [record.start + 5, record.start + 17, record.start + 33, middle, record.end - 1];
            for (i, at) in positions.into_iter().enumerate() {
                let bit = at * 8 + (record.start / 8 + i as u64) % 8;
                let name = format!("record at {} bit {bit}", record.start);
                tally.case(&name, true, open_and_judge(flip(image, bit), model, &options));
            }
        }
    }
}

/// Superblock damage: a typed error, or the other (valid) slot.
fn superblocks(image: &[u8], model: &Model, tally: &mut Tally) {
    let options = small_options();
    let slot = |s: usize| {
        SUPERBLOCK_SLOT_OFFSETS[s] as usize..SUPERBLOCK_SLOT_OFFSETS[s] as usize + SUPERBLOCK_BYTES
    };
    // Flipped bits in either slot: the other slot is a valid superblock of this pool.
    for s in 0..2 {
        for bit in (slot(s).start as u64 * 8..slot(s).end as u64 * 8).step_by(5) {
            tally.case(
                &format!("slot {s} bit {bit}"),
                false,
                open_and_judge(flip(image, bit), model, &options),
            );
        }
        let mut zeroed = image.to_vec();
        zeroed[slot(s)].fill(0);
        tally.case(&format!("slot {s} zeroed"), false, open_and_judge(zeroed, model, &options));
    }
    let mut both = image.to_vec();
    both[slot(0)].fill(0);
    both[slot(1)].fill(0);
    tally.case("both slots zeroed", true, open_and_judge(both, model, &options));
    let mut swapped = image.to_vec();
    let (a, b) = (image[slot(0)].to_vec(), image[slot(1)].to_vec());
    swapped[slot(0)].copy_from_slice(&b);
    swapped[slot(1)].copy_from_slice(&a);
    tally.case("slots swapped", true, open_and_judge(swapped, model, &options));
}

/// Pool files cut to each of `lengths` (each cuts committed state: a superblock or a used
/// segment).
fn truncated(image: &[u8], model: &Model, lengths: &[u64], tally: &mut Tally) {
    let options = small_options();
    for &len in lengths {
        let cut = image[..len as usize].to_vec();
        tally.case(&format!("truncated to {len}"), true, open_and_judge(cut, model, &options));
    }
}

/// Cuts inside the superblock area.
const SUPERBLOCK_CUTS: [u64; 5] = [0, 7, 100, 4096, 4096 + 300];

/// Cuts that remove used segments (wholly or partly), from the layout.
fn segment_cuts(layout: &Layout) -> Vec<u64> {
    let last_used = layout.segments.iter().map(|(h, _, _)| *h).max().expect("segments");
    vec![
        8192,
        layout.geometry.segments_start,
        layout.geometry.segments_start + 4096,
        last_used,
        last_used + 4096,
        layout.open_tail.start - 64,
    ]
}

/// Misplaced and foreign bytes are reported; garbage after the tail is ignored.
fn misplaced_and_foreign(image: &[u8], model: &Model, layout: &Layout, tally: &mut Tally) {
    let options = small_options();
    let records = &layout.segments[0].2;
    let first = records[0].clone();
    let len = (first.end - first.start) as usize;
    let bytes = image[first.start as usize..first.end as usize].to_vec();
    // A valid record copied over others inside the committed range (same segment and later).
    for target in [records[3].start, layout.segments[1].2[2].start] {
        let mut copied = image.to_vec();
        copied[target as usize..target as usize + len].copy_from_slice(&bytes);
        tally.case(
            &format!("record copied to {target}"),
            true,
            open_and_judge(copied, model, &options),
        );
    }
    // The same record copied past the committed tail: not part of the log, ignored.
    let mut past = image.to_vec();
    let at = layout.open_tail.start as usize;
    past[at..at + len].copy_from_slice(&bytes);
    tally.case("record copied past the tail", false, open_and_judge(past, model, &options));
    // Garbage after the tail of the open segment.
    let mut garbage = image.to_vec();
    for (i, byte) in garbage[layout.open_tail.start as usize..layout.open_tail.end as usize]
        .iter_mut()
        .enumerate()
    {
        *byte = (i as u8).wrapping_mul(31) ^ 0xA5;
    }
    let verdict = open_and_judge(garbage, model, &options);
    assert_eq!(verdict, Verdict::Intact, "garbage after the tail is a torn tail");
    // A used segment replaced by the same segment of another pool (same geometry, other uuid).
    let (other, _) = base_pool();
    for (header, _, _) in &layout.segments {
        let mut foreign = image.to_vec();
        let range = *header as usize..(*header + SEGMENT_BYTES) as usize;
        foreign[range.clone()].copy_from_slice(&other[range]);
        tally.case(
            &format!("foreign segment at {header}"),
            true,
            open_and_judge(foreign, model, &options),
        );
    }
}

#[test]
fn corrupt_pools_are_reported_never_silent_and_never_panic() {
    let (image, model) = base_pool();
    let layout = layout(&image);
    let mut tally = Tally::default();
    flipped_bits(&image, &model, &layout, &mut tally);
    superblocks(&image, &model, &mut tally);
    truncated(&image, &model, &SUPERBLOCK_CUTS, &mut tally);
    truncated(&image, &model, &segment_cuts(&layout), &mut tally);
    misplaced_and_foreign(&image, &model, &layout, &mut tally);
    tally.finish(Some("corruption cases detected"));
}

/// Regression (found by this suite): a file cut at a segment boundary opened clean with the cut
/// segments' records gone. The superblock now records how many segments the pool has, so it is
/// reported (`DamageKind::Truncated`). Also part of the test above; kept by name.
#[test]
fn truncated_pools_are_reported() {
    let (image, model) = base_pool();
    let layout = layout(&image);
    let mut tally = Tally::default();
    truncated(&image, &model, &segment_cuts(&layout), &mut tally);
    tally.finish(None);
}
