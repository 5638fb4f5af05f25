//! `mcstore`: the command-line tool for mcstore pools — create, info, check, scrub, dump, load,
//! compact, badblocks, bench, serve (docs/cli.md).
//!
//! INVARIANT: exit code 0 ok, 1 error (one line on stderr; with `--json` also
//! `{"error": …}` on stdout), 2 damage found (check, scrub). Bad input never panics.
#![forbid(unsafe_code)]

mod codec;
mod commands;
mod failure;
mod output;
mod pool;
mod render;
mod size;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::commands::{badblocks, bench, check, compact, create, dump, info, load, scrub, serve};
use crate::failure::Result;
use crate::output::Output;

/// mcstore: a log-structured key-value store for persistent memory that keeps working when the
/// memory fails. Exit codes: 0 ok, 1 error, 2 damage found (check, scrub).
#[derive(Debug, Parser)]
#[command(name = "mcstore", version, propagate_version = true)]
struct Cli {
    /// Print one JSON document on stdout instead of text (no progress bars).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a new pool file (and replicas).
    Create(create::CreateArgs),
    /// Show a pool's geometry, mode, members, keys, space and last recovery (read-only).
    Info(info::InfoArgs),
    /// Verify every committed record and report damage (exit 2 if damage remains);
    /// --repair fixes from replicas, --salvage drops what none holds.
    Check(check::CheckArgs),
    /// Read every live byte, heal from replicas, report the rest (exit 2 on damage).
    Scrub(scrub::ScrubArgs),
    /// Export records to stdout (jsonl with base64 keys/values, or RESP SET commands).
    Dump(dump::DumpArgs),
    /// Import a jsonl dump (a file or stdin) into an existing pool, in batches.
    Load(load::LoadArgs),
    /// Run one compaction pass and print what it reclaimed.
    Compact(compact::CompactArgs),
    /// Show or edit the pool's .badblocks sidecar (list, add OFFSET LEN, clear).
    Badblocks(badblocks::BadBlocksArgs),
    /// Quick put/get/scan measurement of this machine (full comparison: mcstore-bench).
    Bench(bench::BenchArgs),
    /// Serve a pool over the Redis protocol until SIGINT/SIGTERM.
    Serve(serve::ServeArgs),
}

fn run(command: &Command, output: &Output) -> Result {
    match command {
        Command::Create(args) => create::run(args, output),
        Command::Info(args) => info::run(args, output),
        Command::Check(args) => check::run(args, output),
        Command::Scrub(args) => scrub::run(args, output),
        Command::Dump(args) => dump::run(args, output),
        Command::Load(args) => load::run(args, output),
        Command::Compact(args) => compact::run(args, output),
        Command::Badblocks(args) => badblocks::run(args, output),
        Command::Bench(args) => bench::run(args, output),
        Command::Serve(args) => serve::run(args, output),
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            use clap::error::ErrorKind;
            let _ = error.print();
            // Usage errors are errors (1), never "damage found" (2, clap's default).
            let code = match error.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => 0,
                _ => 1,
            };
            return ExitCode::from(code);
        }
    };
    let output = Output::new(cli.json);
    match run(&cli.command, &output) {
        Ok(outcome) => ExitCode::from(outcome.code()),
        Err(failure) => {
            eprintln!("mcstore: error: {failure}");
            if cli.json {
                output.emit(&serde_json::json!({ "error": failure.0 }), String::new);
            }
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_parses() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "mcstore",
            "create",
            "/p",
            "--size",
            "64MiB",
            "--segment-size",
            "1M",
            "--json",
        ])
        .unwrap();
        assert!(cli.json);
        match cli.command {
            Command::Create(args) => {
                assert_eq!((args.size, args.segment_size), (64 << 20, 1 << 20))
            }
            other => panic!("parsed as {other:?}"),
        }
        let cli = Cli::try_parse_from(["mcstore", "badblocks", "/p", "add", "4K", "4096"]).unwrap();
        match cli.command {
            Command::Badblocks(args) => assert!(matches!(
                args.action,
                Some(badblocks::Action::Add { offset: 4096, len: 4096 })
            )),
            other => panic!("parsed as {other:?}"),
        }
        assert!(Cli::try_parse_from(["mcstore", "create", "/p", "--size", "1Q"]).is_err());
        assert!(Cli::try_parse_from(["mcstore", "check", "/p", "--salvage"]).is_err());
    }
}
