//! `mcstore scrub`: read every live byte of every member through the machine-check-safe copy;
//! replicas heal what they can; report the rest (exit 2 when damage remains).

use mcstore_engine::Error;
use serde_json::json;

use crate::failure::{Failure, Outcome, Result};
use crate::output::Output;
use crate::pool::PoolArgs;
use crate::render::{recovery_json, recovery_text, scrub_json, scrub_text};

/// Read every live byte and verify every record (exit 2 on damage). Without replicas, poisoned
/// pages found are added to the pool's `.badblocks` sidecar.
#[derive(Debug, clap::Args)]
pub struct ScrubArgs {
    #[command(flatten)]
    pub pool: PoolArgs,
}

/// Run `scrub`.
pub fn run(args: &ScrubArgs, output: &Output) -> Result {
    let db = match args.pool.open_writable(args.pool.options(output)) {
        Ok(db) => db,
        Err(Error::Damaged(report)) => {
            // The open's own scan met damage no replica repaired: that is the finding.
            let document = json!({
                "path": args.pool.path,
                "clean": false,
                "opened": false,
                "recovery": recovery_json(&report),
            });
            output.emit(&document, || {
                format!(
                    "{}\nDAMAGE FOUND at open (run `mcstore check` for details)",
                    recovery_text(&report)
                )
            });
            return Ok(Outcome::Damage);
        }
        Err(error) => return Err(Failure::pool(&args.pool.path, error)),
    };
    let bar = output.bar(0, "scrubbing", true);
    let scrubbed = db.scrub_with_progress(|p| {
        bar.set_length(p.bytes_total);
        bar.set_position(p.bytes_done);
    });
    bar.finish_and_clear();
    let report = scrubbed.map_err(|e| Failure::new("scrub", e))?;
    db.close().map_err(|e| Failure::new("closing the pool", e))?;
    let damaged = !report.unrepaired().is_empty() || !report.corrupt.is_empty();
    let mut document = scrub_json(&report);
    document["path"] = json!(args.pool.path);
    document["clean"] = json!(!damaged);
    document["opened"] = json!(true);
    output.emit(&document, || {
        format!("{}\n{}", scrub_text(&report), if damaged { "DAMAGE FOUND" } else { "clean" })
    });
    Ok(if damaged { Outcome::Damage } else { Outcome::Ok })
}
