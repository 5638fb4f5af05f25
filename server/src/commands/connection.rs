//! Connection-state commands: HELLO, AUTH, CLIENT (including LIST and KILL, over the server's
//! registry of connections), SELECT, RESET, QUIT.
//!
//! INVARIANT: with a password configured, a session is authenticated only by AUTH or HELLO …
//! AUTH with that password (user `default`); RESET drops the authentication again.

use std::time::Instant;

use crate::clients::{KillFilter, View};
use crate::commands::strings::{NOT_INTEGER, parse_integer};
use crate::reply::Reply;
use crate::resp::Args;
use crate::session::Session;
use crate::shared::Shared;

/// The Redis version the server answers as (clients check it for feature support).
pub const REDIS_VERSION: &str = "7.2.0";

/// Run the connection command `name`.
pub fn run(session: &mut Session, shared: &Shared, name: &str, args: &Args) -> Reply {
    let outcome = match name {
        "hello" => hello(session, shared, &args[1..]),
        "auth" => auth(session, shared, &args[1..]),
        "client" => client(session, shared, &args[1..]),
        "select" => match parse_integer(&args[1]) {
            Some(0) => Ok(Reply::ok()),
            Some(_) => Err(Reply::err("DB index is out of range")),
            None => Err(Reply::err(NOT_INTEGER)),
        },
        "reset" => {
            session.multi = None;
            session.watched.clear();
            session.resp = 2;
            session.name = None;
            session.authenticated = shared.config.requirepass.is_none();
            Ok(Reply::simple("RESET"))
        }
        "quit" => {
            session.closing = true;
            Ok(Reply::ok())
        }
        other => Err(Reply::err(format!("unknown connection command '{other}'"))),
    };
    outcome.unwrap_or_else(|error| error)
}

fn check_password(shared: &Shared, user: &[u8], password: &[u8]) -> Result<(), Reply> {
    let Some(expected) = &shared.config.requirepass else {
        return Err(Reply::err(
            "AUTH <password> called without any password configured for the default user. Are \
             you sure your configuration is correct?",
        ));
    };
    if user == b"default" && password == expected.as_bytes() {
        Ok(())
    } else {
        Err(Reply::error("WRONGPASS", "invalid username-password pair or user is disabled."))
    }
}

fn auth(session: &mut Session, shared: &Shared, args: &[Vec<u8>]) -> Result<Reply, Reply> {
    let (user, password) = match args {
        [password] => (&b"default"[..], password),
        [user, password] => (&user[..], password),
        _ => return Err(Reply::err("syntax error")),
    };
    check_password(shared, user, password)?;
    session.authenticated = true;
    Ok(Reply::ok())
}

fn valid_name(name: &[u8]) -> bool {
    name.iter().all(|&b| (b'!'..=b'~').contains(&b))
}

fn hello(session: &mut Session, shared: &Shared, args: &[Vec<u8>]) -> Result<Reply, Reply> {
    let mut resp = session.resp;
    let mut rest = args;
    if let [version, tail @ ..] = args {
        resp = match parse_integer(version) {
            Some(2) => 2,
            Some(3) => 3,
            Some(_) => return Err(Reply::error("NOPROTO", "unsupported protocol version")),
            None => {
                return Err(Reply::err("Protocol version is not an integer or out of range"));
            }
        };
        rest = tail;
    }
    let mut credentials = None;
    let mut name = None;
    while let [option, tail @ ..] = rest {
        match (option.to_ascii_lowercase().as_slice(), tail) {
            (b"auth", [user, password, more @ ..]) => {
                credentials = Some((user, password));
                rest = more;
            }
            (b"setname", [client_name, more @ ..]) => {
                name = Some(client_name);
                rest = more;
            }
            _ => {
                return Err(Reply::err(format!(
                    "Syntax error in HELLO option '{}'",
                    String::from_utf8_lossy(option)
                )));
            }
        }
    }
    if let Some((user, password)) = credentials {
        check_password(shared, user, password)?;
    } else if !session.authenticated {
        return Err(Reply::error(
            "NOAUTH",
            "HELLO must be called with the client already authenticated, otherwise the HELLO \
             <proto> AUTH <user> <pass> option can be used to authenticate the client and select \
             the RESP protocol version at the same time",
        ));
    }
    if let Some(client_name) = name {
        if !valid_name(client_name) {
            return Err(Reply::err(
                "Client names cannot contain spaces, newlines or special characters.",
            ));
        }
        session.name = Some(client_name.clone());
    }
    session.authenticated = true;
    session.resp = resp;
    let pair = |key: &str, value: Reply| (Reply::text(key), value);
    Ok(Reply::Map(vec![
        pair("server", Reply::text("redis")),
        pair("version", Reply::text(REDIS_VERSION)),
        pair("proto", Reply::Int(i64::from(resp))),
        pair("id", Reply::Int(i64::try_from(session.id).unwrap_or(i64::MAX))),
        pair("mode", Reply::text("standalone")),
        pair("role", Reply::text("master")),
        pair("modules", Reply::Array(vec![])),
    ]))
}

