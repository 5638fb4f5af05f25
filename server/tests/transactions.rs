//! MULTI / EXEC / DISCARD / WATCH: queueing, aborts, atomicity under concurrent readers, and
//! optimistic locking.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use redis::{Commands, Value, cmd};

use crate::harness::{TestServer, code, exchange, sim_db};

#[test]
fn multi_queues_and_exec_runs_or_aborts() {
    let (_sim, db) = sim_db();
    let server = TestServer::start(db);
    let mut c = server.client();
    assert_eq!(cmd("MULTI").query::<String>(&mut c).unwrap(), "OK");
    assert_eq!(code(&cmd("MULTI").query::<String>(&mut c).unwrap_err()), "ERR");
    assert_eq!(cmd("SET").arg("a").arg("1").query::<String>(&mut c).unwrap(), "QUEUED");
    assert_eq!(cmd("INCR").arg("a").query::<String>(&mut c).unwrap(), "QUEUED");
    assert_eq!(cmd("GET").arg("a").query::<String>(&mut c).unwrap(), "QUEUED");
    assert_eq!(cmd("PING").query::<String>(&mut c).unwrap(), "QUEUED");
    let () = redis::Commands::set(&mut server.client(), "s", "text").unwrap();
    let replies: Vec<Value> = cmd("EXEC").query(&mut c).unwrap();
    assert_eq!(replies.len(), 4);
    assert_eq!(replies[0], Value::Okay);
    assert_eq!(replies[1], Value::Int(2));
    assert_eq!(replies[2], Value::BulkString(b"2".to_vec()));
    assert!(matches!(&replies[3], Value::SimpleString(s) if s == "PONG"));
    // A command failing at EXEC is an error item; the others still apply.
    let mut raw = server.raw();
    let want = b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n-ERR value is not an integer or out of range\r\n:3\r\n";
    let got = exchange(&mut raw, b"MULTI\r\nINCR s\r\nINCR a\r\nEXEC\r\n", want.len());
    assert_eq!(got.escape_ascii().to_string(), want.escape_ascii().to_string());
    assert_eq!(c.get::<_, i64>("a").unwrap(), 3);

    // A command refused while queueing aborts the whole EXEC.
    let _: String = cmd("MULTI").query(&mut c).unwrap();
    let _: String = cmd("SET").arg("a").arg("100").query(&mut c).unwrap();
    assert!(cmd("GET").query::<String>(&mut c).is_err());
    assert!(cmd("KEYS").arg("*").query::<String>(&mut c).is_err(), "KEYS is refused in MULTI");
    assert_eq!(code(&cmd("EXEC").query::<Value>(&mut c).unwrap_err()), "EXECABORT");
    assert_eq!(c.get::<_, i64>("a").unwrap(), 3);

    let _: String = cmd("MULTI").query(&mut c).unwrap();
    let _: String = cmd("SET").arg("a").arg("100").query(&mut c).unwrap();
    assert_eq!(cmd("DISCARD").query::<String>(&mut c).unwrap(), "OK");
    assert_eq!(c.get::<_, i64>("a").unwrap(), 3);
    assert_eq!(code(&cmd("EXEC").query::<Value>(&mut c).unwrap_err()), "ERR");
    assert_eq!(code(&cmd("DISCARD").query::<Value>(&mut c).unwrap_err()), "ERR");
    assert_eq!(cmd("UNWATCH").query::<String>(&mut c).unwrap(), "OK");
    let empty: Vec<Value> = redis::pipe().atomic().query(&mut c).unwrap();
    assert!(empty.is_empty());
}

