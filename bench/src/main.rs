//! mcstore-bench: the engine workloads W1–W10 of issue \[6\] against peer engines and the
//! machine's own limits, measured in one run and reported as ratios (these machines are noisy;
//! absolute numbers across runs are not comparable, ratios within one run are); plus the device
//! layer's micro workloads (`micro`).
//!
//! Usage: `mcstore-bench [run|micro] [--scale F] [--seconds S] [--dir DIR] [--out DIR] …`
//! (`--help` lists every option). Peers need `--features peers` (and bench/setup.sh).

mod case;
mod chart;
mod keys;
mod kv;
mod machine;
mod measure;
mod micro;
mod pmdk;
mod report;
mod results;
mod table;
mod targets;
mod workloads;
mod zipf;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use mcstore_pmem::raw::RawRegion;
use mcstore_pmem::{MapOptions, MappedMedium, Medium, ModeRequest};

use crate::kv::Engine;
use crate::results::Results;
use crate::workloads::Ctx;

/// Every workload selectable with `--only`, in the order a full run measures them.
const WORKLOADS: [&str; 12] =
    ["machine", "W1", "W2", "W3", "W4", "W6", "W7", "W8", "W9", "W10", "pmemobj", "replicas"];

#[derive(Parser, Debug)]
#[command(name = "mcstore-bench", about = "mcstore against its peers and the machine, in one run")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Directory for the stores (tmpfs: mcstore runs in ForcedPmem, PMDK with PMEM_IS_PMEM_FORCE).
    #[arg(long, global = true, default_value = "/dev/shm")]
    dir: PathBuf,
    /// Write results.json, results.md and throughput.svg (or micro.json/.md) here.
    #[arg(long, global = true)]
    out: Option<PathBuf>,
    /// Multiply record counts by this (W3 loads 5 M × scale, W6 1 M × scale, W8 10 M × scale).
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Wall-clock budget of each timed loop, seconds.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Comma-separated subset of: machine, W1, W2, W3, W4 (also W5), W6, W7, W8, W9, W10, pmemobj,
    /// replicas.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Comma-separated engines (default: mcstore and every compiled peer).
    #[arg(long, value_delimiter = ',')]
    engines: Vec<String>,
    /// Writer threads for W1, comma-separated (e.g. 1,2).
    #[arg(long, value_delimiter = ',', default_value = "1")]
    w1_threads: Vec<usize>,
    /// Records of W3's bulk load (default 5 000 000 × scale).
    #[arg(long)]
    load_records: Option<u64>,
    /// Keys W4 and W5 read.
    #[arg(long, default_value_t = 1_000_000)]
    get_keys: u64,
    /// micro: sweep every copy variant, not only the automatic dispatch.
    #[arg(long, global = true)]
    all_variants: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// The engine workloads (the default).
    Run,
    /// Micro workloads of the device layer: mcsafe copy, read and hash of large values, persist.
    Micro,
    /// W8's crashing writer (run by the bench itself).
    #[command(name = "w8-writer", hide = true)]
    W8Writer { dir: PathBuf, records: u64 },
}

