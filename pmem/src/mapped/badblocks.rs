//! The `<pool>.badblocks` sidecar: the emulated kernel bad-block list of one pool file.
//!
//! Format (docs/badblocks.md): one range per line, `OFFSET LENGTH` in decimal bytes, `#` starts a
//! comment, blank lines are fine. Applied at open as emulated poison; a repaired range is removed.
//! INVARIANT: every rewrite is atomic (temp file, fsync, rename, directory fsync) and keeps the
//! comment lines; a malformed file is an error naming the line, never silently skipped.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

use super::ranges::RangeSet;

/// One line of the sidecar.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Line {
    /// A range `(offset, len)`, with the comment that followed it on the line (if any).
    Range(u64, u64, String),
    /// A blank or comment-only line, kept verbatim.
    Other(String),
}

/// A parsed sidecar.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BadBlocks {
    lines: Vec<Line>,
}

impl BadBlocks {
    /// The sidecar of the pool at `pool`: the same path with `.badblocks` appended.
    pub fn sidecar_path(pool: &Path) -> PathBuf {
        let mut name = pool.as_os_str().to_os_string();
        name.push(".badblocks");
        PathBuf::from(name)
    }

    /// Read the sidecar at `path`; a missing file is an empty list.
    pub fn load(path: &Path) -> Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(path, &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(Error::io(format!("read {}", path.display()), e)),
        }
    }

    /// Parse sidecar text; `path` only names the file in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Self> {
        let lines = text
            .lines()
            .enumerate()
            .map(|(index, line)| {
                parse_line(line).map_err(|reason| Error::BadBlocksFormat {
                    path: path.to_path_buf(),
                    line: index + 1,
                    reason,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { lines })
    }

    /// The listed ranges as `(offset, len)`, sorted and coalesced.
    pub fn ranges(&self) -> Vec<(u64, u64)> {
        self.set().offset_len()
    }

    fn set(&self) -> RangeSet {
        let mut set = RangeSet::default();
        for line in &self.lines {
            if let Line::Range(offset, len, _) = *line {
                set.insert(offset, offset + len);
            }
        }
        set
    }

    /// Add `(offset, len)` to the sidecar at `path` (created if missing). A range already wholly
    /// listed leaves the file untouched.
    pub fn add(path: &Path, range: (u64, u64)) -> Result<()> {
        let (offset, len) = range;
        let end = checked_end(offset, len).map_err(|reason| Error::BadBlocksFormat {
            path: path.to_path_buf(),
            line: 0,
            reason,
        })?;
        let mut list = Self::load(path)?;
        let listed: u64 = list.set().intersections(offset, end).iter().map(|&(s, e)| e - s).sum();
        if listed == len {
            return Ok(());
        }
        list.lines.push(Line::Range(offset, len, String::new()));
        write_atomic(path, &list.render())
    }

    /// Remove `(offset, len)` from the sidecar at `path`: listed ranges are cut (a range partly
    /// covered keeps the rest). A missing file, or nothing listed there, changes nothing.
    pub fn remove(path: &Path, range: (u64, u64)) -> Result<()> {
        let (offset, len) = range;
        let Some(end) = offset.checked_add(len) else {
            return Ok(());
        };
        if !path.exists() {
            return Ok(());
        }
        let list = Self::load(path)?;
        let mut changed = false;
        let mut lines = Vec::with_capacity(list.lines.len());
        for line in list.lines {
            match line {
                Line::Range(s, l, comment) if s < end && offset < s + l => {
                    changed = true;
                    if s < offset {
                        lines.push(Line::Range(s, offset - s, comment.clone()));
                    }
                    if end < s + l {
                        lines.push(Line::Range(end, s + l - end, comment));
                    }
                }
                other => lines.push(other),
            }
        }
        if !changed {
            return Ok(());
        }
        write_atomic(path, &Self { lines }.render())
    }

    fn render(&self) -> String {
        let mut text = String::new();
        for line in &self.lines {
            match line {
                Line::Range(offset, len, comment) => {
                    text.push_str(&format!("{offset} {len}"));
                    if !comment.is_empty() {
                        text.push_str(&format!(" #{comment}"));
                    }
                }
                Line::Other(raw) => text.push_str(raw),
            }
            text.push('\n');
        }
        text
    }
}

fn checked_end(offset: u64, len: u64) -> std::result::Result<u64, String> {
    if len == 0 {
        return Err("length must be positive".to_string());
    }
    offset.checked_add(len).ok_or_else(|| format!("range {offset}+{len} overflows"))
}

fn parse_line(raw: &str) -> std::result::Result<Line, String> {
    let (content, comment) = match raw.split_once('#') {
        Some((content, comment)) => (content, comment),
        None => (raw, ""),
    };
    let fields: Vec<&str> = content.split_whitespace().collect();
    match fields.as_slice() {
        [] => Ok(Line::Other(raw.to_string())),
        [offset, len] => {
            let number = |what: &str, text: &str| {
                if !text.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(format!("{what} `{text}` is not a decimal number of bytes"));
                }
                text.parse::<u64>().map_err(|_| format!("{what} `{text}` is too large"))
            };
            let offset = number("offset", offset)?;
            let len = number("length", len)?;
            checked_end(offset, len)?;
            Ok(Line::Range(offset, len, comment.to_string()))
        }
        _ => Err(format!("expected `OFFSET LENGTH`, found {} fields", fields.len())),
    }
}

