//! The `mcstore-server` binary: create a pool, serve it, SIGTERM → the store is closed cleanly
//! and the process says so; the acknowledged write is in the pool when it is reopened.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use mcstore_engine::Db;
use redis::Commands;

#[test]
fn sigterm_closes_the_store_cleanly_and_writes_survive() {
    let dir =
        tempfile::Builder::new().prefix("mcstore-server-bin-").tempdir_in("/dev/shm").unwrap();
    let pool = dir.path().join("pool");
    let mut child = Command::new(env!("CARGO_BIN_EXE_mcstore-server"))
        .args(["--pool", pool.to_str().unwrap(), "--create-size", "8M", "--bind", "127.0.0.1:0"])
        .args(["--durability", "eventual"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    // "mcstore-server: serving PATH on ADDR (durability Eventual)"
    let addr = line
        .split(" on ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("{line}"));
    let mut con =
        redis::Client::open(format!("redis://{addr}/")).unwrap().get_connection().unwrap();
    let () = con.set("k", "acknowledged").unwrap();
    drop(con);
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert!(status.success(), "{status:?} {rest}");
    assert!(rest.contains("store closed cleanly"), "{rest}");
    let db = Db::open(&pool, mcstore_engine::Options::default()).unwrap();
    assert!(db.recovery_report().clean_shutdown);
    assert_eq!(db.get("k").unwrap().unwrap(), b"acknowledged");
}

#[test]
fn a_missing_pool_without_create_size_is_an_error() {
    let dir =
        tempfile::Builder::new().prefix("mcstore-server-bin-").tempdir_in("/dev/shm").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_mcstore-server"))
        .args(["--pool", dir.path().join("absent").to_str().unwrap(), "--bind", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("cannot open"));
}
