//! The string commands (GET, SET and options, MGET/MSET, INCR family, APPEND, ranges, DEL,
//! EXISTS, TYPE), written once against `Store` so they run alone or inside EXEC.
//!
//! INVARIANT: a command's arguments are fully validated before anything is written, so an
//! error reply never follows a partial write; Redis's error texts are kept where clients parse
//! them (integers, overflow, floats, syntax).

use crate::reply::{Reply, format_double};
use crate::store::{Store, Write};

/// Redis's error for a non-integer value or argument.
pub const NOT_INTEGER: &str = "value is not an integer or out of range";
const NOT_FLOAT: &str = "value is not a valid float";
const OVERFLOW: &str = "increment or decrement would overflow";
const TOO_BIG: &str = "string exceeds maximum allowed size (proto-max-bulk-len)";
/// What SET says to EX/PX/EXAT/PXAT: mcstore keeps no expiry, and never ignores one silently.
pub const NO_EXPIRY: &str =
    "expiry (EX/PX/EXAT/PXAT) is not supported by mcstore: keys never expire; nothing was set";

type Outcome = Result<Reply, Reply>;

/// Run the string command `name` (lowercase) with `args` (the name first; arity checked).
pub fn run(name: &str, args: &[Vec<u8>], store: &mut dyn Store, value_bytes_max: usize) -> Reply {
    let outcome = match name {
        "get" => get(store, &args[1]),
        "set" => set(store, args),
        "setnx" => setnx(store, &args[1], &args[2]),
        "getset" => getset(store, &args[1], &args[2]),
        "getdel" => getdel(store, &args[1]),
        "mget" => mget(store, &args[1..]),
        "mset" => mset(store, &args[1..], false),
        "msetnx" => mset(store, &args[1..], true),
        "del" | "unlink" => del(store, &args[1..]),
        "exists" => exists(store, &args[1..]),
        "append" => append(store, &args[1], &args[2]),
        "strlen" => strlen(store, &args[1]),
        "getrange" | "substr" => getrange(store, &args[1], &args[2], &args[3]),
        "setrange" => setrange(store, &args[1], &args[2], &args[3], value_bytes_max),
        "incr" => incr_by(store, &args[1], 1),
        "decr" => incr_by(store, &args[1], -1),
        "incrby" => integer(&args[2]).and_then(|by| incr_by(store, &args[1], by)),
        "decrby" => integer(&args[2]).and_then(|by| match by.checked_neg() {
            Some(by) => incr_by(store, &args[1], by),
            None => Err(Reply::err("decrement would overflow")),
        }),
        "incrbyfloat" => incr_by_float(store, &args[1], &args[2]),
        "type" => kind(store, &args[1]),
        other => Err(Reply::err(format!("unknown string command '{other}'"))),
    };
    outcome.unwrap_or_else(|error| error)
}

/// Whether `name` is a string command `run` executes.
pub fn is_string_command(name: &str) -> bool {
    matches!(
        name,
        "get"
            | "set"
            | "setnx"
            | "getset"
            | "getdel"
            | "mget"
            | "mset"
            | "msetnx"
            | "del"
            | "unlink"
            | "exists"
            | "append"
            | "strlen"
            | "getrange"
            | "substr"
            | "setrange"
            | "incr"
            | "decr"
            | "incrby"
            | "decrby"
            | "incrbyfloat"
            | "type"
    )
}

fn bulk_or_nil(value: Option<&[u8]>) -> Reply {
    value.map_or(Reply::Nil, Reply::text)
}

fn get(store: &mut dyn Store, key: &[u8]) -> Outcome {
    Ok(bulk_or_nil(store.get(key)?.as_deref()))
}

/// The options of SET.
#[derive(Default)]
struct SetOptions {
    nx: bool,
    xx: bool,
    get: bool,
}

fn set_options(options: &[Vec<u8>]) -> Result<SetOptions, Reply> {
    let mut parsed = SetOptions::default();
    let mut expiry = false;
    let mut at = 0;
    while at < options.len() {
        match options[at].to_ascii_lowercase().as_slice() {
            b"nx" if !parsed.xx => parsed.nx = true,
            b"xx" if !parsed.nx => parsed.xx = true,
            b"get" => parsed.get = true,
            b"keepttl" => {}
            b"ex" | b"px" | b"exat" | b"pxat" if at + 1 < options.len() => {
                expiry = true;
                at += 1;
            }
            _ => return Err(Reply::err("syntax error")),
        }
        at += 1;
    }
    if expiry {
        return Err(Reply::err(NO_EXPIRY));
    }
    Ok(parsed)
}

