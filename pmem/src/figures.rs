//! Figures that tests produce (crash images, fence sites, corruption cases, ...), appended as
//! tab-separated records to files under `$MCSTORE_FIGURES_DIR`; the README's test command
//! (`scripts/test`) aggregates them over every test and prints one `figure:` line per name, last.
//! Without the variable nothing is written. Each record is one `write` of a whole line, so
//! concurrent tests never interleave within a line.
//!
//! Record kinds: `count` (summed: `figure: NAME N`), `of` (both sides summed:
//! `figure: NAME X of Y`), `member` (distinct items over a fixed universe, e.g. fence sites:
//! `figure: NAME X of Y`), `note` (free text: `figure: NAME VALUE`).

use std::fmt::Display;
use std::io::Write;

fn append(file: &str, line: String) {
    let Some(dir) = std::env::var_os("MCSTORE_FIGURES_DIR") else { return };
    let path = std::path::Path::new(&dir).join(format!("{file}.txt"));
    let appended = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::OpenOptions::new().create(true).append(true).open(&path))
        .and_then(|mut f| f.write_all(line.as_bytes()));
    if let Err(e) = appended {
        eprintln!("figures: cannot append to {}: {e}", path.display());
    }
}

fn clean(text: &str) -> String {
    text.replace(['\t', '\n'], " ")
}

/// Add `n` to the counter `name` (printed as `figure: NAME N`, summed over all tests).
pub fn count(file: &str, name: &str, n: u64) {
    append(file, format!("count\t{}\t{n}\n", clean(name)));
}

/// Add `x` out of `y` to `name` (printed as `figure: NAME X of Y`, both summed).
pub fn of(file: &str, name: &str, x: u64, y: u64) {
    append(file, format!("of\t{}\t{x}\t{y}\n", clean(name)));
}

/// Mark `items` as members of `name`'s set out of a universe of `universe` (printed as
/// `figure: NAME X of Y` with X the distinct items over all tests).
pub fn members<I: Display>(
    file: &str,
    name: &str,
    items: impl IntoIterator<Item = I>,
    universe: u64,
) {
    let name = clean(name);
    let mut lines = String::new();
    for item in items {
        lines.push_str(&format!("member\t{name}\t{}\t{universe}\n", clean(&item.to_string())));
    }
    if lines.is_empty() {
        lines = format!("member\t{name}\t\t{universe}\n");
    }
    append(file, lines);
}

/// A free-form figure (printed as `figure: NAME VALUE`; repeated identical lines once).
pub fn record(file: &str, name: &str, value: impl Display) {
    append(file, format!("note\t{}\t{}\n", clean(name), clean(&value.to_string())));
}

#[cfg(test)]
mod tests {
    #[test]
    fn writes_records_when_the_directory_is_set() {
        let dir = tempfile::tempdir().unwrap();
        // The variable is read per call; set it only in a child so parallel tests are unaffected.
        if std::env::var_os("MCSTORE_FIGURES_CHILD").is_none() {
            let status = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "figures::tests::writes_records_when_the_directory_is_set"])
                .env("MCSTORE_FIGURES_CHILD", "1")
                .env("MCSTORE_FIGURES_DIR", dir.path())
                .stdout(std::process::Stdio::null())
                .status()
                .unwrap();
            assert!(status.success());
            let text = std::fs::read_to_string(dir.path().join("unit.txt")).unwrap();
            assert_eq!(
                text,
                "note\tanswer\t42\ncount\timages\t7\nof\tcases\t3\t4\n\
                 member\tsites\ta\t5\nmember\tsites\tb\t5\n"
            );
        } else {
            super::record("unit", "answer", 42);
            super::count("unit", "images", 7);
            super::of("unit", "cases", 3, 4);
            super::members("unit", "sites", ["a", "b"], 5);
        }
    }
}