/// Replace `path` with `text` atomically: temp file in the same directory, fsync, rename,
/// directory fsync.
fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let io = |what: &str, e| Error::io(format!("{what} {}", tmp.display()), e);
    let mut file = std::fs::File::create(&tmp).map_err(|e| io("create", e))?;
    file.write_all(text.as_bytes()).map_err(|e| io("write", e))?;
    file.sync_all().map_err(|e| io("fsync", e))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(format!("rename to {}", path.display()), e)
    })?;
    std::fs::File::open(&dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("fsync directory {}", dir.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ranges_comments_and_blanks() {
        let text = "# header\n\n4096 4096\n  8192   100 # trailing\n1000000 1\n";
        let list = BadBlocks::parse(Path::new("p"), text).unwrap();
        assert_eq!(list.ranges(), vec![(4096, 8192 + 100 - 4096), (1_000_000, 1)]);
        assert_eq!(list.render(), text.replace("  8192   100 # trailing", "8192 100 # trailing"));
    }

    #[test]
    fn malformed_lines_name_their_number() {
        let cases = [
            ("0 4096\n12\n", 2, "fields"),
            ("# c\n\n1 2 3\n", 3, "fields"),
            ("x 4096\n", 1, "decimal"),
            ("-1 4096\n", 1, "decimal"),
            ("0x10 4096\n", 1, "decimal"),
            ("4096 0\n", 1, "positive"),
            ("18446744073709551615 2\n", 1, "overflows"),
            ("99999999999999999999 1\n", 1, "too large"),
        ];
        for (text, line_no, needle) in cases {
            match BadBlocks::parse(Path::new("pool.badblocks"), text) {
                Err(Error::BadBlocksFormat { line, reason, .. }) => {
                    assert_eq!(line, line_no, "{text:?}");
                    assert!(reason.contains(needle), "{text:?}: {reason}");
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn add_and_remove_rewrite_atomically_and_keep_comments() {
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        let path = BadBlocks::sidecar_path(&dir.path().join("pool"));
        assert_eq!(path.file_name().unwrap(), "pool.badblocks");
        assert!(BadBlocks::load(&path).unwrap().ranges().is_empty());
        BadBlocks::remove(&path, (0, 4096)).unwrap();
        assert!(!path.exists());

        std::fs::write(&path, "# kept\n8192 8192 # two pages\n").unwrap();
        BadBlocks::add(&path, (65536, 4096)).unwrap();
        BadBlocks::add(&path, (8192, 4096)).unwrap(); // already listed: no change
        assert_eq!(BadBlocks::load(&path).unwrap().ranges(), vec![(8192, 8192), (65536, 4096)]);

        BadBlocks::remove(&path, (12288, 4096)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "# kept\n8192 4096 # two pages\n65536 4096\n");
        BadBlocks::remove(&path, (0, 1 << 20)).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "# kept\n");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().contains(".tmp."))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn add_rejects_an_empty_range() {
        let dir = tempfile::tempdir_in("/dev/shm").unwrap();
        let path = dir.path().join("p.badblocks");
        assert!(matches!(BadBlocks::add(&path, (0, 0)), Err(Error::BadBlocksFormat { .. })));
        assert!(!path.exists());
    }
}
