//! The bodies of the cargo-fuzz targets (`fuzz/`), here so ordinary tests replay the corpora on
//! stable Rust. Each body takes arbitrary bytes and panics only on a bug: a decoder that
//! panics, a round trip that changes a value, a recovery that is not idempotent, a single flipped
//! bit that goes unreported; and in the submodules an acknowledged write lost at a crash
//! ([`crash_ops`]), wrong data or an untyped failure under poison ([`poison_ops`], and with real
//! `SIGBUS` on a mapped pool, [`mapped_poison`]), and wrong or missing items from a scan read
//! ahead on a second thread ([`scan_ahead`]).
//!
//! INVARIANT: bodies are deterministic (the base pool is built from fixed uuids, pid and time)
//! and bounded (pools ≤ 256 KiB, 1 MiB for `scan_ahead`; inputs truncated), so a finding
//! reproduces from its input.
//! `scan_ahead` runs a read-ahead thread whose timing varies; what its scans yield does not.

use std::sync::{Arc, OnceLock};

use mcstore_engine::{Db, EngineFallback, Policy};
use mcstore_pmem::SimMedium;
use mcstore_recovery::format::{
    Geometry, Lsn, RecordContext, RecordKind, SUPERBLOCK_BYTES, SUPERBLOCK_SLOT_OFFSETS,
    SegmentHeader, SegmentId, Superblock, Uuid, decode_header, decode_record, decode_tail,
    encode_record, encode_tail, encoded_len,
};
use mcstore_recovery::pool::{self, CreateParams};

use crate::model::{Bytes, Model, Op, apply_db, db_contents};
use crate::pools::{SEGMENT_BYTES, as_medium, image_medium, small_options};

mod crash_ops;
pub mod input;
mod mapped_poison;
mod poison_ops;

pub use crash_ops::crash_ops;
pub use mapped_poison::{mapped_poison, scan_ahead};
pub use poison_ops::poison_ops;

/// A fuzz target's body.
pub type Body = fn(&[u8]);

/// Every fuzz target: its name and its body.
pub const TARGETS: [(&str, Body); 6] = [
    ("codec", codec),
    ("recover_image", recover_image),
    ("crash_ops", crash_ops),
    ("poison_ops", poison_ops),
    ("mapped_poison", mapped_poison),
    ("scan_ahead", scan_ahead),
];

/// Size of the base pool `recover_image` mutates: superblocks and three 64 KiB segments.
pub const BASE_POOL_BYTES: u64 = 256 << 10;
/// Inputs longer than this are cut (keeps each run short).
const INPUT_BYTES_MAX: usize = 4096;

