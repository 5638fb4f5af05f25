//! `Reply`: what a command answers, and its encoding in RESP2 or RESP3 (after `HELLO 3`).
//!
//! INVARIANT: a simple string or error never holds CR or LF (constructors replace them), so an
//! encoded reply is always one well-formed frame whatever a client or the engine put in it.

use std::io::Write as _;

/// One reply frame.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// `+text`.
    Simple(String),
    /// `-CODE text`: the whole line, the code first (`ERR`, `MEDIA`, `NOAUTH` ...).
    Error(String),
    /// `:n`.
    Int(i64),
    /// `$len` bytes.
    Bulk(Vec<u8>),
    /// The null bulk string (`$-1`; RESP3 `_`).
    Nil,
    /// The null array (`*-1`; RESP3 `_`).
    NilArray,
    /// `*n` items.
    Array(Vec<Reply>),
    /// RESP3 `%n` pairs; a flat array of 2n items in RESP2.
    Map(Vec<(Reply, Reply)>),
    /// RESP3 verbatim text (`=len txt:…`); a bulk string in RESP2.
    Verbatim(String),
    /// RESP3 double (`,`); a bulk string in RESP2.
    Double(f64),
}

impl Reply {
    /// `+OK`.
    pub fn ok() -> Reply {
        Reply::Simple("OK".to_string())
    }

    /// An error reply: `code` then `text`, CR/LF replaced by spaces.
    pub fn error(code: &str, text: impl AsRef<str>) -> Reply {
        Reply::Error(one_line(&format!("{code} {}", text.as_ref())))
    }

    /// `-ERR text`.
    pub fn err(text: impl AsRef<str>) -> Reply {
        Reply::error("ERR", text)
    }

    /// A bulk string of `text`.
    pub fn text(text: impl AsRef<[u8]>) -> Reply {
        Reply::Bulk(text.as_ref().to_vec())
    }

    /// A simple string (CR/LF replaced).
    pub fn simple(text: impl AsRef<str>) -> Reply {
        Reply::Simple(one_line(text.as_ref()))
    }

    /// Whether this is an error reply.
    pub fn is_error(&self) -> bool {
        matches!(self, Reply::Error(_))
    }

    /// Append the encoding of this reply for protocol `resp` (2 or 3) to `out`.
    pub fn encode(&self, resp: u8, out: &mut Vec<u8>) {
        let resp3 = resp >= 3;
        match self {
            Reply::Simple(text) => frame(out, b'+', text.as_bytes()),
            Reply::Error(text) => frame(out, b'-', text.as_bytes()),
            Reply::Int(n) => header(out, b':', *n),
            Reply::Bulk(bytes) => bulk(out, b'$', bytes),
            Reply::Nil if resp3 => out.extend_from_slice(b"_\r\n"),
            Reply::Nil => out.extend_from_slice(b"$-1\r\n"),
            Reply::NilArray if resp3 => out.extend_from_slice(b"_\r\n"),
            Reply::NilArray => out.extend_from_slice(b"*-1\r\n"),
            Reply::Array(items) => {
                header(out, b'*', len_i64(items.len()));
                for item in items {
                    item.encode(resp, out);
                }
            }
            Reply::Map(pairs) => {
                if resp3 {
                    header(out, b'%', len_i64(pairs.len()));
                } else {
                    header(out, b'*', len_i64(pairs.len() * 2));
                }
                for (key, value) in pairs {
                    key.encode(resp, out);
                    value.encode(resp, out);
                }
            }
            Reply::Verbatim(text) if resp3 => {
                let mut body = b"txt:".to_vec();
                body.extend_from_slice(text.as_bytes());
                bulk(out, b'=', &body);
            }
            Reply::Verbatim(text) => bulk(out, b'$', text.as_bytes()),
            Reply::Double(x) if resp3 => frame(out, b',', format_double(*x).as_bytes()),
            Reply::Double(x) => bulk(out, b'$', format_double(*x).as_bytes()),
        }
    }
}

/// A float as Redis prints it: the shortest text that reads back the same, `inf`/`-inf`.
pub fn format_double(x: f64) -> String {
    if x.is_infinite() {
        return if x > 0.0 { "inf".to_string() } else { "-inf".to_string() };
    }
    format!("{x}")
}

fn one_line(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}

fn len_i64(len: usize) -> i64 {
    i64::try_from(len).unwrap_or(i64::MAX)
}

fn frame(out: &mut Vec<u8>, tag: u8, body: &[u8]) {
    out.push(tag);
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n");
}

fn header(out: &mut Vec<u8>, tag: u8, n: i64) {
    out.push(tag);
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{n}\r\n");
}

fn bulk(out: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    header(out, tag, len_i64(bytes.len()));
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(reply: &Reply, resp: u8) -> String {
        let mut out = Vec::new();
        reply.encode(resp, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn resp2_and_resp3_differ_where_redis_does() {
        assert_eq!(encoded(&Reply::Nil, 2), "$-1\r\n");
        assert_eq!(encoded(&Reply::Nil, 3), "_\r\n");
        assert_eq!(encoded(&Reply::NilArray, 2), "*-1\r\n");
        let map = Reply::Map(vec![(Reply::text("a"), Reply::Int(1))]);
        assert_eq!(encoded(&map, 2), "*2\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(encoded(&map, 3), "%1\r\n$1\r\na\r\n:1\r\n");
        assert_eq!(encoded(&Reply::Verbatim("x".into()), 3), "=5\r\ntxt:x\r\n");
        assert_eq!(encoded(&Reply::Verbatim("x".into()), 2), "$1\r\nx\r\n");
        assert_eq!(encoded(&Reply::Double(1.5), 3), ",1.5\r\n");
        assert_eq!(encoded(&Reply::Double(1.5), 2), "$3\r\n1.5\r\n");
    }

    #[test]
    fn errors_stay_on_one_line() {
        let reply = Reply::err("bad\r\nkey");
        assert_eq!(encoded(&reply, 2), "-ERR bad  key\r\n");
        assert!(reply.is_error());
        assert_eq!(encoded(&Reply::simple("a\nb"), 2), "+a b\r\n");
    }
}
