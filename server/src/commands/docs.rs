//! What `COMMAND DOCS` serves for each command of the table: a one-line summary, the Redis
//! version that added the command, and its Redis group (the three fields Redis 7 always sends;
//! `redis-cli` builds its help and hints from them).
//!
//! INVARIANT: every command of `COMMANDS` has an entry (a unit test checks it).

/// A command's documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Doc {
    /// Redis group: `string`, `generic`, `server`, `connection` or `transactions`.
    pub group: &'static str,
    /// The Redis version that added the command (what clients expect in `since`).
    pub since: &'static str,
    /// One line on what it does here.
    pub summary: &'static str,
}

const fn doc(group: &'static str, since: &'static str, summary: &'static str) -> Option<Doc> {
    Some(Doc { group, since, summary })
}

/// The documentation of `name` (lowercase), if it is a command of the table.
pub fn lookup(name: &str) -> Option<Doc> {
    const S: &str = "string";
    const G: &str = "generic";
    const V: &str = "server";
    const C: &str = "connection";
    const T: &str = "transactions";
    match name {
        "get" => doc(S, "1.0.0", "Returns the value of a key."),
        "set" => doc(S, "1.0.0", "Sets a key's value (NX, XX and GET options)."),
        "setnx" => doc(S, "1.0.0", "Sets a key's value only if the key does not exist."),
        "getset" => doc(S, "1.0.0", "Sets a key's value and returns the previous one."),
        "getdel" => doc(S, "6.2.0", "Returns a key's value and deletes the key."),
        "mget" => doc(S, "1.0.0", "Returns the values of several keys."),
        "mset" => doc(S, "1.0.1", "Sets several keys atomically."),
        "msetnx" => doc(S, "1.0.1", "Sets several keys atomically only if none exists."),
        "del" => doc(G, "1.0.0", "Deletes keys; returns how many existed."),
        "unlink" => doc(G, "4.0.0", "Deletes keys (as DEL); returns how many existed."),
        "exists" => doc(G, "1.0.0", "Counts how many of the given keys exist."),
        "append" => doc(S, "2.0.0", "Appends to a key's value; returns the new length."),
        "strlen" => doc(S, "2.2.0", "Returns the length of a key's value."),
        "getrange" => doc(S, "2.4.0", "Returns a byte range of a key's value."),
        "substr" => doc(S, "1.0.0", "Returns a byte range of a key's value (as GETRANGE)."),
        "setrange" => doc(S, "2.2.0", "Overwrites part of a key's value at an offset."),
        "incr" => doc(S, "1.0.0", "Adds one to a key's integer value."),
        "decr" => doc(S, "1.0.0", "Subtracts one from a key's integer value."),
        "incrby" => doc(S, "1.0.0", "Adds an integer to a key's integer value."),
        "decrby" => doc(S, "1.0.0", "Subtracts an integer from a key's integer value."),
        "incrbyfloat" => doc(S, "2.6.0", "Adds a number to a key's numeric value."),
        "type" => doc(G, "1.0.0", "Returns a key's type (string, or none)."),
        "keys" => doc(G, "1.0.0", "Returns every key matching a glob pattern."),
        "scan" => doc(G, "2.8.0", "Iterates over the keys with a resumable cursor."),
        "randomkey" => doc(G, "1.0.0", "Returns a key chosen at random."),
        "flushdb" => doc(V, "1.0.0", "Deletes every key."),
        "flushall" => doc(V, "1.0.0", "Deletes every key (as FLUSHDB: there is one database)."),
        "waitaof" => doc(G, "7.2.0", "Waits until earlier writes are durable in the pool."),
        "dbsize" => doc(V, "1.0.0", "Returns the number of keys."),
        "ping" => doc(C, "1.0.0", "Answers PONG, or echoes its argument."),
        "echo" => doc(C, "1.0.0", "Returns its argument."),
        "time" => doc(V, "2.6.0", "Returns the server's time (seconds, microseconds)."),
        "info" => doc(V, "1.0.0", "Returns information and statistics about the server."),
        "config" => doc(V, "2.0.0", "Reads settings (CONFIG GET) and resets statistics."),
        "command" => doc(V, "2.8.13", "Describes the server's commands."),
        "hello" => doc(C, "6.0.0", "Handshakes: protocol version, authentication, name."),
        "auth" => doc(C, "1.0.0", "Authenticates the connection."),
        "client" => doc(C, "2.4.0", "Names, describes, lists and kills connections."),
        "select" => doc(C, "1.0.0", "Selects the database (only 0 exists)."),
        "reset" => doc(C, "6.2.0", "Resets the connection's state."),
        "quit" => doc(C, "1.0.0", "Closes the connection."),
        "multi" => doc(T, "1.2.0", "Starts a transaction."),
        "exec" => doc(T, "1.2.0", "Runs the queued commands atomically."),
        "discard" => doc(T, "2.0.0", "Drops the queued commands."),
        "watch" => {
            doc(T, "2.2.0", "Monitors changes to keys to determine the execution of a transaction.")
        }
        "unwatch" => doc(T, "2.2.0", "Forgets about all watched keys of a transaction."),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::COMMANDS;

    #[test]
    fn every_command_has_documentation() {
        for spec in COMMANDS {
            let doc = lookup(spec.name).unwrap_or_else(|| panic!("{} has no docs", spec.name));
            assert!(!doc.summary.is_empty() && doc.since.contains('.'), "{doc:?}");
        }
        assert_eq!(lookup("nosuchcommand"), None);
    }
}
