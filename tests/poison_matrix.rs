//! The poison matrix of issue [4] (docs/poison-matrix.md, rendered from
//! `mcstore_testkit::matrix`): one generic driver per read site iterates that site's tested
//! cells (read site × position × policy × member × backend), each run once without poison (no
//! false failure) and once with it. A passing cell is recorded in the figure `poison cells
//! covered X of Y`. `Halt` cells that must abort run in a re-executed child of this binary.

mod engine_reads;
mod flush;
mod open;
mod rig;
mod user;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;

use mcstore::pmem::figures;
use mcstore_testkit::matrix::{self, Cell, ReadSite};

use crate::support::{child_role, run_child};

const FIGURES_FILE: &str = "poison_matrix";
const FIGURE: &str = "poison cells covered";
const CELL_VAR: &str = "MCSTORE_MATRIX_CELL";
const HALT_ROLE: &str = "matrix-halt";

/// The cell a re-executed child must run, if this process is one.
fn child_cell() -> Option<Cell> {
    if child_role().as_deref() != Some(HALT_ROLE) {
        return None;
    }
    let id = std::env::var(CELL_VAR).expect("the child's cell");
    Some(matrix::cells().into_iter().find(|c| c.id() == id).expect("a known cell id"))
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "a panic without a message".to_string())
}

/// Which cells must end in `abort()`, and the test (full name) a child re-runs for them.
type AbortCheck = (fn(&Cell) -> bool, &'static str);

/// Run every tested cell of `site` with `driver` (control run, then the poisoned run); cells
/// that must abort run `abort_check` instead. Records each passing cell; fails listing every
/// failing cell.
fn run_site(site: ReadSite, driver: fn(Cell, bool), abort_check: Option<AbortCheck>) {
    let cells = matrix::tested(site);
    let mut failures = Vec::new();
    for cell in cells.iter().copied() {
        eprintln!("poison matrix: cell {cell}");
        let outcome = std::panic::catch_unwind(|| match abort_check {
            Some((must_abort, test)) if must_abort(&cell) => {
                driver(cell, false);
                expect_abort(cell, test);
            }
            _ => {
                driver(cell, false);
                driver(cell, true);
            }
        });
        match outcome {
            Ok(()) => figures::members(FIGURES_FILE, FIGURE, [cell.id()], matrix::universe()),
            Err(payload) => failures.push(format!("{cell}: {}", panic_text(payload.as_ref()))),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} {} cells failed:\n{}",
        failures.len(),
        cells.len(),
        site.name(),
        failures.join("\n")
    );
}

/// Re-execute this binary on `test` for `cell`: the child must abort after the Halt hook ran.
fn expect_abort(cell: Cell, test: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let marker = dir.path().join("halted");
    let id = cell.id();
    let output =
        run_child(test, HALT_ROLE, &[(rig::HALT_MARKER, &marker), (CELL_VAR, Path::new(&id))]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.signal(),
        Some(libc::SIGABRT),
        "{cell}: {:?}: {stderr}",
        output.status
    );
    assert!(!stderr.contains("not reached"), "{cell}: {stderr}");
    let report = std::fs::read_to_string(&marker).expect("the Halt hook wrote its report");
    assert!(report.contains("User"), "{cell}: {report}");
}

/// The committed document is the table rendered; `MCSTORE_BLESS=1` rewrites it.
#[test]
fn the_committed_matrix_document_is_current() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/poison-matrix.md");
    let rendered = matrix::render_markdown();
    if std::env::var_os("MCSTORE_BLESS").is_some() {
        std::fs::write(&path, &rendered).expect("write docs/poison-matrix.md");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == rendered,
        "docs/poison-matrix.md is stale: run the suite with MCSTORE_BLESS=1 and commit it"
    );
}

macro_rules! user_site {
    ($name:ident, $site:expr) => {
        #[test]
        fn $name() {
            if let Some(cell) = child_cell() {
                user::halt_child(cell);
                return;
            }
            let test = concat!("poison_matrix::", stringify!($name));
            run_site($site, user::run, Some((user::must_abort, test)));
        }
    };
}

user_site!(get_value_cells, ReadSite::GetValue);
user_site!(get_key_cells, ReadSite::GetKey);
user_site!(range_scan_cells, ReadSite::RangeScan);
user_site!(replica_read_cells, ReadSite::ReplicaRead);

#[test]
fn recovery_header_cells() {
    run_site(ReadSite::RecoveryHeader, open::run, None);
}

#[test]
fn recovery_payload_cells() {
    run_site(ReadSite::RecoveryPayload, open::run, None);
}

#[test]
fn tail_word_cells() {
    run_site(ReadSite::TailWord, open::run, None);
}

#[test]
fn superblock_cells() {
    run_site(ReadSite::Superblock, open::run, None);
}

#[test]
fn compaction_copy_cells() {
    run_site(ReadSite::CompactionCopy, engine_reads::compaction, None);
}

#[test]
fn scrub_cells() {
    run_site(ReadSite::Scrub, engine_reads::scrub, None);
}

#[test]
fn flush_over_poison_cells() {
    run_site(ReadSite::FlushOverPoison, flush::run, None);
}