/// The CLIENT INFO line of `session`.
pub fn client_info(session: &Session) -> String {
    let client = session.registration.client();
    client_line(client.id, &client.peer, client.connected, &session.view("client|info"))
}

/// One client's line of CLIENT LIST / CLIENT INFO (Redis's fields that mean something here).
fn client_line(id: u64, peer: &str, connected: Instant, view: &View) -> String {
    let text = |bytes: &Option<Vec<u8>>| {
        bytes.as_deref().map(|b| String::from_utf8_lossy(b).into_owned()).unwrap_or_default()
    };
    let now = Instant::now();
    format!(
        "id={id} addr={peer} name={} age={} idle={} flags=N db=0 sub=0 psub=0 ssub=0 multi={} \
         cmd={} user=default resp={} lib-name={} lib-ver={}\n",
        text(&view.name),
        now.duration_since(connected).as_secs(),
        now.duration_since(view.last_active).as_secs(),
        view.multi,
        view.last_command,
        view.resp,
        text(&view.lib_name),
        text(&view.lib_ver)
    )
}

/// CLIENT LIST [TYPE normal|master|replica|pubsub] [ID id ...]: every connection is `normal`.
fn client_list(session: &Session, shared: &Shared, args: &[Vec<u8>]) -> Result<Reply, Reply> {
    let mut ids: Option<Vec<u64>> = None;
    let mut normal = true;
    let mut rest = args;
    while let [option, tail @ ..] = rest {
        match (option.to_ascii_lowercase().as_slice(), tail) {
            (b"type", [kind, more @ ..]) => {
                normal = match kind.to_ascii_lowercase().as_slice() {
                    b"normal" => true,
                    b"master" | b"replica" | b"pubsub" => false,
                    _ => {
                        return Err(Reply::err(format!(
                            "Unknown client type '{}'",
                            String::from_utf8_lossy(kind)
                        )));
                    }
                };
                rest = more;
            }
            (b"id", [_, ..]) => {
                let parsed: Option<Vec<u64>> = tail
                    .iter()
                    .map(|id| parse_integer(id).and_then(|i| u64::try_from(i).ok()))
                    .collect();
                ids = Some(parsed.ok_or_else(|| Reply::err("Invalid client ID"))?);
                rest = &[];
            }
            _ => return Err(Reply::err("syntax error")),
        }
    }
    // This session's own line is current, not what it published after its last batch.
    session.publish(b"client|list");
    let mut out = String::new();
    for client in shared.clients.list() {
        if normal && ids.as_ref().is_none_or(|ids| ids.contains(&client.id)) {
            out.push_str(&client_line(client.id, &client.peer, client.connected, &client.view()));
        }
    }
    Ok(Reply::Verbatim(out))
}

