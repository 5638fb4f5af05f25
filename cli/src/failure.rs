//! How a subcommand ends: `Outcome` (ok, or damage found) or a `Failure` (one-line message).
//!
//! INVARIANT: exit codes are 0 ok, 1 error, 2 damage found (check, scrub); nothing below `main`
//! exits the process or panics on bad input.

use std::fmt;
use std::path::Path;

/// A subcommand that ran to the end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Done; nothing wrong found.
    Ok,
    /// Done; damage found that remains (exit 2).
    Damage,
}

impl Outcome {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Outcome::Ok => 0,
            Outcome::Damage => 2,
        }
    }
}

/// A subcommand that could not do its work: a one-line message (exit 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure(pub String);

impl Failure {
    /// `context: error` as one line.
    pub fn new(context: impl fmt::Display, error: impl fmt::Display) -> Self {
        Failure(one_line(&format!("{context}: {error}")))
    }

    /// Opening or creating the pool at `path` failed with `error`.
    pub fn pool(path: &Path, error: impl fmt::Display) -> Self {
        let text = error.to_string();
        let shown = path.display().to_string();
        // The engine's NotFound/Locked/AlreadyExists messages already name the path.
        if text.starts_with(&shown) { Failure(one_line(&text)) } else { Failure::new(shown, text) }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The result of a subcommand.
pub type Result<T = Outcome> = std::result::Result<T, Failure>;

/// Multi-line text (a recovery report inside an error) folded to one line.
fn one_line(text: &str) -> String {
    text.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_one_line_and_name_the_path_once() {
        let failure = Failure::pool(Path::new("/p"), "/p: not found");
        assert_eq!(failure.0, "/p: not found");
        let failure = Failure::pool(Path::new("/p"), "unsupported format:\n  bad magic\n");
        assert_eq!(failure.0, "/p: unsupported format:; bad magic");
        assert_eq!(Outcome::Damage.code(), 2);
        assert_eq!(Outcome::Ok.code(), 0);
    }
}
