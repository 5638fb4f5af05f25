//! The command table (name, arity, flags, key positions: what `COMMAND` reports and what the
//! session checks before running anything) and the modules that run each group.

pub mod connection;
pub mod docs;
pub mod info;
pub mod keyspace;
pub mod multi;
pub mod strings;

/// Which module runs a command, and whether MULTI may queue it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A string command (`strings`): queued in MULTI, run inside the EXEC transaction.
    String,
    /// A read-only server command (PING, ECHO, TIME, DBSIZE, INFO, CONFIG, COMMAND): queued in
    /// MULTI, run at EXEC outside the transaction.
    Server,
    /// A whole-keyspace command (KEYS, SCAN, FLUSHDB, WAITAOF ...): refused inside MULTI.
    Keyspace,
    /// Connection state (HELLO, AUTH, CLIENT, SELECT, RESET, QUIT): run at once, even in MULTI.
    Connection,
    /// MULTI, EXEC, DISCARD, WATCH, UNWATCH.
    Transaction,
}

/// One command's entry.
#[derive(Debug)]
pub struct Spec {
    /// Lowercase name.
    pub name: &'static str,
    /// Redis arity: `n` exactly n words (name included), `-n` at least n.
    pub arity: i64,
    /// Redis command flags, as `COMMAND` reports them.
    pub flags: &'static [&'static str],
    /// First key, last key (-1: the last argument), step.
    pub keys: (i64, i64, i64),
    /// Who runs it.
    pub kind: Kind,
}

const fn spec(
    name: &'static str,
    arity: i64,
    flags: &'static [&'static str],
    keys: (i64, i64, i64),
    kind: Kind,
) -> Spec {
    Spec { name, arity, flags, keys, kind }
}

const W: &[&str] = &["write", "denyoom"];
const WF: &[&str] = &["write", "denyoom", "fast"];
const R: &[&str] = &["readonly"];
const RF: &[&str] = &["readonly", "fast"];
const C: &[&str] = &["noscript", "loading", "stale", "fast", "allow_busy"];
const NONE: (i64, i64, i64) = (0, 0, 0);
const ONE: (i64, i64, i64) = (1, 1, 1);
const ALL: (i64, i64, i64) = (1, -1, 1);

/// Every command the server knows.
pub const COMMANDS: &[Spec] = &[
    spec("get", 2, RF, ONE, Kind::String),
    spec("set", -3, W, ONE, Kind::String),
    spec("setnx", 3, WF, ONE, Kind::String),
    spec("getset", 3, WF, ONE, Kind::String),
    spec("getdel", 2, &["write", "fast"], ONE, Kind::String),
    spec("mget", -2, RF, ALL, Kind::String),
    spec("mset", -3, W, (1, -1, 2), Kind::String),
    spec("msetnx", -3, W, (1, -1, 2), Kind::String),
    spec("del", -2, &["write"], ALL, Kind::String),
    spec("unlink", -2, &["write", "fast"], ALL, Kind::String),
    spec("exists", -2, RF, ALL, Kind::String),
    spec("append", 3, WF, ONE, Kind::String),
    spec("strlen", 2, RF, ONE, Kind::String),
    spec("getrange", 4, R, ONE, Kind::String),
    spec("substr", 4, R, ONE, Kind::String),
    spec("setrange", 4, W, ONE, Kind::String),
    spec("incr", 2, WF, ONE, Kind::String),
    spec("decr", 2, WF, ONE, Kind::String),
    spec("incrby", 3, WF, ONE, Kind::String),
    spec("decrby", 3, WF, ONE, Kind::String),
    spec("incrbyfloat", 3, WF, ONE, Kind::String),
    spec("type", 2, RF, ONE, Kind::String),
    spec("keys", 2, &["readonly"], NONE, Kind::Keyspace),
    spec("scan", -2, &["readonly"], NONE, Kind::Keyspace),
    spec("randomkey", 1, &["readonly"], NONE, Kind::Keyspace),
    spec("flushdb", -1, &["write"], NONE, Kind::Keyspace),
    spec("flushall", -1, &["write"], NONE, Kind::Keyspace),
    spec("waitaof", 4, &["noscript"], NONE, Kind::Keyspace),
    spec("dbsize", 1, RF, NONE, Kind::Server),
    spec("ping", -1, &["fast"], NONE, Kind::Server),
    spec("echo", 2, &["fast"], NONE, Kind::Server),
    spec("time", 1, &["loading", "stale", "fast"], NONE, Kind::Server),
    spec("info", -1, &["loading", "stale"], NONE, Kind::Server),
    spec("config", -2, &["admin", "loading", "stale"], NONE, Kind::Server),
    spec("command", -1, &["loading", "stale"], NONE, Kind::Server),
    spec("hello", -1, C, NONE, Kind::Connection),
    spec("auth", -2, C, NONE, Kind::Connection),
    spec("client", -2, &["loading", "stale"], NONE, Kind::Connection),
    spec("select", 2, &["loading", "stale", "fast"], NONE, Kind::Connection),
    spec("reset", 1, C, NONE, Kind::Connection),
    spec("quit", -1, C, NONE, Kind::Connection),
    spec("multi", 1, &["noscript", "loading", "stale", "fast"], NONE, Kind::Transaction),
    spec("exec", 1, &["noscript", "loading", "stale"], NONE, Kind::Transaction),
    spec("discard", 1, &["noscript", "loading", "stale", "fast"], NONE, Kind::Transaction),
    spec("watch", -2, &["noscript", "loading", "stale", "fast"], ALL, Kind::Transaction),
    spec("unwatch", 1, &["noscript", "loading", "stale", "fast"], NONE, Kind::Transaction),
];

/// The entry of `name` (lowercase).
pub fn lookup(name: &str) -> Option<&'static Spec> {
    COMMANDS.iter().find(|spec| spec.name == name)
}

/// Whether `words` (the name included) satisfies `spec`'s arity.
pub fn arity_ok(spec: &Spec, words: usize) -> bool {
    let words = i64::try_from(words).unwrap_or(i64::MAX);
    if spec.arity >= 0 { words == spec.arity } else { words >= -spec.arity }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_string_command_is_in_the_table_and_names_are_unique() {
        for spec in COMMANDS {
            assert_eq!(
                spec.kind == Kind::String,
                strings::is_string_command(spec.name),
                "{}",
                spec.name
            );
            assert_eq!(COMMANDS.iter().filter(|s| s.name == spec.name).count(), 1);
            assert_eq!(spec.name, spec.name.to_ascii_lowercase());
        }
        let get = lookup("get").unwrap();
        assert!(arity_ok(get, 2) && !arity_ok(get, 3));
        let mset = lookup("mset").unwrap();
        assert!(arity_ok(mset, 5) && !arity_ok(mset, 2));
        assert!(lookup("nosuch").is_none());
    }
}