fn set(store: &mut dyn Store, args: &[Vec<u8>]) -> Outcome {
    let (key, value) = (&args[1], &args[2]);
    let options = set_options(&args[3..])?;
    if !(options.nx || options.xx || options.get) {
        store.put(key, value)?;
        return Ok(Reply::ok());
    }
    Ok(store.update(key, &mut |current| {
        let allowed = match current {
            None => !options.xx,
            Some(_) => !options.nx,
        };
        let reply = match (options.get, allowed) {
            (true, _) => bulk_or_nil(current),
            (false, true) => Reply::ok(),
            (false, false) => Reply::Nil,
        };
        (if allowed { Write::Put(value.clone()) } else { Write::Keep }, reply)
    })?)
}

fn setnx(store: &mut dyn Store, key: &[u8], value: &[u8]) -> Outcome {
    Ok(store.update(key, &mut |current| match current {
        None => (Write::Put(value.to_vec()), Reply::Int(1)),
        Some(_) => (Write::Keep, Reply::Int(0)),
    })?)
}

fn getset(store: &mut dyn Store, key: &[u8], value: &[u8]) -> Outcome {
    Ok(store.update(key, &mut |current| (Write::Put(value.to_vec()), bulk_or_nil(current)))?)
}

fn getdel(store: &mut dyn Store, key: &[u8]) -> Outcome {
    Ok(store.update(key, &mut |current| match current {
        None => (Write::Keep, Reply::Nil),
        Some(value) => (Write::Remove, Reply::text(value)),
    })?)
}

fn mget(store: &mut dyn Store, keys: &[Vec<u8>]) -> Outcome {
    // A key that cannot be read is an error item; the other keys are still answered.
    let items = store
        .get_many(keys)?
        .into_iter()
        .map(|item| match item {
            Ok(value) => bulk_or_nil(value.as_deref()),
            Err(error) => Reply::from(error),
        })
        .collect();
    Ok(Reply::Array(items))
}

fn mset(store: &mut dyn Store, pairs: &[Vec<u8>], only_absent: bool) -> Outcome {
    if pairs.is_empty() || !pairs.len().is_multiple_of(2) {
        let name = if only_absent { "msetnx" } else { "mset" };
        return Err(Reply::err(format!("wrong number of arguments for '{name}' command")));
    }
    let pairs: Vec<(&[u8], &[u8])> =
        pairs.chunks_exact(2).map(|pair| (&pair[0][..], &pair[1][..])).collect();
    if only_absent {
        Ok(Reply::Int(i64::from(store.put_all_absent(&pairs)?)))
    } else {
        store.put_all(&pairs)?;
        Ok(Reply::ok())
    }
}

fn del(store: &mut dyn Store, keys: &[Vec<u8>]) -> Outcome {
    Ok(len_reply(store.delete_all(keys)?))
}

fn exists(store: &mut dyn Store, keys: &[Vec<u8>]) -> Outcome {
    Ok(len_reply(store.count_existing(keys)?))
}

fn len_reply(len: usize) -> Reply {
    Reply::Int(i64::try_from(len).unwrap_or(i64::MAX))
}

fn append(store: &mut dyn Store, key: &[u8], suffix: &[u8]) -> Outcome {
    Ok(store.update(key, &mut |current| {
        let mut value = current.unwrap_or_default().to_vec();
        value.extend_from_slice(suffix);
        let reply = len_reply(value.len());
        (Write::Put(value), reply)
    })?)
}

fn strlen(store: &mut dyn Store, key: &[u8]) -> Outcome {
    Ok(len_reply(store.get(key)?.map_or(0, |value| value.len())))
}

/// `value[start..=end]` with Redis's index rules (negative from the end, clamped).
pub fn byte_range(value: &[u8], start: i64, end: i64) -> &[u8] {
    let len = i64::try_from(value.len()).unwrap_or(i64::MAX);
    if len == 0 || (start < 0 && end < 0 && start > end) {
        return &[];
    }
    let start = if start < 0 { (len + start).max(0) } else { start };
    let end = if end < 0 { (len + end).max(0) } else { end.min(len - 1) };
    if start > end {
        return &[];
    }
    // Both are within 0..len here.
    &value[start as usize..=end as usize]
}

fn getrange(store: &mut dyn Store, key: &[u8], start: &[u8], end: &[u8]) -> Outcome {
    let (start, end) = (integer(start)?, integer(end)?);
    let value = store.get(key)?;
    Ok(Reply::text(byte_range(value.as_deref().unwrap_or_default(), start, end)))
}