fn run_micro(dir: &Path, all_variants: bool) -> Result<Vec<report::Row>, String> {
    let scratch = dir.join(format!("mcstore-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let len = 4u64 << 20;
    let options = MapOptions::default()
        .mode(ModeRequest::ForcedPmem)
        .allow_forced_pmem_on_any_fs(true)
        .max_len(len);
    let result = (|| {
        let medium = MappedMedium::create(&scratch.join("copy.pool"), len, &options)
            .map_err(|e| format!("create bench pool: {e}"))?;
        println!("medium: {} in {:?} mode", scratch.display(), medium.mode());
        let pattern: Vec<u8> = (0..(2u32 << 20)).map(|i| (i % 251) as u8).collect();
        medium.write(0, &pattern).map_err(|e| e.to_string())?;
        let mut rows = micro::copy::run(&medium, 4096, all_variants);
        let raw = RawRegion::create(&scratch.join("raw.pool"), len as usize)
            .map_err(|e| format!("create raw region: {e}"))?;
        rows.extend(micro::persist::run(&medium, &raw));
        drop(medium);
        let span = micro::hashing::SPAN_BYTES;
        let large =
            MappedMedium::create(&scratch.join("values.pool"), span, &options.max_len(span))
                .map_err(|e| format!("create bench pool: {e}"))?;
        let piece: Vec<u8> =
            (0..(1u32 << 20)).map(|i| (i.wrapping_mul(2_654_435_761) >> 7) as u8).collect();
        for at in (0..span).step_by(piece.len()) {
            large.write(at, &piece).map_err(|e| e.to_string())?;
        }
        rows.extend(micro::hashing::run(&large));
        Ok(rows)
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

fn micro_main(cli: &Cli) -> Result<(), String> {
    let rows = run_micro(&cli.dir, cli.all_variants)?;
    report::print_table("micro: mcsafe copy and persist", "reference", &rows);
    let missed = rows.iter().filter(|r| !r.meets_target()).count();
    println!("\n{} figures, {missed} below target", rows.len());
    if let Some(out) = &cli.out {
        report::write_files(out, "micro", "reference", &rows)
            .map_err(|e| format!("writing {}: {e}", out.display()))?;
    }
    Ok(())
}

fn select_engines(cli: &Cli) -> Result<(Vec<Engine>, bool), String> {
    let compiled = Engine::compiled();
    if cli.engines.is_empty() {
        return Ok((compiled, cfg!(feature = "peers")));
    }
    let mut engines = Vec::new();
    let mut pmemobj = false;
    for name in &cli.engines {
        if name == pmdk::NAME {
            pmemobj = true;
            continue;
        }
        let engine = compiled.iter().find(|e| e.name() == name).ok_or_else(|| {
            format!(
                "unknown or uncompiled engine {name} (compiled: {:?}; peers need --features peers)",
                compiled.iter().map(|e| e.name()).collect::<Vec<_>>()
            )
        })?;
        engines.push(*engine);
    }
    Ok((engines, pmemobj))
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// The 1/5/15-minute load averages: other processes on a 2-core machine move every figure.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn run_main(cli: &Cli) -> Result<(), String> {
    let load_at_start = load_average();
    if !(cli.scale > 0.0 && cli.seconds > 0.0) {
        return Err("--scale and --seconds must be positive".into());
    }
    let selected: Vec<&str> = if cli.only.is_empty() {
        WORKLOADS.to_vec()
    } else {
        for w in &cli.only {
            if !WORKLOADS.contains(&w.as_str()) && w != "W5" {
                return Err(format!("unknown workload {w} (known: {})", WORKLOADS.join(", ")));
            }
        }
        WORKLOADS
            .iter()
            .copied()
            .filter(|w| cli.only.iter().any(|o| o == w || (o == "W5" && *w == "W4")))
            .collect()
    };
    let (engines, pmemobj) = select_engines(cli)?;
    let scratch = cli.dir.join(format!("mcstore-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    let ctx = Ctx {
        dir: scratch.clone(),
        scale: cli.scale,
        budget: Duration::from_secs_f64(cli.seconds),
        engines,
        w1_threads: cli.w1_threads.clone(),
        load_records: cli.load_records.unwrap_or(((5_000_000.0 * cli.scale) as u64).max(10_000)),
        get_keys: cli.get_keys,
        values: keys::ValuePool::new(1 << 20),
    };
    let mut results = Results::default();
    for w in &selected {
        let started = std::time::Instant::now();
        match *w {
            "machine" => results.extend(machine::limits(&scratch)),
            "W1" => results.extend(workloads::writes::w1(&ctx)),
            "W2" => results.extend(workloads::writes::w2(&ctx)),
            "W3" => results.extend(workloads::writes::w3(&ctx)),
            "W4" => results.extend(workloads::reads::w4_w5(&ctx)),
            "W6" => results.extend(workloads::ycsb::w6(&ctx)),
            "W7" => results.extend(workloads::large::w7(&ctx)),
            "W8" => results.extend(workloads::recovery::w8(&ctx)),
            "W9" => results.extend(workloads::space::w9(&ctx)),
            "W10" => results.extend(workloads::writes::w10(&ctx)),
            "replicas" => results.extend(workloads::replicas::replicas(&ctx)),
            "pmemobj" if pmemobj => results.extend(pmdk::run(&ctx)),
            _ => {}
        }
        eprintln!("[{w}] done in {:.1} s", started.elapsed().as_secs_f64());
    }
    let _ = std::fs::remove_dir_all(&scratch);
    let judged = targets::judge(&results);
    let meta = vec![
        ("command", std::env::args().collect::<Vec<_>>().join(" ")),
        ("scale", cli.scale.to_string()),
        ("seconds_per_loop", cli.seconds.to_string()),
        ("load_records", ctx.load_records.to_string()),
        ("get_keys", ctx.get_keys.to_string()),
        ("dir", cli.dir.display().to_string()),
        ("cpu", cpu_model()),
        ("loadavg_at_start", load_at_start),
        ("loadavg_at_end", load_average()),
        ("peers_compiled", cfg!(feature = "peers").to_string()),
    ];
    let mut md = String::new();
    md.push_str("## Figures\n\n");
    md.push_str(&table::figures_markdown(&results));
    md.push_str("\n## Latency (sampled: every 16th operation)\n\n");
    md.push_str(&table::latency_markdown(&results));
    md.push_str("\n## Targets\n\n");
    md.push_str(&table::targets_markdown(&judged));
    let notes = table::notes_markdown(&results);
    if !notes.is_empty() {
        md.push_str("\n## Notes\n\n");
        md.push_str(&notes);
    }
    println!("{md}");
    let missed = judged.iter().filter(|j| j.verdict == targets::Verdict::Missed).count();
    let ok = judged.iter().filter(|j| j.verdict == targets::Verdict::Ok).count();
    println!("targets: {ok} ok, {missed} MISSED, {} n/a", judged.len() - ok - missed);
    if let Some(out) = &cli.out {
        std::fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
        let write = |name: &str, text: &str| {
            std::fs::write(out.join(name), text)
                .map_err(|e| format!("{}: {e}", out.join(name).display()))
        };
        write("results.json", &table::json(&results, &judged, &meta))?;
        let header: String = meta.iter().map(|(k, v)| format!("- {k}: `{v}`\n")).collect();
        write("results.md", &format!("# mcstore-bench results\n\n{header}\n{md}"))?;
        match chart::throughput_svg(&results, "mcstore-bench: throughput per workload (log scale)")
        {
            Ok(svg) => write("throughput.svg", &svg)?,
            Err(e) => eprintln!("mcstore-bench: no chart: {e}"),
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Some(Command::Micro) => micro_main(&cli),
        Some(Command::W8Writer { dir, records }) => {
            workloads::recovery::writer_child(dir, *records).map(|()| {
                // Exit without running any destructor: the store stays "open" on the medium.
                std::process::exit(0)
            })
        }
        Some(Command::Run) | None => run_main(&cli),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcstore-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