/// `codec`: record, segment header, superblock and tail-word decoding on arbitrary bytes never
/// panics; what decodes re-encodes to the same bytes; what is encoded decodes to the same
/// fields, only at its own context; one flipped bit never decodes.
pub fn codec(data: &[u8]) {
    let data = &data[..data.len().min(INPUT_BYTES_MAX)];
    let word = |at: usize| codec_word(data, at);
    let (ctx, rest) = codec_record(data);

    // Decoding arbitrary bytes: no panic; a verified record re-encodes to its own bytes.
    let _ = decode_header(rest);
    if let Ok(record) = decode_record(rest, &ctx) {
        let mut again = Vec::new();
        encode_record(&mut again, record.kind, record.lsn, record.key, record.value, &ctx);
        assert_eq!(Some(&again[..]), rest.get(..again.len()), "record re-encodes differently");
    }
    if let Ok(Some(header)) = SegmentHeader::decode(rest) {
        assert_eq!(Some(&header.encode()[..]), rest.get(..64), "segment header round trip");
    }
    for slot in 0..2 {
        if let Ok(sb) = Superblock::decode(rest, slot) {
            let encoded = sb.encode();
            assert_eq!(Superblock::decode(&encoded, slot).ok(), Some(sb), "superblock round trip");
        }
    }
    let tail_word = word(32);
    if let Ok(tail) = decode_tail(tail_word, ctx.segment_seq, &ctx.set_uuid) {
        assert_eq!(encode_tail(tail, ctx.segment_seq, &ctx.set_uuid), tail_word, "tail round trip");
    }

    // Encoding: key and value cut from the input; decodes only at its own context.
    let split = usize::from(data.get(40).copied().unwrap_or(0)).min(rest.len());
    let (key, value) = rest.split_at(split);
    let kind = if word(8) & 1 == 0 { RecordKind::Put } else { RecordKind::Delete };
    let lsn = Lsn(word(16));
    let mut encoded = Vec::new();
    encode_record(&mut encoded, kind, lsn, key, value, &ctx);
    assert_eq!(encoded.len() as u64, encoded_len(key.len(), value.len()));
    let record = decode_record(&encoded, &ctx).expect("an encoded record decodes");
    assert_eq!((record.kind, record.lsn, record.key, record.value), (kind, lsn, key, value));
    let moved = RecordContext { offset: ctx.offset ^ 8, ..ctx };
    assert!(decode_record(&encoded, &moved).is_err(), "a record validated at another offset");
    let bit = (word(24) as usize) % (encoded.len() * 8);
    encoded[bit / 8] ^= 1 << (bit % 8);
    assert!(decode_record(&encoded, &ctx).is_err(), "a flipped bit {bit} went undetected");
    let units = (word(0) >> 40) as u32 & 0x3FFF_FFFF;
    let tail = u64::from(units) * 8;
    let stored = encode_tail(tail, ctx.segment_seq, &ctx.set_uuid);
    assert_eq!(decode_tail(stored, ctx.segment_seq, &ctx.set_uuid).ok(), Some(tail));
    if units != 0 {
        let flipped = stored ^ (1 << (word(8) % 64));
        assert!(decode_tail(flipped, ctx.segment_seq, &ctx.set_uuid).is_err(), "tail bit flip");
    }
}

/// The little-endian word at `at` of a `codec` input (zeros past its end).
fn codec_word(data: &[u8], at: usize) -> u64 {
    let mut bytes = [0u8; 8];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = data.get(at + i).copied().unwrap_or(0);
    }
    u64::from_le_bytes(bytes)
}

/// How `codec` reads its input: the record context its first 32 bytes give, and the bytes it
/// decodes as a record (the rest).
pub fn codec_record(data: &[u8]) -> (RecordContext, &[u8]) {
    let word = |at: usize| codec_word(data, at);
    let mut uuid = [0u8; 16];
    uuid[..8].copy_from_slice(&word(16).to_le_bytes());
    uuid[8..].copy_from_slice(&word(24).to_le_bytes());
    let ctx = RecordContext {
        offset: word(0) & 0x0000_FFFF_FFFF_FFF8,
        segment_seq: word(8),
        set_uuid: Uuid(uuid),
    };
    (ctx, data.get(32..).unwrap_or_default())
}

/// The deterministic base pool of `recover_image` and the model of its contents: fixed uuids,
/// pid and creation time; puts, overwrites, removes and a batch over two segments; closed
/// cleanly.
pub fn base_pool() -> &'static (Vec<u8>, Model) {
    static BASE: OnceLock<(Vec<u8>, Model)> = OnceLock::new();
    BASE.get_or_init(|| build_base_pool().expect("the base pool builds"))
}

