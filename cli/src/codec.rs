//! The portable dump format. `jsonl`: one JSON object per line,
//! `{"key":"<base64>","value":"<base64>"}` (standard alphabet, padded), which `load` reads.
//! `resp`: Redis protocol `SET key value` commands, for `redis-cli --pipe` (write-only).
//!
//! INVARIANT: every byte string round-trips exactly (base64 is binary-safe; RESP bulk strings
//! carry lengths).

use std::io::Write;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use clap::ValueEnum;
use serde_json::Value;

/// How `dump` writes records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// JSON lines with base64 keys and values (`load` reads it).
    Jsonl,
    /// Redis `SET` commands in RESP, for `redis-cli --pipe`.
    Resp,
}

/// Write one record in `format`.
pub fn write_record(
    out: &mut impl Write,
    format: Format,
    key: &[u8],
    value: &[u8],
) -> std::io::Result<()> {
    match format {
        Format::Jsonl => {
            let line = serde_json::json!({
                "key": STANDARD.encode(key),
                "value": STANDARD.encode(value),
            });
            writeln!(out, "{line}")
        }
        Format::Resp => {
            out.write_all(b"*3\r\n$3\r\nSET\r\n")?;
            for bytes in [key, value] {
                write!(out, "${}\r\n", bytes.len())?;
                out.write_all(bytes)?;
                out.write_all(b"\r\n")?;
            }
            Ok(())
        }
    }
}

/// Decode one `jsonl` line into `(key, value)`.
pub fn read_record(line: &str) -> Result<(Vec<u8>, Vec<u8>), String> {
    let object: Value = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let field = |name: &str| -> Result<Vec<u8>, String> {
        let text = object
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("no string field {name:?}"))?;
        STANDARD.decode(text).map_err(|e| format!("field {name:?} is not base64: {e}"))
    };
    Ok((field("key")?, field("value")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jsonl_round_trips_binary() {
        let key = [0u8, 255, b'\n', b'"'];
        let value: Vec<u8> = (0..=255).collect();
        let mut out = Vec::new();
        write_record(&mut out, Format::Jsonl, &key, &value).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.matches('\n').count(), 1);
        assert_eq!(read_record(text.trim_end()).unwrap(), (key.to_vec(), value));
    }

    #[test]
    fn resp_is_a_set_command_with_lengths() {
        let mut out = Vec::new();
        write_record(&mut out, Format::Resp, b"k\r", b"").unwrap();
        assert_eq!(out, b"*3\r\n$3\r\nSET\r\n$2\r\nk\r\r\n$0\r\n\r\n");
    }

    #[test]
    fn bad_lines_are_errors() {
        assert!(read_record("{").unwrap_err().contains("not JSON"));
        assert!(read_record(r#"{"key":"AA=="}"#).unwrap_err().contains("value"));
        assert!(read_record(r#"{"key":"!!","value":""}"#).unwrap_err().contains("base64"));
    }
}