/// CLIENT KILL ip:port (the old form: OK, or an error if no such client) or CLIENT KILL with
/// filters ID, ADDR, MAXAGE, USER, TYPE, SKIPME (the number killed). A client that kills itself
/// gets its reply, then is closed.
fn client_kill(session: &mut Session, shared: &Shared, args: &[Vec<u8>]) -> Result<Reply, Reply> {
    if let [addr] = args {
        let filter = KillFilter {
            addr: Some(String::from_utf8_lossy(addr).into_owned()),
            ..KillFilter::default()
        };
        let killed = shared.clients.kill(&filter);
        if killed == 0 {
            return Err(Reply::err("No such client"));
        }
        session.closing |= session.registration.client().is_killed();
        return Ok(Reply::ok());
    }
    let mut filter = KillFilter { skip: Some(session.id), ..KillFilter::default() };
    let mut nobody = false;
    for pair in args.chunks(2) {
        let [option, value] = pair else { return Err(Reply::err("syntax error")) };
        let number = || parse_integer(value).and_then(|i| u64::try_from(i).ok());
        match option.to_ascii_lowercase().as_slice() {
            b"id" => {
                filter.id =
                    Some(number().ok_or_else(|| Reply::err("client-id should be greater than 0"))?)
            }
            b"addr" => filter.addr = Some(String::from_utf8_lossy(value).into_owned()),
            b"maxage" => {
                filter.max_age_seconds = Some(number().ok_or_else(|| Reply::err(NOT_INTEGER))?)
            }
            b"user" => nobody |= value.as_slice() != b"default",
            b"type" => match value.to_ascii_lowercase().as_slice() {
                b"normal" => {}
                b"master" | b"replica" | b"slave" | b"pubsub" => nobody = true,
                _ => {
                    return Err(Reply::err(format!(
                        "Unknown client type '{}'",
                        String::from_utf8_lossy(value)
                    )));
                }
            },
            b"skipme" => match value.to_ascii_lowercase().as_slice() {
                b"yes" => filter.skip = Some(session.id),
                b"no" => filter.skip = None,
                _ => return Err(Reply::err("syntax error")),
            },
            _ => return Err(Reply::err("syntax error")),
        }
    }
    let killed = if nobody { 0 } else { shared.clients.kill(&filter) };
    session.closing |= session.registration.client().is_killed();
    Ok(Reply::Int(i64::try_from(killed).unwrap_or(i64::MAX)))
}

fn client(session: &mut Session, shared: &Shared, args: &[Vec<u8>]) -> Result<Reply, Reply> {
    let sub = args[0].to_ascii_lowercase();
    match (sub.as_slice(), &args[1..]) {
        (b"list", options) => client_list(session, shared, options),
        (b"kill", filters) if !filters.is_empty() => client_kill(session, shared, filters),
        (b"setname", [name]) => {
            if !valid_name(name) {
                return Err(Reply::err(
                    "Client names cannot contain spaces, newlines or special characters.",
                ));
            }
            session.name = (!name.is_empty()).then(|| name.clone());
            Ok(Reply::ok())
        }
        (b"getname", []) => Ok(session.name.clone().map_or(Reply::Nil, Reply::Bulk)),
        (b"id", []) => Ok(Reply::Int(i64::try_from(session.id).unwrap_or(i64::MAX))),
        (b"setinfo", [attribute, value]) => {
            match attribute.to_ascii_lowercase().as_slice() {
                b"lib-name" => session.lib_name = Some(value.clone()),
                b"lib-ver" => session.lib_ver = Some(value.clone()),
                _ => {
                    return Err(Reply::err(format!(
                        "Unrecognized option '{}'",
                        String::from_utf8_lossy(attribute)
                    )));
                }
            }
            Ok(Reply::ok())
        }
        (b"info", []) => Ok(Reply::Verbatim(client_info(session))),
        (b"no-evict" | b"no-touch", [mode])
            if mode.eq_ignore_ascii_case(b"on") || mode.eq_ignore_ascii_case(b"off") =>
        {
            Ok(Reply::ok())
        }
        _ => Err(Reply::err(format!(
            "unknown subcommand or wrong number of arguments for '{}'. Try CLIENT HELP.",
            String::from_utf8_lossy(&args[0])
        ))),
    }
}