/// Readers never see half of an EXEC: a write-only EXEC (one batch) and a read-modify-write
/// EXEC (one transaction) both keep `a == b` and `x == y` for every MGET.
#[test]
fn exec_is_atomic_for_concurrent_readers() {
    let (_sim, db) = sim_db();
    let server = Arc::new(TestServer::start(db));
    let done = Arc::new(AtomicBool::new(false));
    let mut setup = server.client();
    let () = setup.mset(&[("a", 0), ("b", 0), ("x", 0), ("y", 0)]).unwrap();
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (server, done) = (Arc::clone(&server), Arc::clone(&done));
            std::thread::spawn(move || {
                let mut c = server.client();
                let mut checks = 0;
                while !done.load(Ordering::Relaxed) || checks < 50 {
                    let ab: (i64, i64) = c.mget(&["a", "b"]).unwrap();
                    assert_eq!(ab.0, ab.1, "half of a batch EXEC seen");
                    let xy: (i64, i64) = c.mget(&["x", "y"]).unwrap();
                    assert_eq!(xy.0, xy.1, "half of a transaction EXEC seen");
                    checks += 1;
                }
                checks
            })
        })
        .collect();
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let server = Arc::clone(&server);
            std::thread::spawn(move || {
                let mut c = server.client();
                for i in 0..150 {
                    let n = w * 1000 + i;
                    let () = redis::pipe().atomic().set("a", n).set("b", n).query(&mut c).unwrap();
                    let (x, y): (i64, i64) =
                        redis::pipe().atomic().incr("x", 1).incr("y", 1).query(&mut c).unwrap();
                    assert_eq!(x, y);
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    done.store(true, Ordering::Relaxed);
    for reader in readers {
        assert!(reader.join().unwrap() >= 50);
    }
    let mut c = server.client();
    assert_eq!(c.get::<_, i64>("x").unwrap(), 300, "no increment lost");
    assert_eq!(c.get::<_, i64>("y").unwrap(), 300);
}

/// EXEC after WATCH runs only if no watched key was written since: by another client, or by a
/// plain write the batch path would otherwise take; UNWATCH, DISCARD and EXEC forget the keys.
#[test]
fn watch_aborts_exec_when_a_watched_key_changed() {
    let (_sim, db) = sim_db();
    let server = TestServer::start(db);
    let mut c = server.client();
    let mut other = server.client();
    let () = c.set("a", 1).unwrap();
    let exec_set = |c: &mut redis::Connection, value: i64| -> Value {
        let _: String = cmd("MULTI").query(c).unwrap();
        let _: String = cmd("SET").arg("a").arg(value).query(c).unwrap();
        cmd("EXEC").query(c).unwrap()
    };

    // Another client's write to a watched key: EXEC runs nothing, replies null.
    let _: String = cmd("WATCH").arg("a").arg("absent").query(&mut c).unwrap();
    let () = other.set("a", 5).unwrap();
    assert_eq!(exec_set(&mut c, 100), Value::Nil);
    assert_eq!(c.get::<_, i64>("a").unwrap(), 5);
    // EXEC forgot the watch: the same transaction now runs.
    assert_eq!(exec_set(&mut c, 100), Value::Array(vec![Value::Okay]));
    // A key absent when watched and created since.
    let _: String = cmd("WATCH").arg("absent").query(&mut c).unwrap();
    let () = other.set("absent", "now").unwrap();
    assert_eq!(exec_set(&mut c, 200), Value::Nil);
    assert_eq!(c.get::<_, i64>("a").unwrap(), 100);
    // Writing the same value again is a change too.
    let _: String = cmd("WATCH").arg("a").query(&mut c).unwrap();
    let () = other.set("a", 100).unwrap();
    assert_eq!(exec_set(&mut c, 300), Value::Nil);
    // No change: EXEC runs (a read-modify-write under a watch).
    let _: String = cmd("WATCH").arg("a").query(&mut c).unwrap();
    let _: String = cmd("MULTI").query(&mut c).unwrap();
    let _: String = cmd("INCR").arg("a").query(&mut c).unwrap();
    assert_eq!(cmd("EXEC").query::<Value>(&mut c).unwrap(), Value::Array(vec![Value::Int(101)]));
    // UNWATCH and DISCARD forget the keys.
    let _: String = cmd("WATCH").arg("a").query(&mut c).unwrap();
    assert_eq!(cmd("UNWATCH").query::<String>(&mut c).unwrap(), "OK");
    let () = other.set("a", 7).unwrap();
    assert_eq!(exec_set(&mut c, 8), Value::Array(vec![Value::Okay]));
    let _: String = cmd("WATCH").arg("a").query(&mut c).unwrap();
    let _: String = cmd("MULTI").query(&mut c).unwrap();
    assert_eq!(cmd("DISCARD").query::<String>(&mut c).unwrap(), "OK");
    let () = other.set("a", 9).unwrap();
    assert_eq!(exec_set(&mut c, 10), Value::Array(vec![Value::Okay]));
    assert_eq!(c.get::<_, i64>("a").unwrap(), 10);
    // WATCH inside MULTI is refused; the MULTI stays open.
    let _: String = cmd("MULTI").query(&mut c).unwrap();
    assert_eq!(code(&cmd("WATCH").arg("a").query::<Value>(&mut c).unwrap_err()), "ERR");
    assert_eq!(cmd("DISCARD").query::<String>(&mut c).unwrap(), "OK");
}

/// The classic optimistic increment (redis-rs's `transaction` helper: WATCH, GET, MULTI, SET,
/// EXEC, retried on a null reply) from two clients at once loses no increment.
#[test]
fn watched_read_modify_writes_from_two_clients_lose_nothing() {
    let (_sim, db) = sim_db();
    let server = Arc::new(TestServer::start(db));
    const EACH: i64 = 40;
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let server = Arc::clone(&server);
            std::thread::spawn(move || {
                let mut c = server.client();
                for _ in 0..EACH {
                    let () = redis::transaction(&mut c, &["counter"], |c, pipe| {
                        let now: Option<i64> = c.get("counter")?;
                        pipe.set("counter", now.unwrap_or(0) + 1).ignore().query(c)
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().unwrap();
    }
    assert_eq!(server.client().get::<_, i64>("counter").unwrap(), 2 * EACH);
}

/// DEL and EXISTS of several keys act at one point in time: while another client sets and
/// removes a pair of keys together, EXISTS of the pair sees both or neither, and DEL of the
/// pair removes both or neither. A key named twice counts once for DEL and twice for EXISTS.
#[test]
fn del_and_exists_of_several_keys_are_atomic() {
    let (_sim, db) = sim_db();
    let server = Arc::new(TestServer::start(db));
    let mut c = server.client();
    let () = c.mset(&[("p", 1), ("q", 1)]).unwrap();
    assert_eq!(cmd("EXISTS").arg("p").arg("p").arg("none").query::<i64>(&mut c).unwrap(), 2);
    assert_eq!(cmd("DEL").arg("p").arg("p").arg("none").query::<i64>(&mut c).unwrap(), 1);
    assert_eq!(cmd("DEL").arg("q").query::<i64>(&mut c).unwrap(), 1);
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (server, done) = (Arc::clone(&server), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut c = server.client();
            let mut rounds = 0;
            while !done.load(Ordering::Relaxed) || rounds < 50 {
                let () = c.mset(&[("p", rounds), ("q", rounds)]).unwrap();
                let removed: i64 = cmd("DEL").arg("p").arg("q").query(&mut c).unwrap();
                assert!(removed == 0 || removed == 2, "DEL of the pair removed {removed}");
                rounds += 1;
            }
        })
    };
    let mut seen = [0; 3];
    for _ in 0..300 {
        let present: i64 = cmd("EXISTS").arg("p").arg("q").query(&mut c).unwrap();
        seen[usize::try_from(present).unwrap()] += 1;
        let removed: i64 = cmd("DEL").arg("p").arg("q").query(&mut c).unwrap();
        seen[usize::try_from(removed).unwrap()] += 1;
    }
    done.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    assert_eq!(seen[1], 0, "half a pair seen: {seen:?}");
}
