//! Figures that tests produce (crash images, sites, cells), appended as `figure:` lines to files
//! under `$MCSTORE_FIGURES_DIR`; the README's test command prints them all at the end.
//! Without the variable nothing is written. Appends are single `write` calls of whole lines, so
//! concurrent tests never interleave within a line.

use std::io::Write;

/// Append `figure: <name>: <value>` to `$MCSTORE_FIGURES_DIR/<file>.txt`, if the variable is set.
pub fn record(file: &str, name: &str, value: impl std::fmt::Display) {
    let Some(dir) = std::env::var_os("MCSTORE_FIGURES_DIR") else { return };
    let path = std::path::Path::new(&dir).join(format!("{file}.txt"));
    let line = format!("figure: {name}: {value}\n");
    let appended = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = appended {
        eprintln!("figures: cannot append to {}: {e}", path.display());
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn writes_a_line_when_the_directory_is_set() {
        let dir = tempfile::tempdir().unwrap();
        // The variable is read per call; set it only in a child so parallel tests are unaffected.
        if std::env::var_os("MCSTORE_FIGURES_CHILD").is_none() {
            let status = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "figures::tests::writes_a_line_when_the_directory_is_set"])
                .env("MCSTORE_FIGURES_CHILD", "1")
                .env("MCSTORE_FIGURES_DIR", dir.path())
                .stdout(std::process::Stdio::null())
                .status()
                .unwrap();
            assert!(status.success());
            let text = std::fs::read_to_string(dir.path().join("unit.txt")).unwrap();
            assert_eq!(text, "figure: answer: 42\n");
        } else {
            super::record("unit", "answer", 42);
        }
    }
}
