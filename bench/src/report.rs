//! Result rows, printed as an aligned table and written as JSON and Markdown with `--out DIR`.
//!
//! A row is one figure of one workload; `ratio` compares it with the reference measured in the
//! same run, and `target` states the goal for that ratio so the reader sees pass/fail.

use std::fmt::Write as _;
use std::path::Path;

/// One measured figure.
#[derive(Clone, Debug)]
pub struct Row {
    /// Workload group, e.g. `copy` or `persist`.
    pub group: String,
    /// What was measured, e.g. `4096 B, delta 32`.
    pub case: String,
    /// mcstore's figure (ns per operation, or GB/s — see `unit`).
    pub value: f64,
    /// The reference's figure in the same unit.
    pub reference: f64,
    /// Unit of `value` and `reference`.
    pub unit: &'static str,
    /// mcstore relative to the reference, where higher is better.
    pub ratio: f64,
    /// The goal for `ratio`, if the issue sets one, e.g. `>= 0.90`.
    pub target: Option<(f64, &'static str)>,
}

impl Row {
    /// Whether the row meets its target (rows without one always do).
    pub fn meets_target(&self) -> bool {
        self.target.is_none_or(|(goal, _)| self.ratio >= goal)
    }
}

/// Print the rows as a table.
pub fn print_table(title: &str, reference_name: &str, rows: &[Row]) {
    println!("\n## {title}");
    println!(
        "{:<10} {:<28} {:>12} {:>12} {:>8}  {:<5} target",
        "group", "case", "mcstore", reference_name, "ratio", "unit"
    );
    for r in rows {
        let target = match r.target {
            Some((goal, label)) => {
                format!("{label} {goal:.2} {}", if r.meets_target() { "ok" } else { "MISSED" })
            }
            None => String::new(),
        };
        println!(
            "{:<10} {:<28} {:>12} {:>12} {:>8.3}  {:<5} {target}",
            r.group,
            r.case,
            cell(r.value),
            cell(r.reference),
            r.ratio,
            r.unit
        );
    }
}

/// A JSON number, or `null` for a figure that does not apply (NaN).
fn json_number(x: f64) -> String {
    if x.is_finite() { format!("{x:.4}") } else { "null".into() }
}

/// A table cell: the figure, or `-` where it does not apply.
fn cell(x: f64) -> String {
    if x.is_finite() { format!("{x:.2}") } else { "-".into() }
}

/// Write `<name>.json` and `<name>.md` under `dir`.
pub fn write_files(
    dir: &Path,
    name: &str,
    reference_name: &str,
    rows: &[Row],
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut json = String::from("[\n");
    for (i, r) in rows.iter().enumerate() {
        let target = r.target.map_or("null".to_string(), |(g, _)| format!("{g}"));
        let _ = writeln!(
            json,
            "  {{\"group\": \"{}\", \"case\": \"{}\", \"mcstore\": {}, \"{}\": {}, \"unit\": \"{}\", \"ratio\": {}, \"target\": {}}}{}",
            r.group,
            r.case,
            json_number(r.value),
            reference_name,
            json_number(r.reference),
            r.unit,
            json_number(r.ratio),
            target,
            if i + 1 < rows.len() { "," } else { "" }
        );
    }
    json.push_str("]\n");
    std::fs::write(dir.join(format!("{name}.json")), json)?;
    let mut md = format!("| group | case | mcstore | {reference_name} | unit | ratio | target |\n");
    md.push_str("|---|---|---:|---:|---|---:|---|\n");
    for r in rows {
        let target = r.target.map_or(String::new(), |(g, label)| {
            format!("{label} {g:.2} {}", if r.meets_target() { "✓" } else { "✗" })
        });
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {:.3} | {} |",
            r.group,
            r.case,
            cell(r.value),
            cell(r.reference),
            r.unit,
            r.ratio,
            target
        );
    }
    std::fs::write(dir.join(format!("{name}.md")), md)
}
