//! `mcstore check`: a full verifying scan that reports damage; `--repair` opens writable so
//! replicas repair what they hold, and `--salvage` drops what none holds.
//!
//! INVARIANT: without `--repair` nothing is written: a pool without replicas is scanned
//! directly (read-only mapping, no index snapshot, so every committed record is verified).
//! Exit 2 whenever damage remains after the command.

use std::sync::Arc;

use mcstore_engine::Error;
use mcstore_pmem::{MapOptions, MappedMedium, ModeRequest};
use mcstore_recovery::RecoveryReport;
use mcstore_recovery::scan::{self, ScanOptions};
use serde_json::json;

use crate::failure::{Failure, Outcome, Result};
use crate::output::Output;
use crate::pool::PoolArgs;
use crate::render::{damage_json, recovery_json, recovery_text};

/// Verify every committed record of a pool and report damage (exit 2 if any remains).
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub pool: PoolArgs,
    /// Open writable: replicas repair the damage they hold a good copy of.
    #[arg(long)]
    pub repair: bool,
    /// With --repair: drop damage no replica holds (an older version of a key may reappear;
    /// see `Options::salvage`).
    #[arg(long, requires = "repair")]
    pub salvage: bool,
}

/// Run `check`.
pub fn run(args: &CheckArgs, output: &Output) -> Result {
    let (report, latched) = if args.repair {
        (repair(args, output)?, false)
    } else if args.pool.replicas.is_empty() {
        (scan_read_only(args, output)?, false)
    } else {
        // A replica set is checked through the store (read-only): the set's open reconciles
        // the members; damage latches the store instead of refusing the open.
        let db = args.pool.open_read_only(output)?;
        let failed = db.stats().failed;
        (db.recovery_report().clone(), failed)
    };
    let remaining = if report.salvaged {
        // Salvage dropped the damage; what it could not clean stays.
        !report.salvage_pinned.is_empty()
    } else {
        !report.damage.is_empty() || latched
    };
    let document = json!({
        "path": args.pool.path,
        "repair": args.repair,
        "salvage": args.salvage,
        "clean": !remaining,
        "damage": report.damage.iter().map(damage_json).collect::<Vec<_>>(),
        "repaired": report.damage_repaired,
        "dropped": if report.salvaged { report.damage.len() } else { 0 },
        "recovery": recovery_json(&report),
    });
    output.emit(&document, || {
        let mut text = recovery_text(&report);
        text.push('\n');
        if report.damage_repaired > 0 {
            text.push_str(&format!("repaired {} range(s) from replicas\n", report.damage_repaired));
        }
        if report.salvaged {
            text.push_str(&format!(
                "salvage dropped {} damaged range(s): reclaimed segments {:?}, pinned {:?}\n",
                report.damage.len(),
                report.salvage_reclaimed.iter().map(|s| s.0).collect::<Vec<_>>(),
                report.salvage_pinned,
            ));
        }
        text.push_str(if remaining { "DAMAGE FOUND" } else { "clean" });
        text
    });
    Ok(if remaining { Outcome::Damage } else { Outcome::Ok })
}

/// The full verifying scan of a pool without replicas, on a read-only mapping.
fn scan_read_only(args: &CheckArgs, output: &Output) -> Result<RecoveryReport> {
    let path = &args.pool.path;
    let len = std::fs::metadata(path).map_err(|e| Failure::new(path.display(), e))?.len();
    let map = MapOptions::new()
        .mode(ModeRequest::from(mcstore_engine::Mode::from(args.pool.mode)))
        .max_len(len.max(4096))
        .read_only(true);
    let medium = MappedMedium::open(path, &map).map_err(|e| Failure::pool(path, e))?;
    let bar = output.bar(0, "checking", false);
    let hook = bar.clone();
    let options = ScanOptions {
        on_progress: Some(Arc::new(move |p: scan::Progress| {
            hook.set_length(u64::from(p.segments_total));
            hook.set_position(u64::from(p.segments_done));
        })),
        mode: medium.mode().as_str().to_string(),
        ..ScanOptions::default()
    };
    let scanned = scan::recover(&medium, &options);
    bar.finish_and_clear();
    match scanned {
        Ok(recovered) => Ok(recovered.report),
        Err(mcstore_recovery::Error::Damaged(report)) => Ok(*report),
        Err(error) => Err(Failure::pool(path, error)),
    }
}

/// Open writable with the full scan (the index snapshot removed first, which only forces the
/// verifying scan a writable open would make the snapshot stale for anyway).
fn repair(args: &CheckArgs, output: &Output) -> Result<RecoveryReport> {
    let path = &args.pool.path;
    if !path.exists() {
        return Err(Failure(format!("{}: not found", path.display())));
    }
    let snapshot = scan::snapshot_path(path);
    if snapshot.exists() {
        std::fs::remove_file(&snapshot)
            .map_err(|e| Failure::new(format!("removing {}", snapshot.display()), e))?;
    }
    let options = args.pool.options(output).salvage(args.salvage);
    match args.pool.open_writable(options) {
        Ok(db) => {
            let report = db.recovery_report().clone();
            db.close().map_err(|e| Failure::new("closing the pool", e))?;
            Ok(report)
        }
        Err(Error::Damaged(report)) => Ok(*report),
        Err(error) => Err(Failure::pool(path, error)),
    }
}
