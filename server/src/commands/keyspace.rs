//! Whole-keyspace commands: KEYS, SCAN, RANDOMKEY, FLUSHDB/FLUSHALL, WAITAOF.
//!
//! INVARIANT: SCAN resumes strictly after the last key it returned (`cursor.rs`), in key order,
//! so every key present for the whole scan is returned at least once, and never twice unless
//! it was removed and written again during the scan.

use std::hash::{BuildHasher, Hasher};
use std::ops::Bound;

use mcstore_engine::Durability;

use crate::commands::strings::{NOT_INTEGER, parse_integer};
use crate::glob;
use crate::limits::{SCAN_COUNT_DEFAULT, SCAN_COUNT_MAX};
use crate::reply::Reply;
use crate::resp::Args;
use crate::shared::Shared;

/// Run the keyspace command `name`.
pub fn run(shared: &Shared, name: &str, args: &Args) -> Reply {
    let outcome = match name {
        "keys" => keys(shared, &args[1]),
        "scan" => scan(shared, &args[1..]),
        "randomkey" => randomkey(shared),
        "flushdb" | "flushall" => flush(shared, &args[1..]),
        "waitaof" => waitaof(shared, &args[1..]),
        other => Err(Reply::err(format!("unknown keyspace command '{other}'"))),
    };
    outcome.unwrap_or_else(|error| error)
}

// KEYS, SCAN and RANDOMKEY list keys from the index alone (`Db::keys`): no value is read, so a
// key whose value is lost to poison is still listed, and listing costs no medium access.

fn keys(shared: &Shared, pattern: &[u8]) -> Result<Reply, Reply> {
    let found = shared
        .db
        .keys_with_prefix(glob::literal_prefix(pattern))?
        .filter(|key| glob::matches(pattern, key))
        .map(|key| Reply::Bulk(key.to_vec()))
        .collect();
    Ok(Reply::Array(found))
}

fn count_arg(text: &[u8]) -> Result<usize, Reply> {
    match parse_integer(text) {
        Some(n) if n >= 1 => Ok(usize::try_from(n).unwrap_or(usize::MAX).min(SCAN_COUNT_MAX)),
        Some(_) => Err(Reply::err("syntax error")),
        None => Err(Reply::err(NOT_INTEGER)),
    }
}

fn scan(shared: &Shared, args: &[Vec<u8>]) -> Result<Reply, Reply> {
    let invalid = || Reply::err("invalid cursor");
    let cursor: u64 = std::str::from_utf8(&args[0])
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(invalid)?;
    let (mut pattern, mut count, mut strings_only) = (None, SCAN_COUNT_DEFAULT, true);
    let mut options = args[1..].chunks(2);
    for option in options.by_ref() {
        let [name, value] = option else { return Err(Reply::err("syntax error")) };
        match name.to_ascii_lowercase().as_slice() {
            b"match" => pattern = Some(value.clone()),
            b"count" => count = count_arg(value)?,
            b"type" => strings_only = value.eq_ignore_ascii_case(b"string"),
            _ => return Err(Reply::err("syntax error")),
        }
    }
    let start = match cursor {
        0 => Bound::Unbounded,
        id => Bound::Excluded(shared.cursors.lock().resume(id).ok_or_else(invalid)?),
    };
    let mut examined = 0;
    let mut last = None;
    let mut found = Vec::new();
    for key in shared.db.keys::<Vec<u8>, _>((start, Bound::Unbounded))? {
        let key = key.to_vec();
        examined += 1;
        let wanted = strings_only && pattern.as_ref().is_none_or(|p| glob::matches(p, &key));
        if wanted {
            found.push(Reply::Bulk(key.clone()));
        }
        if examined == count {
            last = Some(key);
            break;
        }
    }
    let next = match last {
        Some(key) => shared.cursors.lock().save(key),
        None => 0,
    };
    Ok(Reply::Array(vec![Reply::text(next.to_string()), Reply::Array(found)]))
}

fn randomkey(shared: &Shared) -> Result<Reply, Reply> {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(shared.db.len() as u64);
    let start = hasher.finish().to_be_bytes().to_vec();
    let mut after = shared.db.keys::<Vec<u8>, _>((Bound::Included(start), Bound::Unbounded))?;
    let key = match after.next() {
        Some(key) => Some(key),
        None => shared.db.keys::<Vec<u8>, _>(..)?.next(),
    };
    Ok(key.map_or(Reply::Nil, |key| Reply::Bulk(key.to_vec())))
}

fn flush(shared: &Shared, args: &[Vec<u8>]) -> Result<Reply, Reply> {
    match args {
        [] => {}
        [mode] if mode.eq_ignore_ascii_case(b"sync") || mode.eq_ignore_ascii_case(b"async") => {}
        _ => return Err(Reply::err("syntax error")),
    }
    shared.db.clear()?;
    Ok(Reply::ok())
}

fn waitaof(shared: &Shared, args: &[Vec<u8>]) -> Result<Reply, Reply> {
    let mut numbers = [0i64; 3];
    for (number, arg) in numbers.iter_mut().zip(args) {
        *number = parse_integer(arg).ok_or_else(|| Reply::err(NOT_INTEGER))?;
    }
    if numbers.iter().any(|&n| n < 0) {
        return Err(Reply::err("timeout is negative"));
    }
    if numbers[0] > 1 {
        return Err(Reply::err("WAITAOF numlocal can be 0 or 1 on a single mcstore-server"));
    }
    if shared.db.durability() != Durability::Immediate {
        shared.db.sync()?;
    }
    Ok(Reply::Array(vec![Reply::Int(1), Reply::Int(0)]))
}
