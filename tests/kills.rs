//! Real process kills: this test binary re-executes itself as a writer that opens a ForcedPmem
//! pool on /dev/shm, writes keys and prints `ack KEY` on stdout after each acknowledgement; the
//! parent SIGKILLs it at a pseudo-random moment (about one round in ten while it is still
//! opening), reopens the pool and checks every acknowledged key holds its exact value. On tmpfs
//! this tests ordering and publication, not flushes (`SimMedium` tests those). Figure:
//! "process kills".

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use mcstore::{Db, Mode, Options};
use mcstore_testkit::pools::small_options;

use crate::support::{CHILD_ROLE, child_role, shm_dir};

const ROUNDS: u64 = 20;
const ROLE: &str = "kills-writer";
const POOL_VAR: &str = "MCSTORE_KILL_POOL";
const ROUND_VAR: &str = "MCSTORE_KILL_ROUND";
/// Keys a child writes before it idles (the parent kills it long before, in practice).
const CHILD_KEYS_MAX: u64 = 100_000;

fn options() -> Options {
    small_options().size_bytes(1 << 20).max_size_bytes(8 << 20).mode(Mode::ForcedPmem)
}

fn value_of(key: &str) -> Vec<u8> {
    format!("value of {key};").repeat(1 + key.len() % 7).into_bytes()
}

/// xorshift64*: the parent's reproducible "random" moments.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_F491_4F6C_DD1D)
}

/// The child: open, write, acknowledge on stdout, until killed.
fn writer(pool: &Path, round: u64) {
    let db = Db::open(pool, options()).expect("the child opens the pool");
    let mut out = std::io::stdout().lock();
    for i in 0..CHILD_KEYS_MAX {
        let key = format!("r{round:02}-k{i:05}");
        db.put(&key, value_of(&key)).expect("put");
        writeln!(out, "ack {key}").and_then(|()| out.flush()).expect("stdout");
    }
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn acknowledged_keys_survive_sigkill() {
    if child_role().as_deref() == Some(ROLE) {
        let pool = std::env::var_os(POOL_VAR).expect("pool path");
        let round = std::env::var(ROUND_VAR).ok().and_then(|r| r.parse().ok()).expect("round");
        writer(Path::new(&pool), round);
        return;
    }
    let dir = shm_dir();
    let pool = dir.path().join("pool");
    Db::create(&pool, options()).expect("create").close().expect("close");
    let exe = std::env::current_exe().expect("the test binary");
    let mut rng = 0x6b69_6c6c_7321_u64;
    let mut acknowledged: Vec<String> = Vec::new();
    let mut during_open = 0;
    for round in 0..ROUNDS {
        let mut child = Command::new(&exe)
            .args(["--exact", "kills::acknowledged_keys_survive_sigkill", "--nocapture"])
            .args(["--test-threads=1"])
            .env(CHILD_ROLE, ROLE)
            .env(POOL_VAR, &pool)
            .env(ROUND_VAR, round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn the writer");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        if next(&mut rng).is_multiple_of(10) || round == 0 {
            // While it starts and opens (recovery, the "in use" superblock update).
            during_open += 1;
            std::thread::sleep(Duration::from_micros(next(&mut rng) % 20_000));
        } else {
            let wanted = 1 + next(&mut rng) % 300;
            let mut seen = 0;
            while seen < wanted {
                match lines.next() {
                    Some(Ok(line)) if line.starts_with("ack ") => {
                        acknowledged.push(line["ack ".len()..].to_string());
                        seen += 1;
                    }
                    Some(Ok(_)) => {}
                    _ => break,
                }
            }
        }
        child.kill().expect("SIGKILL the writer");
        // Every complete line the child wrote before it died is an acknowledgement.
        for line in lines.map_while(Result::ok) {
            if let Some(key) = line.strip_prefix("ack ") {
                acknowledged.push(key.to_string());
            }
        }
        let status = child.wait().expect("wait for the writer");
        assert!(!status.success(), "round {round}: the writer exited on its own: {status}");
        let db = Db::open(&pool, options()).expect("reopen after the kill");
        for key in &acknowledged {
            let got = db.get(key).expect("get");
            assert_eq!(got.as_deref(), Some(&value_of(key)[..]), "round {round}: {key}");
        }
        db.close().expect("close");
    }
    assert!(during_open >= 1);
    assert!(!acknowledged.is_empty(), "no round acknowledged a write");
    mcstore::pmem::figures::count("kills", "process kills", ROUNDS);
}
