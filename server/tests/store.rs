//! The server over the store: SCAN under concurrent writes, acknowledged writes surviving a
//! stop and reopen, WAITAOF with eventual durability, and poisoned media answered `-MEDIA`.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use mcstore_engine::{Db, Durability};
use redis::{Commands, cmd};

use crate::harness::{TestServer, code, sim_db, test_options};

#[test]
fn scan_returns_every_stable_key_despite_concurrent_writes() {
    let (_sim, db) = sim_db();
    let server = Arc::new(TestServer::start(db));
    let mut c = server.client();
    let stable: HashSet<String> = (0..600).map(|i| format!("k{i:04}")).collect();
    let pairs: Vec<(&String, &str)> = stable.iter().map(|k| (k, "v")).collect();
    let () = c.mset(&pairs).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let churn = {
        let (server, done) = (Arc::clone(&server), Arc::clone(&done));
        std::thread::spawn(move || {
            let mut c = server.client();
            let mut i = 0u64;
            while !done.load(Ordering::Relaxed) {
                // Keys sorting before, between and after the stable ones come and go.
                let key = format!("{}{i}", ["a", "k0300x", "z"][(i % 3) as usize]);
                let () = c.set(&key, i).unwrap();
                if i.is_multiple_of(2) {
                    let _: i64 = c.del(&key).unwrap();
                }
                i += 1;
            }
        })
    };
    for _ in 0..3 {
        let mut seen = HashSet::new();
        let mut cursor = 0u64;
        loop {
            let (next, keys): (u64, Vec<String>) = cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg("k*")
                .arg("COUNT")
                .arg(7)
                .query(&mut c)
                .unwrap();
            seen.extend(keys);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let missing: Vec<&String> = stable.difference(&seen).collect();
        assert!(missing.is_empty(), "SCAN missed {missing:?}");
    }
    done.store(true, Ordering::Relaxed);
    churn.join().unwrap();
    // The client library's own SCAN iterator works with these cursors.
    let all: HashSet<String> = c.scan_match::<_, String>("k0*").unwrap().collect();
    assert!(stable.is_subset(&all));
    let bad = cmd("SCAN").arg(987_654_321u64).query::<(u64, Vec<String>)>(&mut c).unwrap_err();
    assert!(bad.to_string().contains("invalid cursor"), "{bad}");
}

#[test]
fn an_acknowledged_write_survives_stop_and_reopen() {
    let dir = tempfile::Builder::new().prefix("mcstore-server-").tempdir_in("/dev/shm").unwrap();
    let path = dir.path().join("pool");
    let db = Db::create(&path, test_options().size_bytes(8 << 20)).unwrap();
    let server = TestServer::start(db);
    let mut c = server.client();
    let () = c.set("durable", "yes").unwrap();
    let () = redis::pipe().atomic().set("m1", 1).set("m2", 2).query(&mut c).unwrap();
    let _: i64 = c.incr("counter", 5).unwrap();
    drop(c);
    server.stop().expect("the server closes the store cleanly");
    let db = Db::open(&path, test_options()).unwrap();
    assert!(db.recovery_report().clean_shutdown);
    assert_eq!(db.get("durable").unwrap().unwrap(), b"yes");
    assert_eq!(db.get("m2").unwrap().unwrap(), b"2");
    assert_eq!(db.get("counter").unwrap().unwrap(), b"5");
}

#[test]
fn waitaof_syncs_eventual_writes() {
    let (_sim, db) = sim_db();
    let server = TestServer::start(db.with_durability(Durability::Eventual));
    drop(db);
    let mut c = server.client();
    let config: Vec<String> = cmd("CONFIG").arg("GET").arg("appendfsync").query(&mut c).unwrap();
    assert_eq!(config, vec!["appendfsync", "everysec"]);
    let () = c.set("k", "v").unwrap();
    let wait: Vec<i64> = cmd("WAITAOF").arg(1).arg(0).arg(100).query(&mut c).unwrap();
    assert_eq!(wait, vec![1, 0]);
    assert!(cmd("WAITAOF").arg(1).arg(0).arg(-1).query::<Vec<i64>>(&mut c).is_err());
}

#[test]
fn a_poisoned_value_answers_media_and_other_keys_are_served() {
    let (sim, db) = sim_db();
    let server = TestServer::start(db);
    let mut c = server.client();
    let () = c.set("before", "b").unwrap();
    let pattern: Vec<u8> = (0..4000u32).map(|i| (i * 7 % 251) as u8).collect();
    let () = c.set("victim", &pattern).unwrap();
    let () = c.set("after", "a").unwrap();
    let image = sim.visible_image();
    let at =
        image.windows(pattern.len()).position(|w| w == pattern).expect("value in the pool") as u64;
    let line = (at + 1024).next_multiple_of(64);
    sim.inject_poison(line, 64).unwrap();
    let error = c.get::<_, Vec<u8>>("victim").unwrap_err();
    assert_eq!(code(&error), "MEDIA");
    let text = error.to_string();
    assert!(text.contains(&format!("user member 0 offset {line} len 64 key victim")), "{text}");
    assert_eq!(c.get::<_, String>("before").unwrap(), "b");
    assert_eq!(c.get::<_, String>("after").unwrap(), "a");
    // MGET answers the readable key and an error item for the lost one.
    let mut raw = server.raw();
    let want = format!("*2\r\n$1\r\nb\r\n-MEDIA user member 0 offset {line} len 64 key victim\r\n");
    let items = crate::harness::exchange(&mut raw, b"MGET before victim\r\n", want.len());
    assert_eq!(String::from_utf8_lossy(&items), want);
    assert_eq!(code(&c.append::<_, _, i64>("victim", "x").unwrap_err()), "MEDIA");
    // The key still exists (only its value is lost) and can be deleted, then rewritten.
    let keys: Vec<String> = c.keys("v*").unwrap();
    assert_eq!(keys, vec!["victim"]);
    assert_eq!(c.del::<_, i64>("victim").unwrap(), 1);
    let () = c.set("victim", "fresh").unwrap();
    assert_eq!(c.get::<_, String>("victim").unwrap(), "fresh");
    let info: String = cmd("INFO").arg("persistence").query(&mut c).unwrap();
    assert!(info.contains("mcstore_failed:0"), "{info}");
}
