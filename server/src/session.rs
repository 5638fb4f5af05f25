//! `Session`: one connection's state (protocol version, authentication, name, the MULTI queue,
//! the watched keys) and `Session::execute`, which checks a command (known, arity,
//! authenticated, allowed in MULTI) before running or queueing it.
//!
//! INVARIANT: nothing runs before its checks pass; in MULTI, a command refused at queue time
//! marks the transaction so its EXEC runs nothing (`EXECABORT`), as in Redis.

use std::sync::atomic::Ordering;

use crate::clients::{Registration, View};
use crate::commands::{self, Kind, Spec, strings};
use crate::reply::Reply;
use crate::resp::Args;
use crate::shared::Shared;
use crate::store::DbStore;

/// Commands queued by MULTI.
#[derive(Debug, Default)]
pub struct Multi {
    /// The queued commands, in order.
    pub queued: Vec<(&'static Spec, Args)>,
    /// A command was refused while queueing: EXEC runs nothing.
    pub dirty: bool,
}

/// One client connection's state.
#[derive(Debug)]
pub struct Session {
    /// The client id (CLIENT ID).
    pub id: u64,
    /// RESP version: 2, or 3 after HELLO 3.
    pub resp: u8,
    /// Whether the client authenticated (always true without a password).
    pub authenticated: bool,
    /// CLIENT SETNAME.
    pub name: Option<Vec<u8>>,
    /// CLIENT SETINFO lib-name.
    pub lib_name: Option<Vec<u8>>,
    /// CLIENT SETINFO lib-ver.
    pub lib_ver: Option<Vec<u8>>,
    /// The open MULTI, if any.
    pub multi: Option<Multi>,
    /// WATCHed keys with the version each had when watched (`None`: absent); EXEC runs nothing
    /// if one of them has another version by its commit.
    pub watched: Vec<(Vec<u8>, Option<u64>)>,
    /// QUIT was received (or this client killed itself): close after the reply.
    pub closing: bool,
    /// This connection in the server's registry (left when the session drops).
    pub registration: Registration,
}

impl Session {
    /// A new connection's state.
    pub fn new(shared: &Shared, peer: String) -> Self {
        let id = shared.next_client_id.fetch_add(1, Ordering::Relaxed);
        Self {
            id,
            registration: shared.clients.register(id, peer),
            resp: 2,
            authenticated: shared.config.requirepass.is_none(),
            name: None,
            lib_name: None,
            lib_ver: None,
            multi: None,
            watched: Vec::new(),
            closing: false,
        }
    }

    /// What CLIENT LIST shows of this session now, `last_command` its last command.
    pub fn view(&self, last_command: &str) -> View {
        View {
            name: self.name.clone(),
            lib_name: self.lib_name.clone(),
            lib_ver: self.lib_ver.clone(),
            resp: self.resp,
            multi: self.multi_len(),
            last_command: last_command.to_string(),
            last_active: std::time::Instant::now(),
        }
    }

    /// Show other connections this session's state after a batch whose last command was
    /// `last_command`. Runs after every batch, so it updates the published view in place and
    /// allocates only for what changed (a name, a library, a different command).
    pub fn publish(&self, last_command: &[u8]) {
        self.registration.client().update(|view| {
            view.name.clone_from(&self.name);
            view.lib_name.clone_from(&self.lib_name);
            view.lib_ver.clone_from(&self.lib_ver);
            view.resp = self.resp;
            view.multi = self.multi_len();
            if !view.last_command.as_bytes().eq_ignore_ascii_case(last_command) {
                view.last_command = String::from_utf8_lossy(last_command).to_ascii_lowercase();
            }
            view.last_active = std::time::Instant::now();
        });
    }

    /// Commands queued in MULTI, or -1 outside MULTI.
    fn multi_len(&self) -> i64 {
        self.multi.as_ref().map_or(-1, |m| i64::try_from(m.queued.len()).unwrap_or(0))
    }

    /// Check and run (or queue) one command; its reply.
    pub fn execute(&mut self, shared: &Shared, args: Args) -> Reply {
        shared.commands_processed.fetch_add(1, Ordering::Relaxed);
        let reply = self.check_and_run(shared, args);
        if reply.is_error() {
            shared.error_replies.fetch_add(1, Ordering::Relaxed);
        }
        reply
    }

    fn check_and_run(&mut self, shared: &Shared, args: Args) -> Reply {
        let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
        let Some(spec) = commands::lookup(&name) else {
            self.refuse_in_multi();
            return unknown_command(&args);
        };
        if !commands::arity_ok(spec, args.len()) {
            self.refuse_in_multi();
            return Reply::err(format!("wrong number of arguments for '{name}' command"));
        }
        if !self.authenticated && !matches!(spec.name, "auth" | "hello" | "quit" | "reset") {
            self.refuse_in_multi();
            return Reply::error("NOAUTH", "Authentication required.");
        }
        if self.multi.is_some() {
            match spec.kind {
                Kind::String | Kind::Server => {
                    if let Some(multi) = self.multi.as_mut() {
                        multi.queued.push((spec, args));
                    }
                    return Reply::simple("QUEUED");
                }
                Kind::Keyspace => {
                    self.refuse_in_multi();
                    return Reply::err(format!("{} is not supported inside MULTI", spec.name));
                }
                Kind::Connection | Kind::Transaction => {}
            }
        }
        self.run(shared, spec, &args)
    }

    /// Run a checked command now (also used by EXEC for queued `Server` commands).
    pub fn run(&mut self, shared: &Shared, spec: &'static Spec, args: &Args) -> Reply {
        match spec.kind {
            Kind::String => strings::run(
                spec.name,
                args,
                &mut DbStore(&shared.db),
                shared.config.max_request_bytes,
            ),
            Kind::Server => commands::info::run(self, shared, spec.name, args),
            Kind::Keyspace => commands::keyspace::run(shared, spec.name, args),
            Kind::Connection => commands::connection::run(self, shared, spec.name, args),
            Kind::Transaction => commands::multi::run(self, shared, spec.name, args),
        }
    }

    fn refuse_in_multi(&mut self) {
        if let Some(multi) = self.multi.as_mut() {
            multi.dirty = true;
        }
    }
}

/// Redis's reply to an unknown command: its name and the first arguments, quoted.
fn unknown_command(args: &Args) -> Reply {
    let shown = |arg: &Vec<u8>| String::from_utf8_lossy(&arg[..arg.len().min(128)]).into_owned();
    let mut text = format!("unknown command '{}', with args beginning with: ", shown(&args[0]));
    for arg in args.iter().skip(1).take(8) {
        text.push_str(&format!("'{}' ", shown(arg)));
    }
    Reply::err(text)
}
