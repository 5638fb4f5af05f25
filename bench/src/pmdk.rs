//! The PMDK peer: `bench/pmdk/pmemobj_kv.c` (a transactional hash map on libpmemobj), compiled
//! with the system C compiler at run time (`cc … -lpmemobj`; needs Debian's libpmemobj-dev, see
//! `bench/setup.sh`) and run as a subprocess that prints its W1 and W4 figures. With
//! `PMEM_IS_PMEM_FORCE=1` libpmem flushes with cache-line instructions on tmpfs, as mcstore's
//! `ForcedPmem` does. No FFI: the bench's Rust code never links libpmemobj.

use std::path::Path;
use std::process::Command;

use crate::case;
use crate::measure::OpStats;
use crate::results::{Figure, Unit};
use crate::workloads::{Ctx, progress};

/// The C source, embedded so the binary can build its peer wherever it runs.
const SOURCE: &str = include_str!("../pmdk/pmemobj_kv.c");
/// The engine name in tables.
pub const NAME: &str = "pmemobj";

/// Parse one `NAME ops=.. seconds=.. p50_ns=.. p99_ns=..` line of the program's output.
pub fn parse_line(output: &str, name: &str) -> Option<OpStats> {
    let line = output.lines().find(|l| l.split_whitespace().next() == Some(name))?;
    let field = |key: &str| -> Option<f64> {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(key).and_then(|v| v.strip_prefix('=')))
            .and_then(|v| v.parse().ok())
    };
    Some(OpStats {
        ops: field("ops")? as u64,
        seconds: field("seconds")?,
        p50_ns: field("p50_ns")?,
        p99_ns: field("p99_ns")?,
    })
}

fn build(dir: &Path) -> Result<std::path::PathBuf, String> {
    let src = dir.join("pmemobj_kv.c");
    let exe = dir.join("pmemobj_kv");
    std::fs::write(&src, SOURCE).map_err(|e| format!("{}: {e}", src.display()))?;
    let out = Command::new("cc")
        .args(["-O2", "-o"])
        .arg(&exe)
        .arg(&src)
        .arg("-lpmemobj")
        .output()
        .map_err(|e| format!("cc did not run: {e}"))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let first = stderr.lines().find(|l| l.contains("error")).unwrap_or("cc failed");
        return Err(format!(
            "building pmemobj_kv failed (libpmemobj-dev installed? bench/setup.sh): {first}"
        ));
    }
    Ok(exe)
}

/// Build and run the PMDK peer for W1 and W4 (1 thread).
pub fn run(ctx: &Ctx) -> Vec<Figure> {
    let dir = ctx.dir.join("pmdk");
    let _ = std::fs::remove_dir_all(&dir);
    let w1_ops = ctx.scaled(2_000_000, 10_000);
    let result = std::fs::create_dir_all(&dir).map_err(|e| e.to_string()).and_then(|()| {
        let exe = build(&dir)?;
        progress("W1+W4", NAME, "running");
        let out = Command::new(exe)
            .env("PMEM_IS_PMEM_FORCE", "1")
            .arg(dir.join("kv.pool"))
            .arg(w1_ops.to_string())
            .arg(ctx.get_keys.to_string())
            .arg((4 * ctx.get_keys).to_string())
            .arg(ctx.budget.as_millis().to_string())
            .output()
            .map_err(|e| format!("pmemobj_kv did not run: {e}"))?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() {
            return Err(format!(
                "pmemobj_kv failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(stdout)
    });
    let _ = std::fs::remove_dir_all(&dir);
    let figure = |workload, case: &str, name| match &result {
        Ok(stdout) => match parse_line(stdout, name) {
            Some(stats) => Figure::from_ops(workload, case, NAME, &stats),
            None => Figure::unavailable(
                workload,
                case,
                NAME,
                Unit::OpsPerSec,
                "no figures in pmemobj_kv's output",
            ),
        },
        Err(e) => Figure::unavailable(workload, case, NAME, Unit::OpsPerSec, e),
    };
    vec![figure("W1", case::W1_PUT, "w1"), figure("W4", case::W4_GET_1, "w4")]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_programs_lines() {
        let out = "w1 ops=100 seconds=0.5 p50_ns=300.0 p99_ns=900.5\nw4 ops=7 seconds=1 p50_ns=1 p99_ns=2\n";
        let w1 = parse_line(out, "w1").unwrap();
        assert_eq!((w1.ops, w1.seconds, w1.p50_ns, w1.p99_ns), (100, 0.5, 300.0, 900.5));
        assert_eq!(parse_line(out, "w4").unwrap().ops, 7);
        assert_eq!(parse_line(out, "w2"), None);
        assert_eq!(parse_line("w1 ops=1 seconds=x", "w1"), None);
    }
}
