//! The targets, each a ratio of two figures of the same run (or one absolute figure),
//! judged ok / MISSED, or n/a when a figure it needs was not measured.
//!
//! INVARIANT: a target is judged only from figures present in `Results`; a missing figure makes
//! it n/a with the reason, never a pass.

use crate::case;
use crate::results::Results;

/// The peers compared with, by name.
pub const PEERS: [&str; 5] = ["redb", "lmdb", "rocksdb", "sled", "fjall"];
/// The peers with the PMDK one (W1: libpmemobj runs it too).
pub const PEERS_AND_PMDK: [&str; 6] = ["redb", "lmdb", "rocksdb", "sled", "fjall", "pmemobj"];
/// The LSM peers (W5's full-scan target).
pub const LSM_PEERS: [&str; 2] = ["rocksdb", "fjall"];

/// What a target's figure is divided by.
#[derive(Clone, Debug, PartialEq)]
pub enum Against {
    /// The best of these engines on the same (workload, case).
    BestOf(&'static [&'static str]),
    /// One figure: (workload, case, engine).
    Figure(&'static str, String, &'static str),
    /// The highest of the figures of these cases, with one workload and engine.
    HighestOf(&'static str, &'static [&'static str], &'static str),
    /// Nothing: the figure itself is compared with the goal.
    Absolute,
}

/// How a target came out.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// The goal is met.
    Ok,
    /// The goal is not met.
    Missed,
    /// A figure it needs is missing.
    NotAvailable(String),
}

/// One judged target.
#[derive(Clone, Debug, PartialEq)]
pub struct Judged {
    /// e.g. `W1 ≥ 4× best peer`.
    pub label: String,
    /// mcstore's figure.
    pub value: Option<f64>,
    /// The figure it is divided by, and whose it is.
    pub reference: Option<(String, f64)>,
    /// The ratio (or the figure itself for absolute targets).
    pub ratio: Option<f64>,
    /// The outcome.
    pub verdict: Verdict,
    /// For a target whose operation includes a plain one of the machine's own: that plain
    /// operation's case and its figure over the same reference (W7's gets: a `memcpy` of cold
    /// pieces of the value's size, which any get of such a value must also do). Context for the
    /// reader, who sees whether the goal is above what the plain operation reaches here; the
    /// verdict ignores it.
    pub machine_plain: Option<(String, f64)>,
}

struct Target {
    label: &'static str,
    workload: &'static str,
    case: String,
    engine: &'static str,
    against: Against,
    goal: f64,
    at_most: bool,
    /// The machine's plain case beside this target (see `Judged::machine_plain`).
    machine_case: Option<String>,
}

fn targets() -> Vec<Target> {
    let vs = |label, workload, case: &str, against, goal| Target {
        label,
        workload,
        case: case.to_string(),
        engine: "mcstore",
        against,
        goal,
        at_most: false,
        machine_case: None,
    };
    let mut t = vec![
        vs(
            "W1 ≥ 0.5× raw two-fence append",
            "W1",
            case::W1_PUT,
            Against::Figure("machine", case::TWO_FENCE.into(), "machine"),
            0.5,
        ),
        vs("W1 ≥ 4× best peer", "W1", case::W1_PUT, Against::BestOf(&PEERS_AND_PMDK), 4.0),
        vs("W2 ≥ 3× best peer", "W2", case::W2_BATCH, Against::BestOf(&PEERS), 3.0),
        vs("W3 ≥ 2× best peer", "W3", case::W3_LOAD, Against::BestOf(&PEERS), 2.0),
        vs("W4 ≥ 0.8× libpmemobj", "W4", case::W4_GET_1, Against::BestOf(&["pmemobj"]), 0.8),
        vs(
            "W4 2 threads ≥ 1.8× 1 thread",
            "W4",
            case::W4_GET_2,
            Against::Figure("W4", case::W4_GET_1.into(), "mcstore"),
            1.8,
        ),
        vs(
            "W5 full scan ≥ 1× best LSM peer",
            "W5",
            case::W5_FULL,
            Against::BestOf(&LSM_PEERS),
            1.0,
        ),
        vs("W6 A ≥ 2× RocksDB", "W6", &case::ycsb('A'), Against::BestOf(&["rocksdb"]), 2.0),
        vs("W6 F ≥ 2× RocksDB", "W6", &case::ycsb('F'), Against::BestOf(&["rocksdb"]), 2.0),
        vs("W6 C ≥ 1× LMDB", "W6", &case::ycsb('C'), Against::BestOf(&["lmdb"]), 1.0),
    ];
    for size in case::W7_SIZES {
        let memcpy = Against::HighestOf("machine", &[case::MEMCPY, case::MEMCPY_AT_W7], "machine");
        t.push(vs("W7 put ≥ 0.5× memcpy", "W7", &case::w7_put(size), memcpy.clone(), 0.5));
        t.push(Target {
            machine_case: Some(case::memcpy_pieces(size)),
            ..vs("W7 get ≥ 0.7× memcpy", "W7", &case::w7_get(size), memcpy, 0.7)
        });
    }
    t.push(vs("W8 recovery ≥ 1 GB/s", "W8", case::W8_GBPS, Against::Absolute, 1.0));
    t.push(Target {
        at_most: true,
        ..vs(
            "W9 space amplification ≤ 1.5 after compaction",
            "W9",
            case::W9_COMPACTED,
            Against::Absolute,
            1.5,
        )
    });
    t.push(vs(
        "W10 persistence tax ≥ 0.5 (W1 on/off)",
        "W10",
        case::W10_TAX_W1,
        Against::Absolute,
        0.5,
    ));
    use crate::workloads::replicas as r;
    let plain = |c: &str| Against::Figure(r::WORKLOAD, c.into(), "mcstore");
    t.push(vs(
        "get with 1 replica ≥ 0.95× without",
        r::WORKLOAD,
        r::GET_REPLICA,
        plain(r::GET_PLAIN),
        0.95,
    ));
    t.push(vs(
        "durable put with 1 replica ≥ 0.6× without",
        r::WORKLOAD,
        r::PUT_REPLICA,
        plain(r::PUT_PLAIN),
        0.6,
    ));
    t
}