fn build_base_pool() -> Result<(Vec<u8>, Model), String> {
    let sim = Arc::new(SimMedium::new(BASE_POOL_BYTES));
    let params = CreateParams {
        segment_size_bytes: SEGMENT_BYTES,
        pool_uuid: Uuid([0x11; 16]),
        set_uuid: Uuid([0x5e; 16]),
        created_by: "mcstore-testkit base pool".into(),
        opener_pid: 1,
        ..CreateParams::default()
    };
    pool::create(sim.as_ref(), &params).map_err(|e| e.to_string())?;
    let db = Db::open_on(as_medium(&sim), small_options()).map_err(|e| e.to_string())?;
    let mut model = Model::new();
    let mut ops = Vec::new();
    for i in 0u32..70 {
        let len = (i as usize * 37) % 1500;
        ops.push(Op::Put {
            key: format!("key{:03}", i % 50).into_bytes(),
            value: vec![i as u8; len],
        });
    }
    for i in (0u32..50).step_by(7) {
        ops.push(Op::Remove { key: format!("key{i:03}").into_bytes() });
    }
    ops.push(Op::Batch(vec![
        (b"batch-a".to_vec(), Some(b"1".to_vec())),
        (b"key001".to_vec(), None),
        (b"batch-b".to_vec(), Some(vec![2; 300])),
    ]));
    for op in &ops {
        let want = model.apply(op);
        let got = apply_db(&db, op).map_err(|e| e.to_string())?;
        if got != want {
            return Err(format!("{op:?}: {got:?} != {want:?}"));
        }
    }
    if db.stats().segment_rolls < 1 {
        return Err("the base pool should span two segments".into());
    }
    db.close().map_err(|e| e.to_string())?;
    let mut image = sim.persistent_image();
    // Normalise what depends on the process and the clock, in both slots.
    for (slot, &at) in SUPERBLOCK_SLOT_OFFSETS.iter().enumerate() {
        let range = at as usize..at as usize + SUPERBLOCK_BYTES;
        let mut sb = Superblock::decode(&image[range.clone()], slot).map_err(|e| e.to_string())?;
        sb.opener_pid = 0;
        sb.created_unix_secs = 0;
        image[range].copy_from_slice(&sb.encode());
    }
    Ok((image, model))
}

/// `recover_image`: open a pool image built from the input — the base pool with patches, the
/// base pool with flipped bits, or the input itself as a pool — and use what opens. Never a
/// panic or a hang; recovery is idempotent; one flipped bit is harmless or reported.
///
/// Input: byte 0 selects the shape (`% 3`: 0 patches `[u32 offset][u8 len][bytes]…`, 1 one
/// flipped bit at the `u32` that follows, 2 the bytes at the start of a zeroed 128 KiB image)
/// and, bit 7, the Engine policy (`Fail` instead of `Latch`).
pub fn recover_image(data: &[u8]) {
    let data = &data[..data.len().min(INPUT_BYTES_MAX)];
    let Some((&selector, rest)) = data.split_first() else { return };
    let (base, model) = base_pool();
    let mut image = base.clone();
    let mut single_flip = false;
    match selector % 3 {
        0 => apply_patches(&mut image, rest),
        1 => {
            let mut bytes = [0u8; 4];
            for (b, d) in bytes.iter_mut().zip(rest) {
                *b = *d;
            }
            let bit = u32::from_le_bytes(bytes) as usize % (image.len() * 8);
            image[bit / 8] ^= 1 << (bit % 8);
            single_flip = true;
        }
        _ => {
            image = vec![0; 128 << 10];
            image[..rest.len()].copy_from_slice(rest);
        }
    }
    let fallback = if selector & 0x80 != 0 { EngineFallback::Fail } else { EngineFallback::Latch };
    let options = small_options().policy(Policy::default().engine(true, fallback));
    let medium = image_medium(image);
    let Ok(db) = Db::open_on(as_medium(&medium), options.clone()) else { return };
    let failed = db.stats().failed;
    let clean = db.recovery_report().is_clean();
    let contents = exercise(&db);
    if failed || !clean {
        return;
    }
    let contents = contents.expect("a clean, working store iterates");
    if single_flip {
        assert_eq!(contents, model.contents(), "one flipped bit changed the contents unreported");
    }
    // Idempotent: recovering the recovered pool gives the same contents.
    let again = image_medium(medium.persistent_image());
    drop(db);
    let db = Db::open_on(as_medium(&again), options).expect("a recovered pool opens again");
    assert_eq!(db_contents(&db).ok(), Some(contents), "recovery is not idempotent");
    // The write path works on what recovery accepted.
    match db.put(b"fuzz-probe", b"value") {
        Ok(()) => assert_eq!(db.get(b"fuzz-probe").ok().flatten().as_deref(), Some(&b"value"[..])),
        Err(error) => assert!(!format!("{error}").is_empty()),
    }
}

/// Write `[u32 offset][u8 len][len bytes]` patches into `image` (offsets wrap).
fn apply_patches(image: &mut [u8], mut patches: &[u8]) {
    while patches.len() >= 5 {
        let offset = u32::from_le_bytes([patches[0], patches[1], patches[2], patches[3]]) as usize
            % image.len();
        let len = usize::from(patches[4]).min(patches.len() - 5).min(image.len() - offset);
        image[offset..offset + len].copy_from_slice(&patches[5..5 + len]);
        patches = &patches[5 + len..];
    }
}

