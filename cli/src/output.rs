//! Where a subcommand's results go: one JSON document on stdout with `--json`, human text
//! otherwise; and progress bars on stderr, drawn only for a person watching.
//!
//! INVARIANT: with `--json`, stdout holds exactly one JSON document (or nothing for `dump`,
//! whose output is the data); progress and notes go to stderr.

use std::io::{IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;

/// How results are shown.
#[derive(Clone, Copy, Debug)]
pub struct Output {
    /// `--json`: machine-readable.
    pub json: bool,
    /// Progress bars allowed (stdout is a terminal and not `--json`).
    pub progress: bool,
}

impl Output {
    /// From the `--json` flag and whether stdout is a terminal.
    pub fn new(json: bool) -> Self {
        Output { json, progress: !json && std::io::stdout().is_terminal() }
    }

    /// Print `document` (with `--json`) or `human` (otherwise) on stdout.
    pub fn emit(&self, document: &Value, human: impl FnOnce() -> String) {
        let text = if self.json {
            serde_json::to_string_pretty(document).unwrap_or_else(|_| "null".to_string())
        } else {
            human()
        };
        let mut stdout = std::io::stdout().lock();
        // A closed stdout (`| head`) is not an error worth a second message.
        let _ = writeln!(stdout, "{}", text.trim_end());
        let _ = stdout.flush();
    }

    /// A note for a person (stderr), suppressed with `--json`.
    pub fn note(&self, text: &str) {
        if !self.json {
            eprintln!("{text}");
        }
    }

    /// A progress bar of `total` units (`bytes`: shown as bytes); hidden unless allowed.
    pub fn bar(&self, total: u64, message: &str, bytes: bool) -> ProgressBar {
        if !self.progress {
            return ProgressBar::hidden();
        }
        let template = if bytes {
            "{msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})"
        } else {
            "{msg} [{bar:40}] {pos}/{len} ({per_sec}, {eta})"
        };
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(template) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(message.to_string());
        bar
    }

    /// A spinner counting units of unknown total; hidden unless allowed.
    pub fn spinner(&self, message: &str) -> ProgressBar {
        if !self.progress {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} {pos} ({per_sec})") {
            bar.set_style(style);
        }
        bar.set_message(message.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    }
}