fn setrange(
    store: &mut dyn Store,
    key: &[u8],
    offset: &[u8],
    patch: &[u8],
    value_bytes_max: usize,
) -> Outcome {
    let offset =
        usize::try_from(integer(offset)?).map_err(|_| Reply::err("offset is out of range"))?;
    if offset.checked_add(patch.len()).is_none_or(|end| end > value_bytes_max) {
        return Err(Reply::err(TOO_BIG));
    }
    Ok(store.update(key, &mut |current| {
        let current = current.map(<[u8]>::to_vec);
        if patch.is_empty() {
            return (Write::Keep, len_reply(current.map_or(0, |value| value.len())));
        }
        let mut value = current.unwrap_or_default();
        if value.len() < offset + patch.len() {
            value.resize(offset + patch.len(), 0);
        }
        value[offset..offset + patch.len()].copy_from_slice(patch);
        let reply = len_reply(value.len());
        (Write::Put(value), reply)
    })?)
}

/// Parse a 64-bit integer exactly as Redis does (`string2ll`: optional `-`, digits, no leading
/// zeros, blanks or `+`).
pub fn parse_integer(text: &[u8]) -> Option<i64> {
    let digits = text.strip_prefix(b"-").unwrap_or(text);
    let canonical = match digits {
        [b'0'] => text.len() == 1,
        [b'1'..=b'9', rest @ ..] => rest.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    if !canonical {
        return None;
    }
    std::str::from_utf8(text).ok()?.parse().ok()
}

fn integer(text: &[u8]) -> Result<i64, Reply> {
    parse_integer(text).ok_or_else(|| Reply::err(NOT_INTEGER))
}

fn incr_by(store: &mut dyn Store, key: &[u8], by: i64) -> Outcome {
    Ok(store.update(key, &mut |current| {
        let Some(old) = current.map_or(Some(0), parse_integer) else {
            return (Write::Keep, Reply::err(NOT_INTEGER));
        };
        match old.checked_add(by) {
            Some(new) => (Write::Put(new.to_string().into_bytes()), Reply::Int(new)),
            None => (Write::Keep, Reply::err(OVERFLOW)),
        }
    })?)
}

/// Parse a finite float as Redis accepts one (no blanks, no NaN or infinity).
fn parse_float(text: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(text).ok()?;
    if text.is_empty() || text.bytes().any(|b| b.is_ascii_whitespace()) {
        return None;
    }
    text.parse::<f64>().ok().filter(|x| x.is_finite())
}

fn incr_by_float(store: &mut dyn Store, key: &[u8], by: &[u8]) -> Outcome {
    let by = parse_float(by).ok_or_else(|| Reply::err(NOT_FLOAT))?;
    Ok(store.update(key, &mut |current| {
        let Some(old) = current.map_or(Some(0.0), parse_float) else {
            return (Write::Keep, Reply::err(NOT_FLOAT));
        };
        let new = old + by;
        if !new.is_finite() {
            return (Write::Keep, Reply::err("increment would produce NaN or Infinity"));
        }
        let text = format_double(new);
        (Write::Put(text.clone().into_bytes()), Reply::text(text))
    })?)
}

fn kind(store: &mut dyn Store, key: &[u8]) -> Outcome {
    Ok(Reply::simple(if store.contains(key)? { "string" } else { "none" }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_parse_like_redis() {
        assert_eq!(parse_integer(b"0"), Some(0));
        assert_eq!(parse_integer(b"-12"), Some(-12));
        assert_eq!(parse_integer(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_integer(b"-9223372036854775808"), Some(i64::MIN));
        for bad in
            [&b""[..], b"-", b"01", b"-0", b"+1", b" 1", b"1 ", b"9223372036854775808", b"1.0"]
        {
            assert_eq!(parse_integer(bad), None, "{}", bad.escape_ascii());
        }
        assert_eq!(parse_float(b"1.5e1"), Some(15.0));
        assert_eq!(parse_float(b"inf"), None);
        assert_eq!(parse_float(b" 1"), None);
    }

    #[test]
    fn ranges_follow_redis_index_rules() {
        let value = b"This is a string";
        assert_eq!(byte_range(value, 0, 3), b"This");
        assert_eq!(byte_range(value, -3, -1), b"ing");
        assert_eq!(byte_range(value, 0, -1), value);
        assert_eq!(byte_range(value, 10, 100), b"string");
        assert_eq!(byte_range(value, 5, 3), b"");
        assert_eq!(byte_range(value, -1, -5), b"");
        assert_eq!(byte_range(b"", 0, -1), b"");
    }
}
