//! Helpers the suite's modules share: temporary directories on tmpfs, re-executing this test
//! binary as a child for tests that must watch a process die, values whose bytes are found again
//! in a pool image, and two-member pools on both media kinds with a way to poison a member.
//!
//! INVARIANT: a child is always this binary running exactly one named test with a role
//! variable set; the parent never forks inside the multi-threaded harness.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;

use mcstore::pmem::{MapOptions, MappedMedium, Medium, MemberId, ModeRequest, SimMedium};

/// Environment variable that tells a re-executed test it is the child.
pub const CHILD_ROLE: &str = "MCSTORE_IT_CHILD_ROLE";

/// Environment variable naming the directory a child's [`shm_dir`]s are made in: its parent
/// removes it after the child exits, so a child that aborts leaks no pool files.
const CHILD_SHM_DIR: &str = "MCSTORE_IT_CHILD_SHM_DIR";

/// A temporary directory on tmpfs for mapped pools (in a child, inside its parent's directory).
pub fn shm_dir() -> tempfile::TempDir {
    let parent = std::env::var_os(CHILD_SHM_DIR).unwrap_or_else(|| "/dev/shm".into());
    tempfile::Builder::new()
        .prefix("mcstore-it-")
        .tempdir_in(parent)
        .expect("a temporary directory in /dev/shm")
}

/// The child role this process was started with, if it is a child.
pub fn child_role() -> Option<String> {
    std::env::var(CHILD_ROLE).ok()
}

/// Run the test `name` (its full path in this binary) in a child with `role` and `envs`.
pub fn run_child(name: &str, role: &str, envs: &[(&str, &std::path::Path)]) -> Output {
    let exe = std::env::current_exe().expect("the test binary's path");
    let shm = shm_dir();
    let mut command = Command::new(exe);
    command
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD_ROLE, role)
        .env(CHILD_SHM_DIR, shm.path());
    for (key, value) in envs {
        command.env(key, value);
    }
    command.output().expect("the child runs")
}

/// The offset of the only occurrence of `needle` in `haystack`.
pub fn find_unique(haystack: &[u8], needle: &[u8]) -> u64 {
    let mut hits = haystack.windows(needle.len()).enumerate().filter(|(_, w)| *w == needle);
    let (at, _) = hits.next().expect("the pattern is in the pool");
    assert!(hits.next().is_none(), "the pattern occurs twice");
    at as u64
}

/// A value no other key's bytes contain: `len` bytes counting up from `seed`.
pub fn distinct_value(seed: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| seed.wrapping_add((i % 199) as u8).wrapping_mul(3) ^ 0x5A).collect()
}

/// A primary and one replica of `len` bytes of one media kind.
pub enum MemberPair {
    /// `SimMedium`s (members 0 and 1); poison covers 64 bytes.
    Sim([Arc<SimMedium>; 2]),
    /// `MappedMedium`s in a /dev/shm directory, mapped `ForcedPmem`; poison is real emulated
    /// poison (a page; a load or store there raises SIGBUS).
    Mapped([Arc<MappedMedium>; 2]),
}

impl MemberPair {
    /// Both kinds: a `SimMedium` pair, and a mapped pair in `dir` (files `NAME0`, `NAME1`).
    pub fn both_kinds(len: u64, dir: &Path, name: &str) -> [MemberPair; 2] {
        let sim = |i: u8| Arc::new(SimMedium::with_member(len, MemberId(i)));
        let mapped = |i: u8| {
            let map = MapOptions::new().mode(ModeRequest::ForcedPmem).member(MemberId(i));
            let path = dir.join(format!("{name}{i}"));
            Arc::new(MappedMedium::create(&path, len, &map).expect("map a member"))
        };
        [MemberPair::Sim([sim(0), sim(1)]), MemberPair::Mapped([mapped(0), mapped(1)])]
    }

    /// The two members, primary first.
    pub fn members(&self) -> Vec<Arc<dyn Medium>> {
        match self {
            MemberPair::Sim(pair) => pair.iter().map(|m| m.clone() as Arc<dyn Medium>).collect(),
            MemberPair::Mapped(pair) => pair.iter().map(|m| m.clone() as Arc<dyn Medium>).collect(),
        }
    }

    /// Poison member `member` (0: primary) at `at`: 64 bytes on a sim, the page on a mapping.
    pub fn poison(&self, member: usize, at: u64) {
        match self {
            MemberPair::Sim(pair) => pair[member].inject_poison(at, 64),
            MemberPair::Mapped(pair) => pair[member].inject_poison(at, 4096),
        }
        .expect("inject poison");
    }

    /// Whether member `member` still has poisoned ranges.
    pub fn is_poisoned(&self, member: usize) -> bool {
        match self {
            MemberPair::Sim(pair) => !pair[member].poisoned_ranges().is_empty(),
            MemberPair::Mapped(pair) => !pair[member].poisoned_ranges().is_empty(),
        }
    }
}
