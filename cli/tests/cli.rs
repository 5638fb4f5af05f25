//! The `mcstore` binary end to end on temporary pools in /dev/shm: create/info, dump/load round
//! trip, check and scrub on clean and damaged pools, badblocks, compact, bad input, serve.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions fail the test by panicking"
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use mcstore_engine::{Db, Options};
use mcstore_recovery::format::{Geometry, SegmentId};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_mcstore");

fn shm() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("mcstore-cli-test").tempdir_in("/dev/shm").unwrap()
}

fn mcstore(args: &[&str]) -> Output {
    Command::new(BIN).args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Run, expect `code`, parse stdout as one JSON document.
fn json(args: &[&str], code: i32) -> Value {
    let out = mcstore(args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{args:?}: {}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", text(&out.stdout)))
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A new 16 MiB pool of 1 MiB segments, created through the binary.
fn create(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let out = json(&["create", s(&path), "--size", "16MiB", "--segment-size", "1MiB", "--json"], 0);
    assert_eq!(out["pool_bytes"], 16 << 20);
    assert_eq!(out["segment_size_bytes"], 1 << 20);
    path
}

fn open(path: &Path) -> Db {
    Db::open(path, Options::default().background(false).size_bytes(16 << 20)).unwrap()
}

/// Every (key, value) of the pool, in key order.
fn contents(path: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let db = open(path);
    let all: mcstore_engine::Result<Vec<_>> =
        db.iter().map(|item| item.map(|(k, v)| (k.to_vec(), v.to_vec()))).collect();
    db.close().unwrap();
    all.unwrap()
}

fn fill(path: &Path) -> Vec<(Vec<u8>, Vec<u8>)> {
    let db = open(path);
    for i in 0..300u32 {
        let value: Vec<u8> = (0..(i % 97) * 7).map(|j| (j ^ i) as u8).collect();
        db.put(format!("user:{i:04}").as_bytes(), value).unwrap();
    }
    db.put([0u8, 255, b'\n', b'"'], b"binary\r\nvalue\0").unwrap();
    db.put("empty", b"").unwrap();
    // Larger than a load batch (a quarter of a 1 MiB segment): written on its own.
    db.put("big", vec![0xab; 300 << 10]).unwrap();
    for i in 0..1500u32 {
        db.put(format!("small:{i:05}"), format!("{i}").repeat(40)).unwrap();
    }
    db.close().unwrap();
    contents(path)
}

/// Offset of the one occurrence of `needle` in the file.
fn find(path: &Path, needle: &[u8]) -> u64 {
    let bytes = std::fs::read(path).unwrap();
    let hits: Vec<usize> = bytes
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(hits.len(), 1, "{needle:?} found {} times", hits.len());
    hits[0] as u64
}

/// A pool with one record whose value is a known pattern; its offset.
fn pool_with_victim(dir: &Path) -> (PathBuf, u64) {
    let path = create(dir, "victim.pool");
    let db = open(&path);
    db.put("before", "b").unwrap();
    db.put("victim", b"VICTIM-PATTERN-0123456789-".repeat(20)).unwrap();
    db.put("after", "a").unwrap();
    db.close().unwrap();
    let at = find(&path, &b"VICTIM-PATTERN-0123456789-".repeat(20));
    (path, at)
}

#[test]
fn create_then_info_reports_geometry_keys_and_a_clean_shutdown() {
    let dir = shm();
    let path = create(dir.path(), "p");
    let info = json(&["info", s(&path), "--json"], 0);
    assert_eq!(info["keys"], 0);
    assert_eq!(info["pool_bytes"], 16 << 20);
    assert_eq!(info["clean_shutdown"], true);
    assert_eq!(info["members"][0]["state"], "in-sync");
    assert_eq!(info["recovery"]["damage"], Value::Array(vec![]));
    let expected = fill(&path);
    let info = json(&["info", s(&path), "--json"], 0);
    assert_eq!(info["keys"], expected.len());
    assert!(info["live_bytes"].as_u64().unwrap() > 0);
    assert!(info["space_amplification"].as_f64().unwrap() >= 1.0);
    assert!(info["index_bytes_per_key"].as_u64().unwrap() > 0);
    assert_eq!(info["read_only"], true);
    // Human text names the path and the mode.
    let out = mcstore(&["info", s(&path)]);
    assert!(out.status.success());
    assert!(text(&out.stdout).contains(s(&path)) && text(&out.stdout).contains("mode"));
    // Creating over an existing pool is refused.
    let again = mcstore(&["create", s(&path), "--size", "16MiB"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again.stderr).contains("already exists"), "{}", text(&again.stderr));
}

#[test]
fn dump_then_load_into_a_new_pool_round_trips_exactly() {
    let dir = shm();
    let source = create(dir.path(), "source");
    let expected = fill(&source);
    let dump = mcstore(&["dump", s(&source)]);
    assert!(dump.status.success(), "{}", text(&dump.stderr));
    assert_eq!(text(&dump.stdout).lines().count(), expected.len());
    let file = dir.path().join("dump.jsonl");
    std::fs::write(&file, &dump.stdout).unwrap();
    let target = create(dir.path(), "target");
    let loaded = json(&["load", s(&target), s(&file), "--json"], 0);
    assert_eq!(loaded["records"], expected.len());
    // The big value alone, the small records in several batches.
    assert!(loaded["batches"].as_u64().unwrap() >= 3, "{loaded}");
    assert_eq!(contents(&target), expected);
    // From stdin, into a third pool, with a prefix.
    let third = create(dir.path(), "third");
    let prefixed = mcstore(&["dump", s(&source), "--prefix", "user:01"]);
    let mut child = Command::new(BIN)
        .args(["load", s(&third), "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&prefixed.stdout).unwrap();
    assert!(child.wait_with_output().unwrap().status.success());
    let want: Vec<_> =
        expected.iter().filter(|(k, _)| k.starts_with(b"user:01")).cloned().collect();
    assert_eq!(want.len(), 100);
    assert_eq!(contents(&third), want);
}

#[test]
fn resp_dump_is_set_commands() {
    let dir = shm();
    let path = create(dir.path(), "p");
    let db = open(&path);
    db.put("k", "v1").unwrap();
    db.close().unwrap();
    let out = mcstore(&["dump", s(&path), "--format", "resp"]);
    assert_eq!(out.stdout, b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nv1\r\n");
}

#[test]
fn load_rejects_a_bad_line_with_its_number() {
    let dir = shm();
    let path = create(dir.path(), "p");
    let file = dir.path().join("bad.jsonl");
    std::fs::write(&file, "{\"key\":\"aw==\",\"value\":\"\"}\nnot json\n").unwrap();
    let out = mcstore(&["load", s(&path), s(&file)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("line 2"), "{}", text(&out.stderr));
}

#[test]
fn check_and_scrub_are_clean_on_a_clean_pool() {
    let dir = shm();
    let path = create(dir.path(), "p");
    fill(&path);
    let check = json(&["check", s(&path), "--json"], 0);
    assert_eq!(check["clean"], true);
    assert_eq!(check["recovery"]["open_kind"], "full");
    assert!(check["recovery"]["records"].as_u64().unwrap() >= 302);
    let scrub = json(&["scrub", s(&path), "--json"], 0);
    assert_eq!(scrub["clean"], true);
    assert!(scrub["bytes_scanned"].as_u64().unwrap() > 0);
}

#[test]
fn check_reports_a_flipped_byte_with_its_range_and_exits_2() {
    let dir = shm();
    let (path, at) = pool_with_victim(dir.path());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[at as usize + 100] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let check = json(&["check", s(&path), "--json"], 2);
    assert_eq!(check["clean"], false);
    let damage = check["damage"].as_array().unwrap();
    assert_eq!(damage.len(), 1, "{check}");
    let (offset, len) = (damage[0]["offset"].as_u64().unwrap(), damage[0]["len"].as_u64().unwrap());
    assert!(offset <= at + 100 && at + 100 < offset + len, "{damage:?} misses {}", at + 100);
    assert_eq!(damage[0]["kind"], "BadRecord");
    // scrub's open meets it too.
    let scrub = json(&["scrub", s(&path), "--json"], 2);
    assert_eq!(scrub["clean"], false);
    // A plain dump stops at the record that does not verify; a salvage dump skips it and
    // exports what survives (exit 2: something was lost).
    assert_eq!(mcstore(&["dump", s(&path)]).status.code(), Some(1));
    let salvaged = mcstore(&["dump", s(&path), "--salvage"]);
    assert_eq!(salvaged.status.code(), Some(2), "{}", text(&salvaged.stderr));
    let lines = text(&salvaged.stdout);
    assert_eq!(lines.lines().count(), 2, "{lines}");
    assert!(lines.contains("YmVmb3Jl") && lines.contains("YWZ0ZXI="), "{lines}");
    assert!(text(&salvaged.stderr).contains("salvage: "), "{}", text(&salvaged.stderr));
}

#[test]
fn a_badblocks_entry_is_poison_that_check_reports_and_clear_removes() {
    let dir = shm();
    let (path, at) = pool_with_victim(dir.path());
    let page = at / 4096 * 4096;
    let page_arg = page.to_string();
    let listed = json(&["badblocks", s(&path), "add", &page_arg, "4K", "--json"], 0);
    assert_eq!(listed["ranges"], serde_json::json!([{"offset": page, "len": 4096}]));
    let listed = json(&["badblocks", s(&path), "list", "--json"], 0);
    assert_eq!(listed["ranges"].as_array().unwrap().len(), 1);
    let check = json(&["check", s(&path), "--json"], 2);
    let poisoned = check["recovery"]["poisoned"].as_array().unwrap();
    assert!(
        poisoned.iter().any(|r| r[0].as_u64().unwrap() <= page
            && page < r[0].as_u64().unwrap() + r[1].as_u64().unwrap()),
        "{check}"
    );
    // scrub's open meets the listed range; info still describes the (latched) store.
    let scrub = json(&["scrub", s(&path), "--json"], 2);
    assert_eq!(scrub["opened"], false);
    assert!(!scrub["recovery"]["damage"].as_array().unwrap().is_empty());
    let info = json(&["info", s(&path), "--json"], 0);
    assert_eq!(info["failed"], true);
    let cleared = json(&["badblocks", s(&path), "clear", "--json"], 0);
    assert_eq!(cleared["ranges"], serde_json::json!([]));
    json(&["check", s(&path), "--json"], 0);
    let bad = mcstore(&["badblocks", s(&path), "add", "0", "0"]);
    assert_eq!(bad.status.code(), Some(1));
}

/// A listed bad block over segment 0's header page (its records are lost: nothing holds them).
/// `check --repair --salvage` zeroes the page through the medium's repair path, which re-reads
/// it and only then removes the sidecar entry; the segment is then good and is reclaimed. The
/// report says so (reclaimed, not pinned; exit 0), the list is empty and the next check clean.
#[test]
fn salvage_over_a_listed_bad_header_page_reclaims_the_segment_and_says_so() {
    let dir = shm();
    let (path, _) = pool_with_victim(dir.path());
    let header = Geometry::for_pool(16 << 20, 1 << 20).unwrap().segment_offset(SegmentId(0));
    json(&["badblocks", s(&path), "add", &header.to_string(), "4K", "--json"], 0);
    let found = json(&["check", s(&path), "--json"], 2);
    assert_eq!(found["recovery"]["salvage_candidates"], serde_json::json!([0]), "{found}");
    let salvaged = json(&["check", s(&path), "--repair", "--salvage", "--json"], 0);
    assert_eq!(salvaged["clean"], true, "{salvaged}");
    assert_eq!(salvaged["recovery"]["salvage_reclaimed"], serde_json::json!([0]), "{salvaged}");
    assert_eq!(salvaged["recovery"]["salvage_pinned"], serde_json::json!([]), "{salvaged}");
    let listed = json(&["badblocks", s(&path), "list", "--json"], 0);
    assert_eq!(listed["ranges"], serde_json::json!([]));
    let after = json(&["check", s(&path), "--json"], 0);
    assert_eq!(after["damage"], serde_json::json!([]), "{after}");
}

#[test]
fn compact_reclaims_overwritten_segments_and_says_so() {
    let dir = shm();
    let path = create(dir.path(), "p");
    let db = open(&path);
    for round in 0..6u8 {
        for i in 0..200u32 {
            db.put(format!("k{i}"), vec![round; 1000]).unwrap();
        }
    }
    db.close().unwrap();
    let summary = json(&["compact", s(&path), "--json"], 0);
    assert!(summary["segments_reclaimed"].as_u64().unwrap() >= 1, "{summary}");
    assert!(summary["bytes_reclaimed"].as_u64().unwrap() > 0, "{summary}");
    let before = summary["space_amplification_before"].as_f64().unwrap();
    let after = summary["space_amplification_after"].as_f64().unwrap();
    assert!(after < before, "{summary}");
    let all = contents(&path);
    assert_eq!(all.len(), 200);
    assert!(all.iter().all(|(_, v)| v == &vec![5u8; 1000]));
}

#[test]
fn bad_input_is_one_line_and_exit_1_never_a_panic() {
    let dir = shm();
    let missing = dir.path().join("missing");
    let not_pool = dir.path().join("not-a-pool");
    std::fs::write(&not_pool, vec![7u8; 1 << 20]).unwrap();
    let cases: Vec<Vec<String>> = vec![
        vec!["info".into(), s(&missing).into()],
        vec!["check".into(), s(&missing).into()],
        vec!["dump".into(), s(&missing).into()],
        vec!["info".into(), s(&not_pool).into()],
        vec!["check".into(), s(&not_pool).into()],
        vec!["create".into(), s(&missing).into(), "--size".into(), "lots".into()],
        vec!["create".into(), s(&missing).into(), "--segment-size".into(), "3M".into()],
        vec!["badblocks".into(), s(&missing).into()],
        vec!["load".into(), s(&not_pool).into(), s(&missing).into()],
        vec!["frobnicate".into()],
    ];
    for args in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = mcstore(&args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"), "{stderr}");
        assert!(stderr.contains("error"), "{args:?}: {stderr}");
    }
    assert!(!missing.exists(), "a failed create left a file");
    let out = mcstore(&["info", s(&missing)]);
    assert_eq!(text(&out.stderr).trim(), format!("mcstore: error: {}: not found", s(&missing)));
    let out = mcstore(&["info", s(&missing), "--json"]);
    let document: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(document["error"].as_str().unwrap().contains("not found"));
}

#[test]
fn a_pool_open_elsewhere_is_reported_locked() {
    let dir = shm();
    let path = create(dir.path(), "p");
    let db = open(&path);
    let out = mcstore(&["info", s(&path)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("locked"), "{}", text(&out.stderr));
    drop(db);
    assert!(mcstore(&["info", s(&path)]).status.success());
}

#[test]
fn serve_answers_ping_and_stops_cleanly_on_sigterm() {
    let dir = shm();
    let path = dir.path().join("served.pool");
    let mut child = Command::new(BIN)
        .args(["serve", s(&path), "--create-size", "16MiB", "--bind", "127.0.0.1:0", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The first line of the JSON document, then the rest up to its closing brace.
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut document = String::new();
    while !document.ends_with("}\n") {
        let mut line = String::new();
        assert!(stdout.read_line(&mut line).unwrap() > 0, "serve exited: {document}");
        document.push_str(&line);
    }
    let started: Value = serde_json::from_str(&document).unwrap();
    assert!(started["mode"].as_str().is_some());
    let addr = started["bind"].as_str().unwrap().to_string();
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    stream.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"+PONG\r\n");
    stream.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n").unwrap();
    let mut ok = [0u8; 5];
    stream.read_exact(&mut ok).unwrap();
    assert_eq!(&ok, b"+OK\r\n");
    drop(stream);
    let killed = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(status.success(), "{status:?}: {stderr}");
    assert!(stderr.contains("closed cleanly"), "{stderr}");
    // What was written through the server is in the pool.
    let db = open(&path);
    assert_eq!(db.get("k").unwrap().unwrap(), b"v");
}

#[test]
fn help_lists_every_subcommand_and_exits_0() {
    let out = mcstore(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for name in [
        "create",
        "info",
        "check",
        "scrub",
        "dump",
        "load",
        "compact",
        "badblocks",
        "bench",
        "serve",
    ] {
        assert!(help.contains(name), "{name} missing from --help");
    }
    let bench = text(&mcstore(&["bench", "--help"]).stdout);
    assert!(bench.contains("mcstore-bench"), "{bench}");
}

#[test]
fn bench_measures_put_get_scan() {
    let out = json(&["bench", "--seconds", "0.2", "--json"], 0);
    for phase in ["put", "get", "scan"] {
        assert!(out[phase]["ops"].as_u64().unwrap() > 0, "{out}");
        assert!(out[phase]["p99_ns"].as_u64().unwrap() >= out[phase]["p50_ns"].as_u64().unwrap());
    }
    assert_eq!(out["mode"], "forced-pmem");
}

#[test]
fn check_repairs_a_flipped_byte_from_a_replica() {
    let dir = shm();
    let path = dir.path().join("p");
    let replica = dir.path().join("r1");
    json(
        &[
            "create",
            s(&path),
            "--size",
            "16M",
            "--segment-size",
            "1M",
            "--replica",
            s(&replica),
            "--json",
        ],
        0,
    );
    let db = Db::open(
        &path,
        Options::default().background(false).size_bytes(16 << 20).replicas([&replica]),
    )
    .unwrap();
    db.put("victim", b"VICTIM-PATTERN-0123456789-".repeat(20)).unwrap();
    db.put("other", "o").unwrap();
    db.close().unwrap();
    let at = find(&path, &b"VICTIM-PATTERN-0123456789-".repeat(20));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[at as usize + 7] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let pool = [s(&path), "--replica", s(&replica)];
    let info = json(&[&["info"][..], &pool, &["--json"]].concat(), 0);
    assert_eq!(info["members"].as_array().unwrap().len(), 2);
    assert_eq!(info["members"][1]["state"], "in-sync");
    let check = json(&[&["check"][..], &pool, &["--json"]].concat(), 2);
    assert_eq!(check["damage"][0]["kind"], "BadRecord");
    let repaired = json(&[&["check"][..], &pool, &["--repair", "--json"]].concat(), 0);
    assert_eq!(repaired["repaired"], 1, "{repaired}");
    assert_eq!(repaired["clean"], true);
    json(&[&["check"][..], &pool, &["--json"]].concat(), 0);
    // The writable opens kept the pool's size.
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 16 << 20);
}
