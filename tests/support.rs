//! Helpers the suite's modules share: temporary directories on tmpfs, and re-executing this
//! test binary as a child for tests that must watch a process die.
//!
//! INVARIANT: a child is always this binary running exactly one named test with a role
//! variable set; the parent never forks inside the multi-threaded harness.

use std::process::{Command, Output};

/// Environment variable that tells a re-executed test it is the child.
pub const CHILD_ROLE: &str = "MCSTORE_IT_CHILD_ROLE";

/// A temporary directory on tmpfs for mapped pools.
pub fn shm_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("mcstore-it-")
        .tempdir_in("/dev/shm")
        .expect("a temporary directory in /dev/shm")
}

/// The child role this process was started with, if it is a child.
pub fn child_role() -> Option<String> {
    std::env::var(CHILD_ROLE).ok()
}

/// Run the test `name` (its full path in this binary) in a child with `role` and `envs`.
pub fn run_child(name: &str, role: &str, envs: &[(&str, &std::path::Path)]) -> Output {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut command = Command::new(exe);
    command.args(["--exact", name, "--nocapture", "--test-threads=1"]).env(CHILD_ROLE, role);
    for (key, value) in envs {
        command.env(key, value);
    }
    command.output().expect("the child runs")
}
