//! Renders a run: the figures table (each engine's figure and mcstore's ratio to the best peer),
//! the latency table, the targets with ok/MISSED, as Markdown (also what the console shows) and
//! as JSON (hand-written: a flat array of figures and one of targets).
//!
//! Ratios are oriented so that > 1 always means mcstore is better, whatever the unit's direction.

use std::fmt::Write as _;

use crate::results::{Figure, Results, Unit};
use crate::targets::{Judged, PEERS_AND_PMDK, Verdict};

/// A figure as a table cell: 3 significant digits, with k/M suffixes for large values.
pub fn cell(value: Option<f64>, unit: Unit) -> String {
    let Some(v) = value else { return "n/a".to_string() };
    match unit {
        Unit::OpsPerSec | Unit::RecordsPerSec if v >= 1e6 => format!("{:.2} M", v / 1e6),
        Unit::OpsPerSec | Unit::RecordsPerSec if v >= 1e3 => format!("{:.1} k", v / 1e3),
        Unit::OpsPerSec | Unit::RecordsPerSec => format!("{v:.0}"),
        Unit::NsPerOp => format!("{v:.1}"),
        _ => format!("{v:.3}"),
    }
}

fn oriented_ratio(mcstore: f64, other: f64, unit: Unit) -> Option<f64> {
    if mcstore <= 0.0 || other <= 0.0 {
        return None;
    }
    Some(if unit.higher_is_better() { mcstore / other } else { other / mcstore })
}

/// The figures table in Markdown.
pub fn figures_markdown(results: &Results) -> String {
    let engines = results.engines();
    let mut md = String::from("| workload | case | unit |");
    for e in &engines {
        let _ = write!(md, " {e} |");
    }
    md.push_str(" best peer | mcstore vs best peer |\n|---|---|---|");
    md.push_str(&"---:|".repeat(engines.len()));
    md.push_str("---|---:|\n");
    for (workload, case, unit) in results.rows() {
        let _ = write!(md, "| {workload} | {case} | {} |", unit.label());
        for e in &engines {
            let figure = results
                .figures
                .iter()
                .find(|f| f.workload == workload && f.case == case && &f.engine == e);
            let text = match figure {
                Some(f) => cell(f.value, unit),
                None => String::new(),
            };
            let _ = write!(md, " {text} |");
        }
        let best = results.best_of(workload, &case, &PEERS_AND_PMDK);
        let mcstore = results.value(workload, &case, "mcstore");
        match (best, mcstore) {
            (Some((name, v)), Some(m)) => {
                let ratio = oriented_ratio(m, v, unit).map_or("n/a".into(), |r| format!("{r:.2}×"));
                let _ = writeln!(md, " {name} | {ratio} |");
            }
            (Some((name, _)), None) => {
                let _ = writeln!(md, " {name} | n/a |");
            }
            (None, _) => md.push_str(" – | – |\n"),
        }
    }
    md
}

/// The sampled latency table (p50 / p99 in µs) in Markdown, for per-operation figures.
pub fn latency_markdown(results: &Results) -> String {
    let engines = results.engines();
    let mut md = String::from("| workload | case |");
    for e in &engines {
        let _ = write!(md, " {e} p50 / p99 µs |");
    }
    md.push_str("\n|---|---|");
    md.push_str(&"---:|".repeat(engines.len()));
    md.push('\n');
    for (workload, case, _) in results.rows() {
        let with_latency: Vec<&Figure> = results
            .figures
            .iter()
            .filter(|f| f.workload == workload && f.case == case && f.p50_ns.is_some())
            .collect();
        if with_latency.is_empty() {
            continue;
        }
        let _ = write!(md, "| {workload} | {case} |");
        for e in &engines {
            let text = with_latency
                .iter()
                .find(|f| &f.engine == e)
                .map(|f| {
                    format!(
                        "{:.2} / {:.2}",
                        f.p50_ns.unwrap_or(0.0) / 1e3,
                        f.p99_ns.unwrap_or(0.0) / 1e3
                    )
                })
                .unwrap_or_default();
            let _ = write!(md, " {text} |");
        }
        md.push('\n');
    }
    md
}

/// The targets table in Markdown.
pub fn targets_markdown(judged: &[Judged]) -> String {
    let mut md = String::from(
        "| target | mcstore | compared with | ratio | plain copy, same ratio | verdict |\n|---|---:|---|---:|---|---|\n",
    );
    for j in judged {
        let value = j.value.map_or("n/a".to_string(), |v| format!("{v:.4e}"));
        let reference =
            j.reference.as_ref().map_or("–".to_string(), |(name, v)| format!("{name}: {v:.4e}"));
        let ratio = j.ratio.map_or("n/a".to_string(), |r| format!("{r:.3}"));
        let own =
            j.machine_plain.as_ref().map_or("–".to_string(), |(c, r)| format!("{c}: {r:.3}"));
        let verdict = match &j.verdict {
            Verdict::Ok => "ok".to_string(),
            Verdict::Missed => "MISSED".to_string(),
            Verdict::NotAvailable(why) => format!("n/a: {why}"),
        };
        let _ =
            writeln!(md, "| {} | {value} | {reference} | {ratio} | {own} | {verdict} |", j.label);
    }
    md
}

