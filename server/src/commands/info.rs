//! Read-only server commands: PING, ECHO, TIME, DBSIZE, INFO, CONFIG GET, COMMAND.
//!
//! INVARIANT: none of them changes the store or the session, so EXEC may run them again when
//! its transaction retries. CONFIG GET answers true to the engine's settings (`appendfsync`
//! follows the handle's durability).

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use mcstore_engine::Durability;

use crate::commands::connection::REDIS_VERSION;
use crate::commands::{COMMANDS, Spec, docs, lookup};
use crate::glob;
use crate::reply::Reply;
use crate::resp::Args;
use crate::session::Session;
use crate::shared::Shared;

/// Run the server command `name`.
pub fn run(_session: &mut Session, shared: &Shared, name: &str, args: &Args) -> Reply {
    match name {
        "ping" => match args.get(1) {
            None => Reply::simple("PONG"),
            Some(message) if args.len() == 2 => Reply::Bulk(message.clone()),
            Some(_) => Reply::err("wrong number of arguments for 'ping' command"),
        },
        "echo" => Reply::Bulk(args[1].clone()),
        "time" => {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
            Reply::Array(vec![
                Reply::text(now.as_secs().to_string()),
                Reply::text(now.subsec_micros().to_string()),
            ])
        }
        "dbsize" => Reply::Int(i64::try_from(shared.db.len()).unwrap_or(i64::MAX)),
        "info" => Reply::Verbatim(info(shared, &args[1..])),
        "config" => config(shared, &args[1..]),
        "command" => command(&args[1..]),
        other => Reply::err(format!("unknown server command '{other}'")),
    }
}

/// `appendfsync` of a durability: what Redis setting promises the same.
pub fn appendfsync(durability: Durability) -> &'static str {
    match durability {
        Durability::Immediate => "always",
        Durability::Eventual => "everysec",
        Durability::None => "no",
    }
}

fn durability_name(durability: Durability) -> &'static str {
    match durability {
        Durability::Immediate => "immediate",
        Durability::Eventual => "eventual",
        Durability::None => "none",
    }
}

const SECTIONS: [&str; 5] = ["server", "clients", "persistence", "stats", "keyspace"];

/// The INFO text of the requested sections (none, `all`, `default`, `everything`: all).
pub fn info(shared: &Shared, wanted: &[Vec<u8>]) -> String {
    let wanted: Vec<String> =
        wanted.iter().map(|w| String::from_utf8_lossy(w).to_ascii_lowercase()).collect();
    let all = wanted.is_empty()
        || wanted.iter().any(|w| matches!(w.as_str(), "all" | "default" | "everything"));
    let mut out = String::new();
    for section in SECTIONS {
        if all || wanted.iter().any(|w| w == section) {
            if !out.is_empty() {
                out.push_str("\r\n");
            }
            section_text(shared, section, &mut out);
        }
    }
    out
}

fn section_text(shared: &Shared, section: &str, out: &mut String) {
    let db = &shared.db;
    // Writing into a String cannot fail.
    let _ = match section {
        "server" => write!(
            out,
            "# Server\r\nredis_version:{REDIS_VERSION}\r\nmcstore_version:{}\r\nredis_mode:standalone\r\n\
             os:{}\r\narch_bits:64\r\nprocess_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{}\r\n",
            env!("CARGO_PKG_VERSION"),
            std::env::consts::OS,
            std::process::id(),
            shared.port,
            shared.started.elapsed().as_secs(),
        ),
        "clients" => write!(
            out,
            "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\n",
            shared.clients_connected.load(Ordering::Relaxed),
            shared.config.max_clients,
        ),
        "persistence" => {
            let stats = db.stats();
            let report = db.recovery_report();
            write!(
                out,
                "# Persistence\r\nloading:0\r\naof_enabled:1\r\nappendfsync:{}\r\n\
                 mcstore_durability:{}\r\nmcstore_mode:{}\r\nmcstore_failed:{}\r\n\
                 mcstore_read_only:{}\r\nmcstore_halt_on_media:{}\r\nmcstore_pool_bytes:{}\r\n\
                 mcstore_max_pool_bytes:{}\r\nmcstore_segments_total:{}\r\nmcstore_segments_free:{}\r\n\
                 mcstore_segments_quarantined:{}\r\nmcstore_live_bytes:{}\r\nmcstore_used_bytes:{}\r\n\
                 mcstore_space_amplification:{:.3}\r\nmcstore_records_written:{}\r\nmcstore_reads:{}\r\n\
                 mcstore_read_faults:{}\r\nmcstore_commit_groups:{}\r\nmcstore_commit_group_mean:{:.2}\r\n\
                 mcstore_compactions:{}\r\nmcstore_transactions:{}\r\nmcstore_replica_members:{}\r\n\
                 mcstore_replicas_not_in_sync:{}\r\nmcstore_replica_repairs:{}\r\n\
                 mcstore_index_bytes_per_key:{}\r\nmcstore_recovery_clean_shutdown:{}\r\n",
                appendfsync(db.durability()),
                durability_name(db.durability()),
                stats.mode,
                u8::from(stats.failed),
                u8::from(stats.read_only),
                u8::from(shared.config.halt_on_media),
                stats.pool_bytes,
                stats.max_pool_bytes,
                stats.segments_total,
                stats.segments_free,
                stats.segments_quarantined,
                stats.live_bytes,
                stats.used_bytes,
                stats.space_amplification,
                stats.records_written,
                stats.reads,
                stats.read_faults,
                stats.commit_groups,
                stats.commit_group_mean,
                stats.compactions,
                stats.transactions,
                stats.replica_members,
                stats.replicas_not_in_sync,
                stats.replica_repairs,
                stats.index_bytes_per_key,
                u8::from(report.clean_shutdown),
            )
        }
        "stats" => write!(
            out,
            "# Stats\r\ntotal_connections_received:{}\r\nrejected_connections:{}\r\n\
             total_commands_processed:{}\r\ntotal_error_replies:{}\r\n",
            shared.connections_received.load(Ordering::Relaxed),
            shared.connections_rejected.load(Ordering::Relaxed),
            shared.commands_processed.load(Ordering::Relaxed),
            shared.error_replies.load(Ordering::Relaxed),
        ),
        _ => {
            let keys = db.len();
            out.push_str("# Keyspace\r\n");
            if keys > 0 {
                let _ = write!(out, "db0:keys={keys},expires=0,avg_ttl=0\r\n");
            }
            Ok(())
        }
    };
}

