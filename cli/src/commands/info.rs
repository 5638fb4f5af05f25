//! `mcstore info`: geometry, mode, members, keys, space, index cost, last shutdown and the
//! recovery summary of a pool, opened read-only.

use mcstore_recovery::format::MemberState;
use serde_json::{Value, json};

use crate::failure::{Outcome, Result};
use crate::output::Output;
use crate::pool::PoolArgs;
use crate::render::{recovery_json, recovery_text, stats_json};
use crate::size::human_bytes;

/// Describe a pool (read-only).
#[derive(Debug, clap::Args)]
pub struct InfoArgs {
    #[command(flatten)]
    pub pool: PoolArgs,
}

fn state_name(state: MemberState) -> &'static str {
    match state {
        MemberState::InSync => "in-sync",
        MemberState::Stale => "stale",
        MemberState::Resilvering => "resilvering",
    }
}

/// Run `info`.
pub fn run(args: &InfoArgs, output: &Output) -> Result {
    let db = args.pool.open_read_only(output)?;
    let stats = db.stats();
    let report = db.recovery_report().clone();
    let paths: Vec<&std::path::Path> = std::iter::once(args.pool.path.as_path())
        .chain(args.pool.replicas.iter().map(|p| p.as_path()))
        .collect();
    let states: Vec<&'static str> = match db.replica_set() {
        Some(set) => set.states().into_iter().map(state_name).collect(),
        None => vec!["in-sync"],
    };
    let members: Vec<Value> = states
        .iter()
        .enumerate()
        .map(|(i, state)| json!({ "member": i, "path": paths.get(i), "state": state }))
        .collect();
    drop(db);
    let mut document = json!({ "path": args.pool.path });
    if let (Value::Object(map), Value::Object(more)) = (&mut document, stats_json(&stats)) {
        map.extend(more);
    }
    document["members"] = json!(members);
    document["clean_shutdown"] = json!(report.clean_shutdown);
    document["recovery"] = recovery_json(&report);
    output.emit(&document, || {
        let mut text = format!(
            "pool {}\n  mode {}, {} of {} max, {} segments of {} ({} free, {} quarantined)\n",
            args.pool.path.display(),
            stats.mode,
            human_bytes(stats.pool_bytes),
            human_bytes(stats.max_pool_bytes),
            stats.segments_total,
            human_bytes(stats.segment_size_bytes),
            stats.segments_free,
            stats.segments_quarantined,
        );
        text.push_str(&format!(
            "  {} keys, live {}, used {}, space amplification {:.2}, index {} ({} B/key)\n",
            stats.keys,
            human_bytes(stats.live_bytes),
            human_bytes(stats.used_bytes),
            stats.space_amplification,
            human_bytes(stats.index_bytes as u64),
            stats.index_bytes_per_key,
        ));
        for (i, state) in states.iter().enumerate() {
            let at = paths.get(i).map_or_else(|| "?".into(), |p| p.display().to_string());
            text.push_str(&format!("  member {i}: {at} ({state})\n"));
        }
        text.push_str(&format!(
            "  last shutdown {}{}\n",
            if report.clean_shutdown { "clean" } else { "NOT clean" },
            if stats.failed {
                "; the store is latched failed (damage: run `mcstore check`)"
            } else {
                ""
            }
        ));
        text.push_str(&recovery_text(&report));
        text
    });
    Ok(Outcome::Ok)
}
