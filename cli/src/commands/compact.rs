//! `mcstore compact`: one compaction pass (`Db::compact`) and what it reclaimed.

use serde_json::json;

use crate::failure::{Failure, Outcome, Result};
use crate::output::Output;
use crate::pool::PoolArgs;
use crate::render::finite;
use crate::size::human_bytes;

/// Clean segments with little live data and print what was reclaimed.
#[derive(Debug, clap::Args)]
pub struct CompactArgs {
    #[command(flatten)]
    pub pool: PoolArgs,
}

/// Run `compact`.
pub fn run(args: &CompactArgs, output: &Output) -> Result {
    let db = args
        .pool
        .open_writable(args.pool.options(output))
        .map_err(|e| Failure::pool(&args.pool.path, e))?;
    let before = db.stats();
    let spinner = output.spinner("compacting");
    let compacted = db.compact();
    spinner.finish_and_clear();
    let summary = compacted.map_err(|e| Failure::new("compaction", e))?;
    let after = db.stats();
    db.close().map_err(|e| Failure::new("closing the pool", e))?;
    let reclaimed = before.used_bytes.saturating_sub(after.used_bytes);
    let document = json!({
        "path": args.pool.path,
        "segments_reclaimed": summary.segments_reclaimed,
        "records_moved": summary.records_moved,
        "bytes_moved": summary.bytes_moved,
        "tombstones_dropped": summary.tombstones_dropped,
        "unreadable_segments": summary.unreadable_segments,
        "skipped_for_space": summary.skipped_for_space,
        "skipped_no_gain": summary.skipped_no_gain,
        "bytes_reclaimed": reclaimed,
        "used_bytes_before": before.used_bytes,
        "used_bytes_after": after.used_bytes,
        "live_bytes": after.live_bytes,
        "space_amplification_before": finite(before.space_amplification),
        "space_amplification_after": finite(after.space_amplification),
    });
    output.emit(&document, || {
        let mut text = format!(
            "compacted {}: {} segment(s) reclaimed, {} record(s) moved ({}), {} tombstone(s) dropped\n",
            args.pool.path.display(),
            summary.segments_reclaimed,
            summary.records_moved,
            human_bytes(summary.bytes_moved),
            summary.tombstones_dropped,
        );
        text.push_str(&format!(
            "  used {} -> {} ({} reclaimed), space amplification {:.2} -> {:.2}",
            human_bytes(before.used_bytes),
            human_bytes(after.used_bytes),
            human_bytes(reclaimed),
            before.space_amplification,
            after.space_amplification,
        ));
        if summary.unreadable_segments > 0 {
            text.push_str(&format!(
                "\n  {} segment(s) kept: a value in them could not be read (run `mcstore scrub`)",
                summary.unreadable_segments
            ));
        }
        text
    });
    Ok(Outcome::Ok)
}
