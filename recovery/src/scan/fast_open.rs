//! The choice between the fast open and the full verifying scan (`docs/format.md`, "Clean
//! shutdown and the fast open"): every condition the fast open needs, checked in order, and the
//! reason given either way.
//!
//! INVARIANT: a snapshot is returned only after a clean shutdown, with the unsafe-shutdown count
//! recorded and unchanged (when the caller configured one), clean headers, no known bad blocks,
//! and a snapshot that decodes and matches this set and every in-use segment's sequence and tail.

use super::options::ScanOptions;
use super::snapshot::{IndexSnapshot, SegmentMark};
use crate::format::{Geometry, Superblock};

/// Decide between the fast open and the full verifying scan (`docs/format.md`, "Clean shutdown
/// and the fast open"): the snapshot to load, if every condition holds, and the reason either
/// way.
pub(super) fn fast_open(
    opts: &ScanOptions,
    sb: &Superblock,
    headers_clean: bool,
    bad_blocks: usize,
    marks: &[SegmentMark],
    g: &Geometry,
) -> (Option<IndexSnapshot>, String) {
    if !sb.clean_shutdown {
        return (None, "unclean shutdown: the last opener did not close the pool".into());
    }
    let count = match (&opts.shutdown.unsafe_shutdown_count, sb.unsafe_shutdown_count) {
        (None, _) => "no unsafe-shutdown count configured".to_string(),
        (Some(Err(why)), _) => {
            return (
                None,
                format!("clean shutdown, but the unsafe-shutdown count is unknown: {why}"),
            );
        }
        (Some(Ok(_)), None) => {
            return (
                None,
                "clean shutdown, but no unsafe-shutdown count was recorded at it".into(),
            );
        }
        (Some(Ok(now)), Some(then)) if *now != then => {
            return (None, format!("the device's unsafe-shutdown count changed ({then} -> {now})"));
        }
        (Some(Ok(now)), Some(_)) => format!("unsafe-shutdown count unchanged ({now})"),
    };
    if !headers_clean {
        return (None, "clean shutdown, but the superblock or segment headers show damage".into());
    }
    // Known bad blocks are media damage the platform reported: the full scan meets them (and
    // repairs or reports them) before the store is used.
    if bad_blocks > 0 {
        return (None, format!("clean shutdown, but the medium lists {bad_blocks} bad range(s)"));
    }
    let bytes = match &opts.shutdown.snapshot {
        None => return (None, "clean shutdown, but the pool has no index snapshot path".into()),
        Some(Err(why)) => {
            return (None, format!("clean shutdown, but no index snapshot: {why}"));
        }
        Some(Ok(bytes)) => bytes,
    };
    match IndexSnapshot::decode(bytes)
        .and_then(|snapshot| snapshot.check_against(&sb.set_uuid, marks, g).map(|()| snapshot))
    {
        Ok(snapshot) => (
            Some(snapshot),
            format!(
                "clean shutdown, {count}, the index snapshot matches every segment (records are \
                 verified when read)"
            ),
        ),
        Err(why) => (None, format!("clean shutdown, but the index snapshot is not usable: {why}")),
    }
}