/// Notes attached to figures (unavailable peers, remarks), one Markdown bullet each.
pub fn notes_markdown(results: &Results) -> String {
    let mut md = String::new();
    for f in &results.figures {
        if let Some(note) = &f.note {
            let _ = writeln!(md, "- {} {} / {}: {note}", f.workload, f.case, f.engine);
        }
    }
    md
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_number(x: Option<f64>) -> String {
    match x {
        Some(v) if v.is_finite() => format!("{v}"),
        _ => "null".to_string(),
    }
}

/// The run as JSON: `{"meta": {...}, "figures": [...], "targets": [...]}`.
pub fn json(results: &Results, judged: &[Judged], meta: &[(&str, String)]) -> String {
    let mut out = String::from("{\n  \"meta\": {");
    let meta_items: Vec<String> =
        meta.iter().map(|(k, v)| format!("{}: {}", json_string(k), json_string(v))).collect();
    out.push_str(&meta_items.join(", "));
    out.push_str("},\n  \"figures\": [\n");
    let figures: Vec<String> = results
        .figures
        .iter()
        .map(|f| {
            format!(
                "    {{\"workload\": {}, \"case\": {}, \"engine\": {}, \"value\": {}, \"unit\": {}, \"p50_ns\": {}, \"p99_ns\": {}, \"note\": {}}}",
                json_string(f.workload),
                json_string(&f.case),
                json_string(&f.engine),
                json_number(f.value),
                json_string(f.unit.label()),
                json_number(f.p50_ns),
                json_number(f.p99_ns),
                f.note.as_deref().map_or("null".to_string(), json_string),
            )
        })
        .collect();
    out.push_str(&figures.join(",\n"));
    out.push_str("\n  ],\n  \"targets\": [\n");
    let targets: Vec<String> = judged
        .iter()
        .map(|j| {
            let (verdict, why) = match &j.verdict {
                Verdict::Ok => ("ok", None),
                Verdict::Missed => ("MISSED", None),
                Verdict::NotAvailable(why) => ("n/a", Some(why.as_str())),
            };
            format!(
                "    {{\"target\": {}, \"mcstore\": {}, \"reference\": {}, \"reference_value\": {}, \"ratio\": {}, \"machine_case\": {}, \"machine_ratio\": {}, \"verdict\": {}, \"why\": {}}}",
                json_string(&j.label),
                json_number(j.value),
                j.reference.as_ref().map_or("null".to_string(), |(n, _)| json_string(n)),
                json_number(j.reference.as_ref().map(|(_, v)| *v)),
                json_number(j.ratio),
                j.machine_plain.as_ref().map_or("null".to_string(), |(c, _)| json_string(c)),
                json_number(j.machine_plain.as_ref().map(|(_, r)| *r)),
                json_string(verdict),
                why.map_or("null".to_string(), json_string),
            )
        })
        .collect();
    out.push_str(&targets.join(",\n"));
    out.push_str("\n  ]\n}\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Results {
        let mut r = Results::default();
        r.extend([
            Figure::new("W1", "put", "mcstore", 2_000_000.0, Unit::OpsPerSec),
            Figure::new("W1", "put", "rocksdb", 50_000.0, Unit::OpsPerSec),
            Figure::unavailable("W1", "put", "sled", Unit::OpsPerSec, "did not \"build\""),
            Figure::new("W9", "space", "mcstore", 2.0, Unit::SpaceRatio),
            Figure::new("W9", "space", "rocksdb", 1.0, Unit::SpaceRatio),
        ]);
        r
    }

    #[test]
    fn figures_table_orients_ratios() {
        let md = figures_markdown(&sample());
        assert!(
            md.contains("| W1 | put | ops/s | 2.00 M | 50.0 k | n/a | rocksdb | 40.00× |"),
            "{md}"
        );
        assert!(
            md.contains("| W9 | space | space× | 2.000 | 1.000 |  | rocksdb | 0.50× |"),
            "{md}"
        );
    }

    #[test]
    fn targets_show_a_cold_copy_s_ratio_beside_w7_gets() {
        let mut r = Results::default();
        r.extend([
            Figure::new("W7", &crate::case::w7_get(4096), "mcstore", 2.0, Unit::GbPerSec),
            Figure::new("machine", crate::case::MEMCPY, "machine", 8.0, Unit::GbPerSec),
            Figure::new(
                "machine",
                &crate::case::memcpy_pieces(4096),
                "machine",
                4.0,
                Unit::GbPerSec,
            ),
        ]);
        let judged = crate::targets::judge(&r);
        let md = targets_markdown(&judged);
        let cold = crate::case::memcpy_pieces(4096);
        assert!(md.contains(&format!("| 0.250 | {cold}: 0.500 | MISSED |")), "{md}");
        assert!(md.contains("| n/a | – | n/a: "), "targets with no machine case show a dash: {md}");
        let j = json(&r, &judged, &[]);
        assert!(
            j.contains(&format!(
                "\"machine_case\": \"{cold}\", \"machine_ratio\": 0.5, \"verdict\""
            )),
            "{j}"
        );
        assert!(j.contains("\"machine_case\": null, \"machine_ratio\": null"), "{j}");
    }

    #[test]
    fn json_escapes_and_keeps_nulls() {
        let j = json(&sample(), &[], &[("scale", "0.1".into())]);
        assert!(j.contains("\"note\": \"did not \\\"build\\\"\""));
        assert!(j.contains("\"value\": null"));
        assert!(j.contains("\"meta\": {\"scale\": \"0.1\"}"));
    }
}
