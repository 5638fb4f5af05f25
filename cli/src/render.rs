//! The engine's reports as JSON documents and as text: the recovery report, a scrub report,
//! the store's stats. Field names follow the engine's (docs/cli.md lists the shapes).

use mcstore_engine::Stats;
use mcstore_recovery::RecoveryReport;
use mcstore_recovery::replica::{Quarantined, ScrubReport};
use mcstore_recovery::scan::{Damage, OpenKind};
use serde_json::{Value, json};

/// One damaged range.
pub fn damage_json(damage: &Damage) -> Value {
    json!({
        "kind": format!("{:?}", damage.kind),
        "offset": damage.offset,
        "len": damage.len,
        "segment": damage.segment.map(|s| s.0),
        "detail": damage.detail,
    })
}

/// Segments holding unrepaired damage: what a salvage open (`check --repair --salvage`) would
/// clean or pin, in id order.
pub fn salvage_candidates(report: &RecoveryReport) -> Vec<u32> {
    let mut segments: Vec<u32> =
        report.damage.iter().filter_map(|d| d.segment.map(|s| s.0)).collect();
    segments.sort_unstable();
    segments.dedup();
    segments
}

/// The recovery report.
pub fn recovery_json(report: &RecoveryReport) -> Value {
    json!({
        "clean_shutdown": report.clean_shutdown,
        "open_kind": match report.open_kind { OpenKind::Full => "full", OpenKind::Fast => "fast" },
        "open_reason": report.open_reason,
        "mode": report.mode,
        "superblock_generation": report.superblock_generation,
        "superblock_slot": report.superblock_slot,
        "records": report.records,
        "entries": report.entries,
        "bytes_scanned": report.bytes_scanned,
        "segments": report.segments,
        "segments_in_use": report.segments_in_use,
        "torn_inits": report.torn_inits,
        "damage_found": report.damage_found,
        "damage_repaired": report.damage_repaired,
        "lost_ranges": report.lost_ranges.iter().map(|&(o, l)| json!([o, l])).collect::<Vec<_>>(),
        "damage": report.damage.iter().map(damage_json).collect::<Vec<_>>(),
        "poisoned": report.damage.iter()
            .filter(|d| matches!(d.kind, mcstore_recovery::scan::DamageKind::Media))
            .map(|d| json!([d.offset, d.len])).collect::<Vec<_>>(),
        "salvage_candidates": salvage_candidates(report),
        "read_only_reason": report.read_only_reason,
        "duration_ms": report.duration.as_secs_f64() * 1e3,
        "salvaged": report.salvaged,
        "salvage_reclaimed": report.salvage_reclaimed.iter().map(|s| s.0).collect::<Vec<_>>(),
        "salvage_pinned": report.salvage_pinned.iter()
            .map(|(s, why)| json!({"segment": s.0, "reason": why})).collect::<Vec<_>>(),
    })
}

/// The recovery report as text (the engine's own rendering, plus salvage candidates).
pub fn recovery_text(report: &RecoveryReport) -> String {
    let mut text = report.to_string();
    let candidates = salvage_candidates(report);
    if !candidates.is_empty() {
        text.push_str(&format!(
            "\n  salvage candidates (segments): {candidates:?} — `mcstore check --repair --salvage` drops what no replica holds"
        ));
    }
    text
}

fn range_json(range: &Quarantined) -> Value {
    json!({ "member": range.member.0, "offset": range.offset, "len": range.len })
}

/// A scrub report.
pub fn scrub_json(report: &ScrubReport) -> Value {
    json!({
        "members": report.members,
        "bytes_scanned": report.bytes_scanned,
        "findings": report.findings.iter().map(|f| {
            let mut v = range_json(&f.range);
            v["healed_from"] = json!(f.healed_from.map(|m| m.0));
            v
        }).collect::<Vec<_>>(),
        "repaired": report.repaired(),
        "unrepaired": report.unrepaired().iter().map(range_json).collect::<Vec<_>>(),
        "corrupt": report.corrupt.iter().map(range_json).collect::<Vec<_>>(),
        "unmatched_notices": report.unmatched_notices,
        "duration_ms": report.duration.as_secs_f64() * 1e3,
    })
}

/// A scrub report as text.
pub fn scrub_text(report: &ScrubReport) -> String {
    let mut text = format!(
        "scrubbed {} member(s), {} bytes in {:.3?}: {} poisoned unit(s) found, {} repaired, {} unrepaired, {} corrupt range(s)",
        report.members,
        report.bytes_scanned,
        report.duration,
        report.findings.len(),
        report.repaired(),
        report.unrepaired().len(),
        report.corrupt.len(),
    );
    for finding in &report.findings {
        let r = finding.range;
        match finding.healed_from {
            Some(from) => text.push_str(&format!(
                "\n  repaired member {} [{}, +{}) from member {}",
                r.member.0, r.offset, r.len, from.0
            )),
            None => text.push_str(&format!(
                "\n  UNREPAIRED member {} [{}, +{})",
                r.member.0, r.offset, r.len
            )),
        }
    }
    for r in &report.corrupt {
        text.push_str(&format!("\n  CORRUPT member {} [{}, +{})", r.member.0, r.offset, r.len));
    }
    text
}

/// The space and index figures of `stats()`.
pub fn stats_json(stats: &Stats) -> Value {
    json!({
        "keys": stats.keys,
        "pool_bytes": stats.pool_bytes,
        "max_pool_bytes": stats.max_pool_bytes,
        "segment_size_bytes": stats.segment_size_bytes,
        "segments_total": stats.segments_total,
        "segments_free": stats.segments_free,
        "segments_quarantined": stats.segments_quarantined,
        "live_bytes": stats.live_bytes,
        "used_bytes": stats.used_bytes,
        "space_amplification": finite(stats.space_amplification),
        "index_bytes": stats.index_bytes,
        "index_bytes_per_key": stats.index_bytes_per_key,
        "mode": stats.mode,
        "read_only": stats.read_only,
        "failed": stats.failed,
        "salvaged": stats.salvaged,
        "replica_members": stats.replica_members,
        "replicas_not_in_sync": stats.replicas_not_in_sync,
    })
}

/// JSON has no NaN or infinity: those become null.
pub fn finite(value: f64) -> Value {
    if value.is_finite() { json!(value) } else { Value::Null }
}

#[cfg(test)]
mod tests {
    use mcstore_recovery::format::SegmentId;
    use mcstore_recovery::scan::DamageKind;

    use super::*;

    #[test]
    fn damage_lists_ranges_poison_and_candidates() {
        let report = RecoveryReport {
            damage: vec![
                Damage {
                    kind: DamageKind::Media,
                    offset: 8192,
                    len: 64,
                    segment: Some(SegmentId(3)),
                    detail: String::new(),
                },
                Damage {
                    kind: DamageKind::BadRecord,
                    offset: 9000,
                    len: 100,
                    segment: Some(SegmentId(1)),
                    detail: "crc".into(),
                },
            ],
            ..RecoveryReport::default()
        };
        let v = recovery_json(&report);
        assert_eq!(v["damage"][1]["kind"], "BadRecord");
        assert_eq!(v["damage"][0]["segment"], 3);
        assert_eq!(v["poisoned"], json!([[8192, 64]]));
        assert_eq!(v["salvage_candidates"], json!([1, 3]));
        assert!(recovery_text(&report).contains("salvage candidates"));
        assert_eq!(finite(f64::NAN), Value::Null);
    }
}
