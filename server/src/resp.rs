//! The request parser: RESP arrays of bulk strings (what clients send) and inline commands (what
//! `telnet` and some `redis-cli` modes send), several per read (pipelining).
//!
//! INVARIANT: client bytes are hostile. Every declared length is checked against the limits
//! before it is used, nothing is allocated for a declared length before its bytes arrived, a
//! request nests no deeper than one array of bulk strings, and any violation is a
//! `ProtocolError` (the connection answers it and closes), never a panic. Complete arguments
//! are consumed as they arrive, so a large request is scanned once, not once per read.

use crate::limits::{ARGS_MAX, ARGS_PREALLOCATED_MAX, INLINE_BYTES_MAX};

/// One command: its name and arguments, as sent.
pub type Args = Vec<Vec<u8>>;

/// Input the parser refuses; its text is what the client is told (after `ERR `).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("Protocol error: {0}")]
pub struct ProtocolError(pub String);

fn refuse<T>(text: impl Into<String>) -> Result<T, ProtocolError> {
    Err(ProtocolError(text.into()))
}

/// A command being received: the arguments complete so far.
#[derive(Debug, Default)]
struct Partial {
    args: Args,
    /// Arguments still to come.
    remaining: usize,
    /// Bytes of the request so far.
    bytes: usize,
}

/// The incremental request parser of one connection.
#[derive(Debug)]
pub struct Parser {
    partial: Option<Partial>,
    request_bytes_max: usize,
}

impl Parser {
    /// A parser refusing requests larger than `request_bytes_max`.
    pub fn new(request_bytes_max: usize) -> Self {
        Self { partial: None, request_bytes_max }
    }

    /// Whether a command is partly received.
    pub fn is_mid_command(&self) -> bool {
        self.partial.is_some()
    }

    /// Parse from the front of `buf`: `(Some(args), used)` for a complete command, `(None,
    /// used)` when more bytes are needed. `used` bytes were consumed either way (the caller
    /// drops them). An empty `args` is a blank line or an empty array, which the caller skips.
    pub fn parse(&mut self, buf: &[u8]) -> Result<(Option<Args>, usize), ProtocolError> {
        let mut used = 0;
        if self.partial.is_none() {
            match buf.first() {
                None => return Ok((None, 0)),
                Some(b'*') => {}
                Some(_) => {
                    return Ok(match parse_inline(buf)? {
                        Some((args, used)) => (Some(args), used),
                        None => (None, 0),
                    });
                }
            }
            let Some((head, after)) = line(buf, 1, "mbulk count string")? else {
                return Ok((None, 0));
            };
            let count = match number(head) {
                Some(n) if n <= 0 => return Ok((Some(Vec::new()), after)),
                Some(n) if usize::try_from(n).is_ok_and(|n| n <= ARGS_MAX) => n as usize,
                _ => return refuse("invalid multibulk length"),
            };
            let args = Vec::with_capacity(count.min(ARGS_PREALLOCATED_MAX));
            self.partial = Some(Partial { args, remaining: count, bytes: after });
            used = after;
        }
        let max = self.request_bytes_max;
        let Some(partial) = self.partial.as_mut() else { return Ok((None, used)) };
        while partial.remaining > 0 {
            match buf.get(used) {
                None => return Ok((None, used)),
                Some(b'$') => {}
                Some(&other) => {
                    let shown = char::from(other).escape_default();
                    return refuse(format!("expected '$', got '{shown}'"));
                }
            }
            let Some((head, body)) = line(buf, used + 1, "bulk count string")? else {
                return Ok((None, used));
            };
            let len = match number(head) {
                Some(n) if usize::try_from(n).is_ok_and(|n| n <= max) => n as usize,
                _ => return refuse("invalid bulk length"),
            };
            // No overflow: every term is at most `max` or a buffer length.
            if partial.bytes + (body - used) + len + 2 > max {
                return refuse("request exceeds the request size limit");
            }
            let end = body + len;
            if buf.len() < end + 2 {
                return Ok((None, used));
            }
            if &buf[end..end + 2] != b"\r\n" {
                return refuse("bulk string not terminated by CRLF");
            }
            partial.args.push(buf[body..end].to_vec());
            partial.bytes += end + 2 - used;
            partial.remaining -= 1;
            used = end + 2;
        }
        let args = self.partial.take().map(|partial| partial.args);
        Ok((args, used))
    }
}

/// The line starting at `at` (without CR LF) and the offset after it; `None` if incomplete.
fn line<'a>(
    buf: &'a [u8],
    at: usize,
    what: &str,
) -> Result<Option<(&'a [u8], usize)>, ProtocolError> {
    let rest = &buf[at.min(buf.len())..];
    match rest.iter().take(INLINE_BYTES_MAX + 2).position(|&b| b == b'\n') {
        Some(end) => {
            let text = rest[..end].strip_suffix(b"\r").unwrap_or(&rest[..end]);
            Ok(Some((text, at + end + 1)))
        }
        None if rest.len() > INLINE_BYTES_MAX => refuse(format!("too big {what}")),
        None => Ok(None),
    }
}

fn number(text: &[u8]) -> Option<i64> {
    std::str::from_utf8(text).ok()?.parse().ok()
}

fn parse_inline(buf: &[u8]) -> Result<Option<(Args, usize)>, ProtocolError> {
    let Some((text, used)) = line(buf, 0, "inline request")? else { return Ok(None) };
    Ok(Some((split_inline(text)?, used)))
}

