//! `mcstore check`: a full verifying scan that reports damage; `--repair` opens writable so
//! replicas repair what they hold, and `--salvage` drops what none holds.
//!
//! INVARIANT: without `--repair` nothing is written: the pool (or its replica set) is scanned
//! directly on read-only mappings without the index snapshot, so every committed record is
//! verified.
//! Exit 2 whenever damage remains after the command.

use std::path::Path;
use std::sync::Arc;

use mcstore_engine::Error;
use mcstore_pmem::{MapOptions, MappedMedium, Medium, MemberId, ModeRequest};
use mcstore_recovery::RecoveryReport;
use mcstore_recovery::replica::{OpenSetOptions, ReplicaSet};
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
    let report = if args.repair { repair(args, output)? } else { scan_read_only(args, output)? };
    let remaining = if report.salvaged {
        // Salvage dropped the damage; what it could not clean stays.
        !report.salvage_pinned.is_empty()
    } else {
        !report.damage.is_empty()
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

/// Map `path` read-only as member `member`.
fn map_read_only(args: &CheckArgs, path: &Path, member: u8) -> Result<MappedMedium> {
    let len = std::fs::metadata(path).map_err(|e| Failure::new(path.display(), e))?.len();
    let map = MapOptions::new()
        .mode(ModeRequest::from(mcstore_engine::Mode::from(args.pool.mode)))
        .max_len(len.max(4096))
        .member(MemberId(member))
        .read_only(true);
    MappedMedium::open(path, &map).map_err(|e| Failure::pool(path, e))
}

/// The full verifying scan on read-only mappings: of the pool, or of its replica set (opened
/// read-only: members checked against the set table, nothing reconciled or repaired; a read
/// the primary fails is served by a replica that holds the bytes).
fn scan_read_only(args: &CheckArgs, output: &Output) -> Result<RecoveryReport> {
    let path = &args.pool.path;
    let primary = map_read_only(args, path, 0)?;
    let mode = primary.mode().as_str().to_string();
    let medium: Arc<dyn Medium> = if args.pool.replicas.is_empty() {
        Arc::new(primary)
    } else {
        let mut members: Vec<Option<Arc<dyn Medium>>> = vec![Some(Arc::new(primary))];
        for (i, replica) in args.pool.replicas.iter().enumerate() {
            let member = u8::try_from(i + 1).unwrap_or(u8::MAX);
            members.push(Some(Arc::new(map_read_only(args, replica, member)?)));
        }
        let options = OpenSetOptions { read_only: true, ..OpenSetOptions::default() };
        let (set, _) = ReplicaSet::open(members, options)
            .map_err(|e| Failure::new("opening the replica set", e))?;
        set.medium()
    };
    let bar = output.bar(0, "checking", false);
    let hook = bar.clone();
    let options = ScanOptions {
        on_progress: Some(Arc::new(move |p: scan::Progress| {
            hook.set_length(u64::from(p.segments_total));
            hook.set_position(u64::from(p.segments_done));
        })),
        mode,
        ..ScanOptions::default()
    };
    let scanned = scan::recover(medium.as_ref(), &options);
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
