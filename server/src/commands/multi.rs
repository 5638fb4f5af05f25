//! MULTI / EXEC / DISCARD / WATCH / UNWATCH. EXEC of only plain writes (SET without options,
//! MSET) and no watched key applies them as one atomic `Batch`; anything else runs every queued
//! command inside one `Db::transaction`, so reads and writes commit together, serializably, or
//! the whole queue runs again on conflict. WATCH records each key's version (`Db::version`);
//! EXEC checks them inside its transaction, so a watched key written by anyone before EXEC
//! commits makes EXEC run nothing and reply with the null array, as in Redis (one difference: a
//! key absent when watched and absent again at EXEC passes, even if it was set and removed in
//! between).
//!
//! INVARIANT: a queued command's writes are visible atomically with all the others or not at
//! all; queued read-only server commands (PING, INFO ...) have no effects, so re-running them on
//! a conflict is harmless; EXEC, DISCARD and RESET forget the watched keys.

use mcstore_engine::{Batch, Error};

use crate::commands::{Kind, Spec, strings};
use crate::reply::Reply;
use crate::resp::Args;
use crate::session::{Multi, Session};
use crate::shared::Shared;
use crate::store::TxStore;

/// A key's version as WATCH saw it.
type Watched = (Vec<u8>, Option<u64>);

/// Run the transaction command `name`.
pub fn run(session: &mut Session, shared: &Shared, name: &str, args: &Args) -> Reply {
    match name {
        "multi" if session.multi.is_some() => Reply::err("MULTI calls can not be nested"),
        "multi" => {
            session.multi = Some(Multi::default());
            Reply::ok()
        }
        "discard" => match session.multi.take() {
            Some(_) => {
                session.watched.clear();
                Reply::ok()
            }
            None => Reply::err("DISCARD without MULTI"),
        },
        "exec" => match session.multi.take() {
            None => Reply::err("EXEC without MULTI"),
            Some(multi) => {
                let watched = std::mem::take(&mut session.watched);
                if multi.dirty {
                    Reply::error("EXECABORT", "Transaction discarded because of previous errors.")
                } else {
                    exec(session, shared, &multi.queued, &watched)
                }
            }
        },
        "watch" if session.multi.is_some() => Reply::err("WATCH inside MULTI is not allowed"),
        "watch" => watch(session, shared, args),
        "unwatch" => {
            session.watched.clear();
            Reply::ok()
        }
        other => Reply::err(format!("unknown transaction command '{other}'")),
    }
}

/// WATCH key [key ...]: remember each key's current version (a key already watched keeps the
/// version it had when first watched).
fn watch(session: &mut Session, shared: &Shared, args: &Args) -> Reply {
    for key in &args[1..] {
        if session.watched.iter().any(|(watched, _)| watched == key) {
            continue;
        }
        match shared.db.version(key) {
            Ok(version) => session.watched.push((key.clone(), version)),
            Err(error) => return Reply::from(error),
        }
    }
    Reply::ok()
}

/// SET key value (no option) or MSET with whole pairs: a write that reads nothing.
fn plain_write(spec: &Spec, args: &Args) -> bool {
    match spec.name {
        "set" => args.len() == 3,
        "mset" => args.len() >= 3 && !args.len().is_multiple_of(2),
        _ => false,
    }
}

fn exec(
    session: &mut Session,
    shared: &Shared,
    queued: &[(&'static Spec, Args)],
    watched: &[Watched],
) -> Reply {
    if watched.is_empty() && queued.iter().all(|(spec, args)| plain_write(spec, args)) {
        let mut batch = Batch::default();
        for (_, args) in queued {
            for pair in args[1..].chunks_exact(2) {
                batch.push_put(&pair[0], &pair[1]);
            }
        }
        return match shared.db.apply_batch(batch) {
            Ok(()) => Reply::Array(vec![Reply::ok(); queued.len()]),
            Err(error) => Reply::from(error),
        };
    }
    let value_bytes_max = shared.config.max_request_bytes;
    let result = shared.db.transaction(|tx| {
        for (key, version) in watched {
            if tx.version(key)? != *version {
                return Ok(None);
            }
        }
        let mut store = TxStore::new(tx);
        let mut replies = Vec::with_capacity(queued.len());
        for (spec, args) in queued {
            let reply = match spec.kind {
                Kind::String => strings::run(spec.name, args, &mut store, value_bytes_max),
                _ => session.run(shared, spec, args),
            };
            if store.conflict {
                return Err(Error::Conflict { attempts: 0 });
            }
            replies.push(reply);
        }
        Ok(Some(replies))
    });
    match result {
        Ok(Some(replies)) => Reply::Array(replies),
        Ok(None) => Reply::NilArray,
        Err(error) => Reply::from(error),
    }
}