/// The parameters CONFIG GET answers, with their values.
fn parameters(shared: &Shared) -> Vec<(&'static str, String)> {
    let config = &shared.config;
    vec![
        ("appendonly", "yes".to_string()),
        ("appendfsync", appendfsync(shared.db.durability()).to_string()),
        ("save", String::new()),
        ("databases", "1".to_string()),
        ("maxclients", config.max_clients.to_string()),
        ("proto-max-bulk-len", config.max_request_bytes.to_string()),
        ("timeout", config.idle_timeout.map_or(0, |t| t.as_secs()).to_string()),
        ("port", shared.port.to_string()),
        ("maxmemory", "0".to_string()),
        ("maxmemory-policy", "noeviction".to_string()),
    ]
}

fn config(shared: &Shared, args: &[Vec<u8>]) -> Reply {
    let sub = args[0].to_ascii_lowercase();
    match sub.as_slice() {
        b"get" if args.len() >= 2 => {
            let patterns: Vec<Vec<u8>> = args[1..].iter().map(|p| p.to_ascii_lowercase()).collect();
            let pairs = parameters(shared)
                .into_iter()
                .filter(|(name, _)| patterns.iter().any(|p| glob::matches(p, name.as_bytes())))
                .map(|(name, value)| (Reply::text(name), Reply::text(value)))
                .collect();
            Reply::Map(pairs)
        }
        b"set" => Reply::err(
            "CONFIG SET is not supported by mcstore-server: settings come from the command line",
        ),
        b"resetstat" => Reply::ok(),
        _ => Reply::err(format!(
            "unknown subcommand or wrong number of arguments for '{}'. Try CONFIG HELP.",
            String::from_utf8_lossy(&args[0])
        )),
    }
}

/// A command's entry as COMMAND reports it.
fn describe(spec: &Spec) -> Reply {
    let flags = spec.flags.iter().map(Reply::simple).collect();
    Reply::Array(vec![
        Reply::text(spec.name),
        Reply::Int(spec.arity),
        Reply::Array(flags),
        Reply::Int(spec.keys.0),
        Reply::Int(spec.keys.1),
        Reply::Int(spec.keys.2),
        Reply::Array(vec![]),
        Reply::Array(vec![]),
        Reply::Array(vec![]),
        Reply::Array(vec![]),
    ])
}

fn command(args: &[Vec<u8>]) -> Reply {
    let Some(sub) = args.first() else {
        return Reply::Array(COMMANDS.iter().map(describe).collect());
    };
    let names = || args[1..].iter().map(|n| String::from_utf8_lossy(n).to_ascii_lowercase());
    match sub.to_ascii_lowercase().as_slice() {
        b"count" => Reply::Int(i64::try_from(COMMANDS.len()).unwrap_or(i64::MAX)),
        b"list" => Reply::Array(COMMANDS.iter().map(|spec| Reply::text(spec.name)).collect()),
        b"info" => {
            Reply::Array(names().map(|n| lookup(&n).map_or(Reply::NilArray, describe)).collect())
        }
        // Every command, or the named ones that exist (unknown names are left out, as Redis
        // does): name -> {summary, since, group}.
        b"docs" => {
            let entry = |name: String| {
                let doc = docs::lookup(&name)?;
                let fields = [("summary", doc.summary), ("since", doc.since), ("group", doc.group)];
                let map = fields.map(|(k, v)| (Reply::text(k), Reply::text(v)));
                Some((Reply::text(name), Reply::Map(map.into())))
            };
            Reply::Map(if args.len() > 1 {
                names().filter_map(entry).collect()
            } else {
                COMMANDS.iter().filter_map(|spec| entry(spec.name.to_string())).collect()
            })
        }
        _ => Reply::err(format!(
            "unknown subcommand '{}'. Try COMMAND HELP.",
            String::from_utf8_lossy(sub)
        )),
    }
}