/// Split an inline line into arguments like Redis does: blanks separate, `"…"` takes `\n`,
/// `\r`, `\t`, `\\`, `\"` and `\xHH` escapes, `'…'` takes `\'`.
pub fn split_inline(text: &[u8]) -> Result<Args, ProtocolError> {
    let mut args = Vec::new();
    let mut at = 0;
    loop {
        while at < text.len() && text[at].is_ascii_whitespace() {
            at += 1;
        }
        if at == text.len() {
            return Ok(args);
        }
        let mut arg = Vec::new();
        match text[at] {
            quote @ (b'"' | b'\'') => {
                at += 1;
                loop {
                    let Some(&byte) = text.get(at) else {
                        return refuse("unbalanced quotes in request");
                    };
                    match byte {
                        b'\\' if at + 1 < text.len() => {
                            let (value, step) = unescape(&text[at + 1..], quote);
                            arg.push(value);
                            at += 1 + step;
                        }
                        b if b == quote => {
                            at += 1;
                            if text.get(at).is_some_and(|b| !b.is_ascii_whitespace()) {
                                return refuse("unbalanced quotes in request");
                            }
                            break;
                        }
                        b => {
                            arg.push(b);
                            at += 1;
                        }
                    }
                }
            }
            _ => {
                while at < text.len() && !text[at].is_ascii_whitespace() {
                    arg.push(text[at]);
                    at += 1;
                }
            }
        }
        args.push(arg);
    }
}

/// The byte an escape after a backslash stands for, and how many bytes the escape used.
fn unescape(rest: &[u8], quote: u8) -> (u8, usize) {
    if quote == b'\'' {
        return if rest[0] == b'\'' { (b'\'', 1) } else { (b'\\', 0) };
    }
    let hex = |b: u8| char::from(b).to_digit(16);
    match rest[0] {
        b'n' => (b'\n', 1),
        b'r' => (b'\r', 1),
        b't' => (b'\t', 1),
        b'b' => (8, 1),
        b'a' => (7, 1),
        b'x' if rest.len() >= 3 => match (hex(rest[1]), hex(rest[2])) {
            // Two hex digits: at most 255.
            (Some(high), Some(low)) => (u8::try_from(high * 16 + low).unwrap_or(0), 3),
            _ => (b'x', 1),
        },
        other => (other, 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 1 << 20;

    fn args(list: &[&str]) -> Args {
        list.iter().map(|a| a.as_bytes().to_vec()).collect()
    }

    /// Feed `input` in pieces of `step` bytes; the commands parsed.
    fn feed(input: &[u8], step: usize) -> Result<Vec<Args>, ProtocolError> {
        let mut parser = Parser::new(MAX);
        let (mut buf, mut got) = (Vec::new(), Vec::new());
        for piece in input.chunks(step) {
            buf.extend_from_slice(piece);
            loop {
                let (args, used) = parser.parse(&buf)?;
                buf.drain(..used);
                match args {
                    Some(args) => got.push(args),
                    None => break,
                }
            }
        }
        Ok(got)
    }

    fn parse_all(input: &[u8]) -> Result<Vec<Args>, ProtocolError> {
        feed(input, input.len().max(1))
    }

    #[test]
    fn pipelined_arrays_parse_whatever_the_read_boundaries() {
        let two = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n*0\r\n";
        for step in 1..=two.len() {
            let got = feed(two, step).unwrap();
            assert_eq!(got, vec![args(&["GET", "k"]), args(&["PING"]), vec![]], "step {step}");
        }
        let mut parser = Parser::new(MAX);
        assert_eq!(parser.parse(b"*2\r\n$3\r\nGET\r\n").unwrap(), (None, 13));
        assert!(parser.is_mid_command());
    }

    #[test]
    fn hostile_lengths_are_refused_before_allocation() {
        let huge = format!("*1\r\n${}\r\n", u64::MAX);
        assert!(parse_all(huge.as_bytes()).is_err());
        assert!(parse_all(b"*1\r\n$2000000\r\n").is_err());
        assert!(parse_all(b"*99999999999\r\n").is_err());
        assert!(parse_all(b"*1\r\n$-5\r\n").is_err());
        assert!(parse_all(b"*1\r\n*1\r\n$1\r\na\r\n").is_err());
        assert!(parse_all(b"*1\r\n$1\r\nab\r\n").is_err());
        assert!(parse_all(b"*x\r\n").is_err());
        // Arguments whose sum exceeds the limit.
        let mut many = b"*3\r\n".to_vec();
        for _ in 0..3 {
            many.extend_from_slice(format!("${}\r\n", MAX / 2).as_bytes());
            many.extend_from_slice(&vec![b'a'; MAX / 2]);
            many.extend_from_slice(b"\r\n");
        }
        assert!(parse_all(&many).is_err());
        // A declared count alone allocates nothing and waits.
        assert_eq!(parse_all(b"*1000000\r\n").unwrap(), Vec::<Args>::new());
        let long = vec![b'a'; INLINE_BYTES_MAX + 10];
        assert!(parse_all(&long).is_err());
    }

    #[test]
    fn inline_commands_split_like_redis() {
        let line = b"SET k \"a b\\x41\\n\" 'it\\'s'\r\nPING\r\n\r\n";
        let got = parse_all(line).unwrap();
        let want = vec![b"SET".to_vec(), b"k".to_vec(), b"a bA\n".to_vec(), b"it's".to_vec()];
        assert_eq!(got, vec![want, args(&["PING"]), vec![]]);
        assert!(parse_all(b"GET \"k\r\n").is_err());
        assert!(parse_all(b"GET \"k\"x\r\n").is_err());
        assert_eq!(parse_all(b"PING").unwrap(), Vec::<Args>::new());
    }
}