/// Judge every target against `results`.
pub fn judge(results: &Results) -> Vec<Judged> {
    targets()
        .into_iter()
        .map(|t| {
            let label = if t.label.starts_with("W7") {
                format!("{} ({})", t.label, t.case)
            } else {
                t.label.to_string()
            };
            let value = results.value(t.workload, &t.case, t.engine);
            let reference = match &t.against {
                Against::BestOf(engines) => results.best_of(t.workload, &t.case, engines),
                Against::Figure(w, c, e) => results.value(w, c, e).map(|v| (format!("{e} {c}"), v)),
                Against::HighestOf(w, cases, e) => cases
                    .iter()
                    .filter_map(|c| results.value(w, c, e).map(|v| (format!("{e} {c}"), v)))
                    .reduce(|a, b| if b.1 > a.1 { b } else { a }),
                Against::Absolute => Some(("goal".to_string(), 1.0)),
            };
            let ratio = match (value, &reference) {
                (Some(v), Some((_, r))) if *r > 0.0 => Some(v / r),
                _ => None,
            };
            let verdict = match ratio {
                None => {
                    let why = if value.is_none() {
                        missing_reason(results, t.workload, &t.case, t.engine)
                    } else {
                        "reference not measured".to_string()
                    };
                    Verdict::NotAvailable(why)
                }
                Some(r) if (t.at_most && r <= t.goal) || (!t.at_most && r >= t.goal) => Verdict::Ok,
                Some(_) => Verdict::Missed,
            };
            let machine_plain = t.machine_case.and_then(|c| {
                let own = results.value("machine", &c, "machine").filter(|v| v.is_finite())?;
                let (_, r) = reference.as_ref().filter(|(_, r)| *r > 0.0)?;
                Some((c, own / r))
            });
            let reference = if t.against == Against::Absolute { None } else { reference };
            Judged { label, value, reference, ratio, verdict, machine_plain }
        })
        .collect()
}

