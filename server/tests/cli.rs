//! The real `redis-cli` and `redis-benchmark` (Debian redis-tools) against the server. These
//! tests fail, not skip, when the binaries are missing.

use std::process::Command;

use crate::harness::{TestServer, sim_db};

fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program).args(args).output().unwrap_or_else(|error| {
        panic!("{program} must be installed (Debian redis-tools): {error}")
    });
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{program} {args:?} failed: {stdout} {stderr}");
    stdout
}

#[test]
fn redis_cli_talks_to_the_server() {
    let (_sim, db) = sim_db();
    let server = TestServer::start(db);
    let port = server.addr.port().to_string();
    let cli = |args: &[&str]| {
        let mut all = vec!["-p", &port];
        all.extend_from_slice(args);
        run("redis-cli", &all).trim_end().to_string()
    };
    assert_eq!(cli(&["PING"]), "PONG");
    assert_eq!(cli(&["SET", "greeting", "hello world"]), "OK");
    assert_eq!(cli(&["GET", "greeting"]), "hello world");
    assert_eq!(cli(&["INCRBY", "n", "41"]), "41");
    assert_eq!(cli(&["INCR", "n"]), "42");
    assert_eq!(cli(&["MSET", "a", "1", "b", "2"]), "OK");
    assert_eq!(cli(&["DBSIZE"]), "4");
    assert!(cli(&["SET", "e", "v", "EX", "5"]).contains("expiry"));
    let mut scanned: Vec<String> = cli(&["--scan"]).lines().map(String::from).collect();
    scanned.sort();
    assert_eq!(scanned, vec!["a", "b", "greeting", "n"]);
    assert!(cli(&["-3", "HELLO", "3"]).contains("proto"));
    assert!(cli(&["INFO", "persistence"]).contains("mcstore_durability:immediate"));
}

#[test]
fn redis_benchmark_completes_without_errors() {
    let (_sim, db) = sim_db();
    let server = TestServer::start(db);
    let port = server.addr.port().to_string();
    let out = run("redis-benchmark", &["-p", &port, "-t", "set,get,incr,mset", "-n", "2000", "-q"]);
    for test in ["SET:", "GET:", "INCR:", "MSET"] {
        assert!(out.contains(test), "{test} missing: {out}");
    }
    assert!(!out.to_ascii_lowercase().contains("error"), "{out}");
}
