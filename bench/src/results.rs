//! One run's figures: each is (workload, case, engine) → a value in a unit, with sampled latency
//! percentiles for per-operation workloads, or the reason it is not available.
//!
//! INVARIANT: a figure without a value carries a note saying why (a peer that failed, a feature
//! the engine lacks); nothing is estimated or filled in.

/// The unit of a figure; every unit but `SpaceRatio` and `NsPerOp` is higher-is-better.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// Operations per second.
    OpsPerSec,
    /// Records (keys) per second.
    RecordsPerSec,
    /// Gigabytes (10^9 bytes) per second.
    GbPerSec,
    /// Bytes on the medium / bytes of live data.
    SpaceRatio,
    /// Nanoseconds per operation.
    NsPerOp,
    /// A ratio of two throughputs.
    Ratio,
}

impl Unit {
    /// The unit's label in tables.
    pub fn label(self) -> &'static str {
        match self {
            Unit::OpsPerSec => "ops/s",
            Unit::RecordsPerSec => "rec/s",
            Unit::GbPerSec => "GB/s",
            Unit::SpaceRatio => "space×",
            Unit::NsPerOp => "ns/op",
            Unit::Ratio => "×",
        }
    }

    /// Whether a larger value is better.
    pub fn higher_is_better(self) -> bool {
        !matches!(self, Unit::SpaceRatio | Unit::NsPerOp)
    }

    /// Whether figures in this unit go on the throughput chart.
    pub fn is_throughput(self) -> bool {
        matches!(self, Unit::OpsPerSec | Unit::RecordsPerSec)
    }
}

/// One measured (or unavailable) figure.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    /// `W1` … `W10`, or `machine`.
    pub workload: &'static str,
    /// What was measured within the workload, e.g. `get, 2 threads`.
    pub case: String,
    /// `mcstore`, a peer's name, `pmemobj` or `machine`.
    pub engine: String,
    /// The value, or `None` when not available (see `note`).
    pub value: Option<f64>,
    /// Unit of `value`.
    pub unit: Unit,
    /// Median sampled latency, ns (per-operation workloads).
    pub p50_ns: Option<f64>,
    /// 99th percentile sampled latency, ns.
    pub p99_ns: Option<f64>,
    /// Why the value is missing, or a remark on how it was obtained.
    pub note: Option<String>,
}

impl Figure {
    /// A measured value.
    pub fn new(workload: &'static str, case: &str, engine: &str, value: f64, unit: Unit) -> Self {
        Self {
            workload,
            case: case.to_string(),
            engine: engine.to_string(),
            value: Some(value),
            unit,
            p50_ns: None,
            p99_ns: None,
            note: None,
        }
    }

    /// A figure that could not be measured, and why.
    pub fn unavailable(
        workload: &'static str,
        case: &str,
        engine: &str,
        unit: Unit,
        why: &str,
    ) -> Self {
        Self {
            value: None,
            note: Some(why.to_string()),
            ..Self::new(workload, case, engine, 0.0, unit)
        }
    }

    /// An operation loop's throughput with its latency percentiles.
    pub fn from_ops(
        workload: &'static str,
        case: &str,
        engine: &str,
        stats: &crate::measure::OpStats,
    ) -> Self {
        Self {
            p50_ns: Some(stats.p50_ns),
            p99_ns: Some(stats.p99_ns),
            ..Self::new(workload, case, engine, stats.ops_per_sec(), Unit::OpsPerSec)
        }
    }

    /// The same figure with a remark.
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }
}

/// All figures of a run, in the order they were measured.
#[derive(Clone, Debug, Default)]
pub struct Results {
    /// The figures.
    pub figures: Vec<Figure>,
}

impl Results {
    /// Add figures.
    pub fn extend(&mut self, figures: impl IntoIterator<Item = Figure>) {
        self.figures.extend(figures);
    }

    /// The value of one figure, if measured.
    pub fn value(&self, workload: &str, case: &str, engine: &str) -> Option<f64> {
        self.figures
            .iter()
            .find(|f| f.workload == workload && f.case == case && f.engine == engine)
            .and_then(|f| f.value)
    }

    /// The best measured value among `engines` for one (workload, case), with its engine.
    pub fn best_of(&self, workload: &str, case: &str, engines: &[&str]) -> Option<(String, f64)> {
        self.figures
            .iter()
            .filter(|f| {
                f.workload == workload && f.case == case && engines.contains(&f.engine.as_str())
            })
            .filter_map(|f| f.value.map(|v| (f.engine.clone(), v, f.unit)))
            .reduce(|a, b| {
                let b_better = if a.2.higher_is_better() { b.1 > a.1 } else { b.1 < a.1 };
                if b_better { b } else { a }
            })
            .map(|(e, v, _)| (e, v))
    }

    /// Distinct (workload, case) rows in measurement order.
    pub fn rows(&self) -> Vec<(&'static str, String, Unit)> {
        let mut rows: Vec<(&'static str, String, Unit)> = Vec::new();
        for f in &self.figures {
            if !rows.iter().any(|(w, c, _)| *w == f.workload && *c == f.case) {
                rows.push((f.workload, f.case.clone(), f.unit));
            }
        }
        rows
    }

    /// Distinct engines in measurement order.
    pub fn engines(&self) -> Vec<String> {
        let mut engines: Vec<String> = Vec::new();
        for f in &self.figures {
            if !engines.contains(&f.engine) {
                engines.push(f.engine.clone());
            }
        }
        engines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_of_respects_the_units_direction() {
        let mut r = Results::default();
        r.extend([
            Figure::new("W1", "put", "a", 10.0, Unit::OpsPerSec),
            Figure::new("W1", "put", "b", 30.0, Unit::OpsPerSec),
            Figure::unavailable("W1", "put", "c", Unit::OpsPerSec, "failed"),
            Figure::new("W9", "space", "a", 1.2, Unit::SpaceRatio),
            Figure::new("W9", "space", "b", 3.0, Unit::SpaceRatio),
        ]);
        assert_eq!(r.best_of("W1", "put", &["a", "b", "c"]), Some(("b".into(), 30.0)));
        assert_eq!(r.best_of("W1", "put", &["a", "c"]), Some(("a".into(), 10.0)));
        assert_eq!(r.best_of("W1", "put", &["c"]), None);
        assert_eq!(r.best_of("W9", "space", &["a", "b"]), Some(("a".into(), 1.2)));
        assert_eq!(r.value("W1", "put", "c"), None);
        assert_eq!(r.rows().len(), 2);
        assert_eq!(r.engines(), ["a", "b", "c"]);
    }
}
