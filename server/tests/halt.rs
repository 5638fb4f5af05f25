//! `--halt-on-media` end to end: a server on the policy `server_policy(true)` builds (Halt in
//! both domains) meets poison under a client's GET; the process prints the halt report naming
//! the key to standard error and aborts. The server runs in a re-executed child of this test
//! binary (it must die); the parent checks how it died and what it said.

use std::os::unix::process::ExitStatusExt;
use std::process::Command;

use mcstore_server::{ServerConfig, server_policy};

use crate::harness::{TestServer, sim_db_with, test_options};

/// Environment variable that makes the re-executed test the child that serves and halts.
const CHILD: &str = "MCSTORE_SERVER_HALT_CHILD";
/// This test's path in the binary (the child runs exactly it).
const NAME: &str = "halt::a_get_over_poison_halts_the_server_with_the_report";
/// The signal `std::process::abort` raises (Linux).
const SIGABRT: i32 = 6;

#[test]
fn a_get_over_poison_halts_the_server_with_the_report() {
    if std::env::var_os(CHILD).is_some() {
        let (sim, db) = sim_db_with(test_options().policy(server_policy(true)));
        let config = ServerConfig { halt_on_media: true, ..ServerConfig::default() };
        let server = TestServer::start_with(db, config);
        let mut c = server.client();
        let pattern: Vec<u8> = (0..4000u32).map(|i| (i * 13 % 251) as u8).collect();
        let () = redis::Commands::set(&mut c, "victim", &pattern).unwrap();
        let () = redis::Commands::set(&mut c, "other", "o").unwrap();
        let image = sim.visible_image();
        let at = image.windows(pattern.len()).position(|w| w == pattern).unwrap() as u64;
        sim.inject_poison((at + 1024).next_multiple_of(64), 64).unwrap();
        eprintln!("child: poison injected");
        let answer: redis::RedisResult<Vec<u8>> = redis::Commands::get(&mut c, "victim");
        eprintln!("not reached: GET answered {answer:?}");
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let output = Command::new(exe)
        .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.signal(), Some(SIGABRT), "{:?}: {stderr}", output.status);
    assert!(stderr.contains("child: poison injected"), "{stderr}");
    assert!(!stderr.contains("not reached"), "{stderr}");
    assert!(stderr.contains("key victim") && stderr.contains("User"), "{stderr}");
}