fn missing_reason(results: &Results, workload: &str, case: &str, engine: &str) -> String {
    results
        .figures
        .iter()
        .find(|f| f.workload == workload && f.case == case && f.engine == engine)
        .and_then(|f| f.note.clone())
        .unwrap_or_else(|| "not measured in this run".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::{Figure, Unit};

    #[test]
    fn targets_are_judged_from_the_run_only() {
        let mut r = Results::default();
        r.extend([
            Figure::new("W1", case::W1_PUT, "mcstore", 1000.0, Unit::OpsPerSec),
            Figure::new("W1", case::W1_PUT, "redb", 100.0, Unit::OpsPerSec),
            Figure::new("W1", case::W1_PUT, "rocksdb", 300.0, Unit::OpsPerSec),
            Figure::new("machine", case::TWO_FENCE, "machine", 4000.0, Unit::OpsPerSec),
            Figure::unavailable(
                "W9",
                case::W9_COMPACTED,
                "mcstore",
                Unit::SpaceRatio,
                "no compaction yet",
            ),
            Figure::new("W8", case::W8_GBPS, "mcstore", 1.5, Unit::GbPerSec),
        ]);
        let judged = judge(&r);
        let find = |l: &str| judged.iter().find(|j| j.label.starts_with(l)).unwrap();
        let w1_peer = find("W1 ≥ 4×");
        assert_eq!(w1_peer.reference, Some(("rocksdb".into(), 300.0)));
        assert_eq!(w1_peer.verdict, Verdict::Missed);
        assert_eq!(find("W1 ≥ 0.5×").verdict, Verdict::Missed);
        assert_eq!(find("W8").verdict, Verdict::Ok);
        assert_eq!(find("W9").verdict, Verdict::NotAvailable("no compaction yet".into()));
        assert!(matches!(find("W2").verdict, Verdict::NotAvailable(_)));
    }

    #[test]
    fn w7_is_judged_against_the_higher_memcpy_of_the_run() {
        let get = |r: &Results| {
            judge(r).into_iter().find(|j| j.label.contains(&case::w7_get(4096))).unwrap()
        };
        let mut r = Results::default();
        r.extend([Figure::new("W7", &case::w7_get(4096), "mcstore", 6.0, Unit::GbPerSec)]);
        assert!(matches!(get(&r).verdict, Verdict::NotAvailable(_)), "no memcpy figure");
        r.extend([Figure::new("machine", case::MEMCPY, "machine", 8.0, Unit::GbPerSec)]);
        assert_eq!(get(&r).reference, Some((format!("machine {}", case::MEMCPY), 8.0)));
        assert_eq!(get(&r).verdict, Verdict::Ok, "6 / 8 ≥ 0.7");
        r.extend([Figure::new("machine", case::MEMCPY_AT_W7, "machine", 10.0, Unit::GbPerSec)]);
        assert_eq!(get(&r).reference, Some((format!("machine {}", case::MEMCPY_AT_W7), 10.0)));
        assert_eq!(get(&r).ratio, Some(0.6));
        assert_eq!(get(&r).verdict, Verdict::Missed, "6 / 10 < 0.7");
    }

    #[test]
    fn a_w7_get_shows_a_cold_copy_of_its_size_over_the_same_memcpy() {
        let judged = |r: &Results, size: usize| {
            judge(r).into_iter().find(|j| j.label.contains(&case::w7_get(size))).unwrap()
        };
        let mut r = Results::default();
        // mcstore's get runs 3 / 10 of the higher memcpy (a miss at 0.7) but 3 / 4 of the
        // plain copy: a verdict taken against the plain copy would pass.
        r.extend([
            Figure::new("W7", &case::w7_get(4096), "mcstore", 3.0, Unit::GbPerSec),
            Figure::new("W7", &case::w7_get(65536), "mcstore", 8.0, Unit::GbPerSec),
            Figure::new("machine", case::MEMCPY, "machine", 8.0, Unit::GbPerSec),
            Figure::new("machine", case::MEMCPY_AT_W7, "machine", 10.0, Unit::GbPerSec),
        ]);
        assert_eq!(judged(&r, 4096).machine_plain, None, "no cold copy measured");
        let before = judged(&r, 4096).verdict;
        r.extend([
            Figure::new("machine", &case::memcpy_pieces(4096), "machine", 4.0, Unit::GbPerSec),
            Figure::new("machine", &case::memcpy_pieces(65536), "machine", 7.0, Unit::GbPerSec),
        ]);
        let get = judged(&r, 4096);
        assert_eq!(
            get.machine_plain,
            Some((case::memcpy_pieces(4096), 0.4)),
            "4 / 10: its own size's copy, over the higher memcpy"
        );
        assert_eq!(judged(&r, 65536).machine_plain, Some((case::memcpy_pieces(65536), 0.7)));
        assert_eq!(judged(&r, 1 << 20).machine_plain, None, "no 1 MiB copy measured");
        assert_eq!(get.verdict, before, "the plain copy does not change the verdict");
        assert_eq!(get.verdict, Verdict::Missed, "3 / 10 < 0.7");
        let put = judge(&r).into_iter().find(|j| j.label.contains(&case::w7_put(4096))).unwrap();
        assert_eq!(put.machine_plain, None, "only gets copy a cold value out");
        let others = judge(&r).into_iter().filter(|j| !j.label.starts_with("W7 get"));
        assert!(others.into_iter().all(|j| j.machine_plain.is_none()));
    }
}
