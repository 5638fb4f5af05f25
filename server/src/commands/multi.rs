//! MULTI / EXEC / DISCARD (and WATCH, which is refused). EXEC of only plain writes (SET without
//! options, MSET) applies them as one atomic `Batch`; anything else runs every queued command
//! inside one `Db::transaction`, so reads and writes commit together, serializably, or the whole
//! queue runs again on conflict.
//!
//! INVARIANT: a queued command's writes are visible atomically with all the others or not at
//! all; queued read-only server commands (PING, INFO ...) have no effects, so re-running them on
//! a conflict is harmless.

use mcstore_engine::{Batch, Error};

use crate::commands::{Kind, Spec, strings};
use crate::reply::Reply;
use crate::resp::Args;
use crate::session::{Multi, Session};
use crate::shared::Shared;
use crate::store::TxStore;

/// Run the transaction command `name`.
pub fn run(session: &mut Session, shared: &Shared, name: &str, _args: &Args) -> Reply {
    match name {
        "multi" if session.multi.is_some() => Reply::err("MULTI calls can not be nested"),
        "multi" => {
            session.multi = Some(Multi::default());
            Reply::ok()
        }
        "discard" => match session.multi.take() {
            Some(_) => Reply::ok(),
            None => Reply::err("DISCARD without MULTI"),
        },
        "exec" => match session.multi.take() {
            None => Reply::err("EXEC without MULTI"),
            Some(multi) if multi.dirty => {
                Reply::error("EXECABORT", "Transaction discarded because of previous errors.")
            }
            Some(multi) => exec(session, shared, &multi.queued),
        },
        "watch" if session.multi.is_some() => Reply::err("WATCH inside MULTI is not allowed"),
        "watch" => Reply::err(
            "WATCH is not supported by mcstore-server: EXEC runs the queued reads and writes as \
             one serializable transaction instead",
        ),
        "unwatch" => Reply::ok(),
        other => Reply::err(format!("unknown transaction command '{other}'")),
    }
}

/// SET key value (no option) or MSET with whole pairs: a write that reads nothing.
fn plain_write(spec: &Spec, args: &Args) -> bool {
    match spec.name {
        "set" => args.len() == 3,
        "mset" => args.len() >= 3 && !args.len().is_multiple_of(2),
        _ => false,
    }
}

fn exec(session: &mut Session, shared: &Shared, queued: &[(&'static Spec, Args)]) -> Reply {
    if queued.iter().all(|(spec, args)| plain_write(spec, args)) {
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
        Ok(replies)
    });
    match result {
        Ok(replies) => Reply::Array(replies),
        Err(error) => Reply::from(error),
    }
}
