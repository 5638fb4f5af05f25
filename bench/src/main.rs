//! mcstore-bench: workloads against mcstore and, for the engine workloads, its peers, measured in
//! one run and reported as ratios (these machines are noisy; absolute numbers across runs are not
//! comparable, ratios within one run are).
//!
//! Usage: `mcstore-bench [micro] [--dir DIR] [--out DIR] [--all-variants]`.

mod measure;
mod micro;
mod report;

use std::path::PathBuf;
use std::process::ExitCode;

use mcstore_pmem::raw::RawRegion;
use mcstore_pmem::{MapOptions, MappedMedium, Medium, ModeRequest};

struct Args {
    workload: String,
    dir: PathBuf,
    out: Option<PathBuf>,
    all_variants: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        workload: "micro".into(),
        dir: PathBuf::from("/dev/shm"),
        out: None,
        all_variants: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--dir" => args.dir = it.next().ok_or("--dir needs a directory")?.into(),
            "--out" => args.out = Some(it.next().ok_or("--out needs a directory")?.into()),
            "--all-variants" => args.all_variants = true,
            "-h" | "--help" => {
                return Err(
                    "usage: mcstore-bench [micro] [--dir DIR] [--out DIR] [--all-variants]".into(),
                );
            }
            w if !w.starts_with('-') => args.workload = w.to_string(),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

fn run_micro(args: &Args) -> Result<Vec<report::Row>, String> {
    let scratch = args.dir.join(format!("mcstore-bench-{}", std::process::id()));
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
        let mut rows = micro::copy::run(&medium, 4096, args.all_variants);
        let raw = RawRegion::create(&scratch.join("raw.pool"), len as usize)
            .map_err(|e| format!("create raw region: {e}"))?;
        rows.extend(micro::persist::run(&medium, &raw));
        Ok(rows)
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let rows = match args.workload.as_str() {
        "micro" => run_micro(&args),
        other => Err(format!("unknown workload {other} (known: micro)")),
    };
    let rows = match rows {
        Ok(r) => r,
        Err(e) => {
            eprintln!("mcstore-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    report::print_table("micro: mcsafe copy and persist", "reference", &rows);
    let missed = rows.iter().filter(|r| !r.meets_target()).count();
    println!("\n{} figures, {missed} below target", rows.len());
    if let Some(out) = &args.out
        && let Err(e) = report::write_files(out, "micro", "reference", &rows)
    {
        eprintln!("mcstore-bench: writing {}: {e}", out.display());
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
