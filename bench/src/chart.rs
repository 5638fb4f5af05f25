//! The chart: throughput (ops/s or records/s, log scale) of every workload case measured on two
//! or more engines, one bar per engine, as horizontal grouped bars in an SVG drawn with plotters'
//! SVG backend (no system fonts needed: without a font feature plotters estimates text extents
//! and the SVG names a generic family).

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::results::Results;

/// Pixels per bar within a case's group.
const BAR_PX: u32 = 9;
/// Chart width in pixels.
const WIDTH_PX: u32 = 1100;
/// Width of the case labels on the left.
const LABEL_PX: u32 = 260;

/// The SVG text of the throughput chart, or an error from plotters.
pub fn throughput_svg(results: &Results, title: &str) -> Result<String, String> {
    let engines = results.engines();
    let rows: Vec<(String, Vec<Option<f64>>)> = results
        .rows()
        .into_iter()
        .filter(|(_, _, unit)| unit.is_throughput())
        .map(|(workload, case, _)| {
            let values = engines.iter().map(|e| results.value(workload, &case, e)).collect();
            (format!("{workload} {case}"), values)
        })
        // Rows only one engine measured (mcstore-only figures) stay in the tables.
        .filter(|(_, values): &(String, Vec<Option<f64>>)| values.iter().flatten().count() >= 2)
        .collect();
    if rows.is_empty() {
        return Err("no throughput figures to chart".into());
    }
    let max = rows.iter().flat_map(|(_, v)| v.iter().flatten()).copied().fold(1.0f64, f64::max);
    let min = rows.iter().flat_map(|(_, v)| v.iter().flatten()).copied().fold(max, f64::min);
    let x_low = 10f64.powf(min.max(1.0).log10().floor());
    let x_high = 10f64.powf(max.log10().ceil()).max(x_low * 10.0);
    let group_px = BAR_PX * engines.len() as u32 + 8; // at most one bar per engine
    let height = 120 + group_px * rows.len() as u32;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH_PX, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let n = rows.len() as f64;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(10)
            .x_label_area_size(40)
            .y_label_area_size(LABEL_PX)
            .build_cartesian_2d((x_low..x_high).log_scale(), n..0.0)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_desc("operations or records per second (log scale)")
            .x_label_formatter(&|v| {
                if *v >= 1e6 {
                    format!("{}M", v / 1e6)
                } else if *v >= 1e3 {
                    format!("{}k", v / 1e3)
                } else {
                    format!("{v}")
                }
            })
            .draw()
            .map_err(|e| e.to_string())?;
        // Engines with no charted figure (e.g. `machine`) get neither a slot nor a legend entry.
        let charted: Vec<usize> = (0..engines.len())
            .filter(|&ei| rows.iter().any(|(_, values)| values[ei].is_some()))
            .collect();
        let slot = 1.0 / (charted.len() as f64 + 1.0);
        for (position, &ei) in charted.iter().enumerate() {
            let engine = &engines[ei];
            let color = Palette99::pick(ei).to_rgba();
            let bars = rows.iter().enumerate().filter_map(move |(ri, (_, values))| {
                values[ei].map(|v| {
                    let top = ri as f64 + slot * (position as f64 + 0.5);
                    Rectangle::new([(x_low, top), (v.max(x_low), top + slot)], color.filled())
                })
            });
            chart.draw_series(bars).map_err(|e| e.to_string())?.label(engine.as_str()).legend(
                move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()),
            );
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
        let label_style = TextStyle::from(("sans-serif", 12).into_font())
            .pos(Pos::new(HPos::Right, VPos::Center));
        for (ri, (label, _)) in rows.iter().enumerate() {
            let (px, py) = chart.backend_coord(&(x_low, ri as f64 + 0.5));
            root.draw(&Text::new(label.clone(), (px - 6, py), label_style.clone()))
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{Figure, Unit};

    #[test]
    fn chart_has_a_bar_per_measured_throughput_and_every_label() {
        let mut r = Results::default();
        r.extend([
            Figure::new("W1", "put", "mcstore", 2e6, Unit::OpsPerSec),
            Figure::new("W1", "put", "rocksdb", 5e4, Unit::OpsPerSec),
            Figure::new("W4", "get", "mcstore", 3e6, Unit::OpsPerSec),
            Figure::new("W4", "get", "lmdb", 1e6, Unit::OpsPerSec),
            Figure::unavailable("W4", "get", "rocksdb", Unit::OpsPerSec, "x"),
            Figure::new("W10", "tax", "mcstore", 3e5, Unit::OpsPerSec),
            Figure::new("W8", "recovery", "mcstore", 1.2, Unit::GbPerSec),
        ]);
        let svg = throughput_svg(&r, "test").unwrap();
        assert!(svg.starts_with("<svg"));
        for label in ["W1 put", "W4 get", "mcstore", "rocksdb"] {
            assert!(svg.contains(label), "{label} missing");
        }
        assert!(!svg.contains("W8 recovery"), "GB/s figures are not on the ops chart");
        assert!(!svg.contains("W10 tax"), "single-engine rows are not charted");
        assert!(throughput_svg(&Results::default(), "empty").is_err());
    }
}