/// Read everything through every read path of `db`; errors are fine, panics are not. The
/// contents if iteration succeeded.
fn exercise(db: &Db) -> Option<Vec<(Bytes, Bytes)>> {
    let contents = db_contents(db).ok();
    let _ = db.len();
    for (key, _) in db.iter().rev().take(64).flatten() {
        let _ = db.get(&key);
        let _ = db.contains_key(&key);
    }
    let _ = db.prefix(b"key0").count();
    contents
}

/// The seed inputs of every target, `(target, name, input)`, for the committed corpora (files
/// `fuzz/corpus/TARGET/seed-NAME`).
pub fn seed_inputs() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut seeds: Vec<(&'static str, String, Vec<u8>)> = image_seeds()
        .into_iter()
        .map(|(target, name, input)| (target, name.to_string(), input))
        .collect();
    let more = [
        ("crash_ops", crash_ops::seeds()),
        ("poison_ops", poison_ops::seeds()),
        ("mapped_poison", mapped_poison::seeds()),
        ("scan_ahead", mapped_poison::scan_seeds()),
    ];
    for (target, list) in more {
        seeds.extend(list.into_iter().map(|(name, input)| (target, name, input)));
    }
    seeds
}

/// A seed input for each shape of `recover_image` (and for `codec`).
fn image_seeds() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let (base, _) = base_pool();
    let geometry = Geometry::for_segment_size(SEGMENT_BYTES).expect("a valid segment size");
    let segment0 = u32::try_from(geometry.segment_offset(SegmentId(0))).unwrap_or(0);
    let mut header_patch = vec![0u8];
    header_patch.extend_from_slice(&segment0.to_le_bytes());
    header_patch.extend_from_slice(&[4, 0xFF, 0xFF, 0xFF, 0xFF]);
    let mut tail_flip = vec![1u8];
    tail_flip.extend_from_slice(&((segment0 + 64) * 8 + 3).to_le_bytes());
    let mut raw = vec![2u8];
    raw.extend_from_slice(&base[..SUPERBLOCK_BYTES]);
    let mut record = Vec::new();
    let offset = geometry.data_start(SegmentId(0));
    record.extend_from_slice(&offset.to_le_bytes());
    record.extend_from_slice(&1u64.to_le_bytes());
    record.extend_from_slice(&[0x5e; 16]);
    let ctx = RecordContext { offset, segment_seq: 1, set_uuid: Uuid([0x5e; 16]) };
    encode_record(&mut record, RecordKind::Put, Lsn(7), b"key", b"value", &ctx);
    vec![
        ("recover_image", "patch-segment-header", header_patch),
        ("recover_image", "flip-tail-word", tail_flip),
        ("recover_image", "raw-superblock", raw),
        ("recover_image", "unchanged", vec![0]),
        ("codec", "record", record),
        ("codec", "superblock", [&[0u8; 32][..], &base[..SUPERBLOCK_BYTES]].concat()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_pool_is_deterministic_and_recovers_to_its_model() {
        let (image, model) = base_pool();
        let (again, _) = build_base_pool().unwrap();
        assert_eq!(image, &again, "the base pool depends on something outside the input");
        let db = Db::open_on(as_medium(&image_medium(image.clone())), small_options()).unwrap();
        assert!(db.recovery_report().clean_shutdown);
        assert_eq!(db_contents(&db).unwrap(), model.contents());
        assert!(model.len() > 40);
    }

    #[test]
    fn seeds_run_clean() {
        for (target, _, input) in image_seeds() {
            match target {
                "codec" => codec(&input),
                _ => recover_image(&input),
            }
        }
        codec(&[]);
        recover_image(&[]);
        recover_image(&[1]);
    }

    #[test]
    fn unformatted_image_does_not_open() {
        let medium = Arc::new(SimMedium::new(BASE_POOL_BYTES));
        let opened = Db::open_on(as_medium(&medium), small_options());
        assert!(matches!(opened, Err(mcstore_engine::Error::UnsupportedFormat { .. })));
    }
}
