//! The pool arguments every subcommand shares (path, replicas, mapping mode) and how the tool
//! opens a pool: read-only where the work allows it, background work off (the tool does its
//! one job and closes), recovery progress on a bar.

use std::path::PathBuf;

use clap::ValueEnum;
use mcstore_engine::{Db, EngineFallback, Mode, Options, Policy};

use crate::failure::{Failure, Result};
use crate::output::Output;

/// How to map the pool file (`--mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// DAX with MAP_SYNC where the file system allows it, else msync (ForcedPmem on tmpfs only
    /// with MCSTORE_FORCE_PMEM=1).
    Auto,
    /// Require DAX (MAP_SYNC); refuse otherwise.
    Dax,
    /// An ordinary file flushed with msync.
    Msync,
    /// Cache-line flushes on a non-DAX mapping: durable against a process crash only (tmpfs,
    /// tests, benchmarks).
    ForcedPmem,
}

impl From<ModeArg> for Mode {
    fn from(arg: ModeArg) -> Self {
        match arg {
            ModeArg::Auto => Mode::Auto,
            ModeArg::Dax => Mode::Dax,
            ModeArg::Msync => Mode::Msync,
            ModeArg::ForcedPmem => Mode::ForcedPmem,
        }
    }
}

/// The pool a subcommand works on.
#[derive(Debug, Clone, clap::Args)]
pub struct PoolArgs {
    /// The pool file.
    pub path: PathBuf,
    /// A replica file of the pool (repeat for several, in member order).
    #[arg(long = "replica", value_name = "PATH")]
    pub replicas: Vec<PathBuf>,
    /// How to map the pool file.
    #[arg(long, value_enum, default_value_t = ModeArg::Auto)]
    pub mode: ModeArg,
}

impl PoolArgs {
    /// Options for this pool: its replicas and mode, its current size (a writable open never
    /// grows it to the library's default size), no background work, a recovery progress bar
    /// over the segments.
    pub fn options(&self, output: &Output) -> Options {
        // The bar appears at the first progress report, so a failed open draws nothing.
        let output = *output;
        let bar: std::sync::OnceLock<indicatif::ProgressBar> = std::sync::OnceLock::new();
        let current_bytes = std::fs::metadata(&self.path).map_or(0, |m| m.len());
        let options = Options::default()
            .size_bytes(current_bytes)
            .mode(self.mode.into())
            .background(false)
            .compaction_interval(None)
            .on_recovery_progress(move |progress| {
                let total = u64::from(progress.segments_total);
                let bar = bar.get_or_init(|| output.bar(total, "recovering", false));
                bar.set_position(u64::from(progress.segments_done));
                if progress.segments_done >= progress.segments_total {
                    bar.finish_and_clear();
                }
            });
        if self.replicas.is_empty() { options } else { options.replicas(self.replicas.clone()) }
    }

    /// Open read-only: damage no replica repaired latches the store instead of refusing the
    /// open, so what recovery found can still be reported.
    pub fn open_read_only(&self, output: &Output) -> Result<Db> {
        let options = self.options(output).read_only(true);
        Db::open(&self.path, options).map_err(|error| Failure::pool(&self.path, error))
    }

    /// Open writable; damage no replica repaired makes the open fail (`Error::Damaged`, the
    /// caller reports it) instead of latching.
    pub fn open_writable(&self, options: Options) -> mcstore_engine::Result<Db> {
        let policy = Policy::default().engine(true, EngineFallback::Fail);
        Db::open(&self.path, options.policy(policy))
    }
}
