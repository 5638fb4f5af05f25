//! The poison matrix of issue \[4\] as data: every cell (read site × position × policy × member ×
//! backend) is either tested or excluded with a written reason, and `docs/poison-matrix.md` is
//! rendered from this table (a test fails when the committed file is stale). The integration
//! suite's drivers (`tests/poison_matrix.rs`) iterate [`tested`] per read site; the read-probe
//! medium that checks the register on every read lives in [`probe`].
//!
//! INVARIANT: [`cells`] is the full cross product, in a fixed order; [`coverage`] decides each
//! cell by the first matching rule of [`RULES`], so an exclusion always carries its reason.

pub mod probe;

use std::fmt;

/// Where the store reads the medium (issue \[4\]'s list).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReadSite {
    /// `get` copying a record's value.
    GetValue,
    /// `get` comparing the stored key with the asked one.
    GetKey,
    /// An iterator (`iter`/`range`) reading each item's record.
    RangeScan,
    /// Recovery at open reading a segment header.
    RecoveryHeader,
    /// Recovery at open reading a record inside the committed log.
    RecoveryPayload,
    /// Recovery at open reading a segment's committed-tail word.
    TailWord,
    /// Compaction copying a live record out of a victim segment.
    CompactionCopy,
    /// Open reading the newer superblock slot.
    Superblock,
    /// `Db::scrub` reading every live byte of every member.
    Scrub,
    /// A retry reading a replica's copy of a record the primary could not supply.
    ReplicaRead,
    /// Writes past the committed tail over a poisoned line: a put's record store, and `sync`
    /// flushing a stored (not yet flushed) record whose line was poisoned since.
    FlushOverPoison,
}

/// Which cache line of the unit (record, header, page) is poisoned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Position {
    /// The unit's first line (on `MappedMedium`: the first whole page inside it, else its page).
    First,
    /// The line holding the unit's midpoint.
    Middle,
    /// The unit's last line.
    Last,
}

/// The barrier outcome under test: what the policy does when no good copy exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PolicyCase {
    /// A primary and one replica; retry from the replica, then `Fail` (both domains).
    RetryThenFail,
    /// One member, no replica; `Fail` (both domains).
    FailNoReplica,
    /// A primary and one replica; retry, then `Latch` (Engine domain).
    Latch,
    /// A primary and one replica; retry, then `Halt` (both domains).
    Halt,
}

/// Which members hold the poison.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Member {
    /// The primary only.
    Primary,
    /// A replica only.
    Replica,
    /// Every member, at the same unit: no good copy anywhere.
    All,
}

/// The medium the cell runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Backend {
    /// `SimMedium`: poison per cache line.
    Sim,
    /// `MappedMedium` in /dev/shm: emulated poison per 4 KiB page, a real `SIGBUS`.
    Mapped,
}

/// One cell of the matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cell {
    /// The read site.
    pub site: ReadSite,
    /// The poisoned line of the unit.
    pub position: Position,
    /// The policy case.
    pub policy: PolicyCase,
    /// The poisoned members.
    pub member: Member,
    /// The medium.
    pub backend: Backend,
}

/// Whether a cell is tested, and if not, why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coverage {
    /// A driver in the integration suite runs it.
    Tested,
    /// Not run, for the reason given.
    Excluded(&'static str),
}

/// Every read site, in table order.
pub const SITES: [ReadSite; 11] = [
    ReadSite::GetValue,
    ReadSite::GetKey,
    ReadSite::RangeScan,
    ReadSite::RecoveryHeader,
    ReadSite::RecoveryPayload,
    ReadSite::TailWord,
    ReadSite::CompactionCopy,
    ReadSite::Superblock,
    ReadSite::Scrub,
    ReadSite::ReplicaRead,
    ReadSite::FlushOverPoison,
];
/// Every position, in table order.
pub const POSITIONS: [Position; 3] = [Position::First, Position::Middle, Position::Last];
/// Every policy case, in table order.
pub const POLICIES: [PolicyCase; 4] =
    [PolicyCase::RetryThenFail, PolicyCase::FailNoReplica, PolicyCase::Latch, PolicyCase::Halt];
/// Every member case, in table order.
pub const MEMBERS: [Member; 3] = [Member::Primary, Member::Replica, Member::All];
/// Every backend, in table order.
pub const BACKENDS: [Backend; 2] = [Backend::Sim, Backend::Mapped];

impl ReadSite {
    /// Short name used in cell ids and the document.
    pub fn name(self) -> &'static str {
        match self {
            ReadSite::GetValue => "get-value",
            ReadSite::GetKey => "get-key",
            ReadSite::RangeScan => "range-scan",
            ReadSite::RecoveryHeader => "recovery-header",
            ReadSite::RecoveryPayload => "recovery-payload",
            ReadSite::TailWord => "tail-word",
            ReadSite::CompactionCopy => "compaction-copy",
            ReadSite::Superblock => "superblock",
            ReadSite::Scrub => "scrub",
            ReadSite::ReplicaRead => "replica-read",
            ReadSite::FlushOverPoison => "flush-over-poison",
        }
    }

    /// Whether the site reads for a caller (User domain) rather than for the store.
    pub fn is_user(self) -> bool {
        matches!(
            self,
            ReadSite::GetValue | ReadSite::GetKey | ReadSite::RangeScan | ReadSite::ReplicaRead
        )
    }

    /// Whether the site is read by recovery at open.
    pub fn is_recovery(self) -> bool {
        matches!(
            self,
            ReadSite::RecoveryHeader
                | ReadSite::RecoveryPayload
                | ReadSite::TailWord
                | ReadSite::Superblock
        )
    }
}

impl Position {
    /// Short name used in cell ids and the document.
    pub fn name(self) -> &'static str {
        match self {
            Position::First => "first",
            Position::Middle => "middle",
            Position::Last => "last",
        }
    }
}

impl PolicyCase {
    /// Short name used in cell ids and the document.
    pub fn name(self) -> &'static str {
        match self {
            PolicyCase::RetryThenFail => "retry-then-fail",
            PolicyCase::FailNoReplica => "fail-no-replica",
            PolicyCase::Latch => "latch",
            PolicyCase::Halt => "halt",
        }
    }

    /// Members of the pool the cell runs on (the primary included).
    pub fn members(self) -> usize {
        match self {
            PolicyCase::FailNoReplica => 1,
            _ => 2,
        }
    }
}

impl Member {
    /// Short name used in cell ids and the document.
    pub fn name(self) -> &'static str {
        match self {
            Member::Primary => "primary",
            Member::Replica => "replica",
            Member::All => "all",
        }
    }
}

impl Backend {
    /// Short name used in cell ids and the document.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sim => "sim",
            Backend::Mapped => "mapped",
        }
    }
}

impl Cell {
    /// Whether some member still holds a good copy of the poisoned unit.
    pub fn has_good_copy(&self) -> bool {
        self.member != Member::All && self.policy.members() > 1
    }

    /// The stable id recorded in the figure and printed in the document.
    pub fn id(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}/{}/{}",
            self.site.name(),
            self.position.name(),
            self.policy.name(),
            self.member.name(),
            self.backend.name()
        )
    }
}

/// One exclusion rule: a predicate over cells and the reason written for the cells it matches.
pub struct Rule {
    /// Whether the rule applies to the cell.
    pub applies: fn(&Cell) -> bool,
    /// Why the cell is not run.
    pub reason: &'static str,
}

/// The exclusion rules, first match wins. Everything no rule matches is tested.
pub const RULES: &[Rule] = &[
    Rule {
        applies: |c| c.policy == PolicyCase::FailNoReplica && c.member != Member::Primary,
        reason: "one-member pool: there is no replica, and 'all members' is the primary cell",
    },
    Rule {
        applies: |c| c.policy == PolicyCase::Latch && c.site.is_user(),
        reason: "Latch is an Engine-domain fallback; the policy types forbid it for User reads",
    },
    Rule {
        applies: |c| c.site == ReadSite::ReplicaRead && c.member == Member::Primary,
        reason: "this site is the replica's copy read by a retry; poison on the primary alone \
                 is the get-value cell",
    },
    Rule {
        applies: |c| c.site == ReadSite::FlushOverPoison && c.policy == PolicyCase::Halt,
        reason: "a failed store or flush latches whatever the policy (docs/policy.md: persist \
                 failure → Latch, not configurable); the latch cell covers it",
    },
    Rule {
        applies: |c| c.backend == Backend::Mapped && c.position != Position::First,
        reason: "poison is per 4 KiB page on MappedMedium: the first, middle and last line of a \
                 unit are one page (run as 'first')",
    },
    Rule {
        applies: |c| {
            matches!(c.site, ReadSite::RecoveryHeader | ReadSite::TailWord)
                && c.position != Position::First
        },
        reason: "the unit is one cache line (64-byte segment header, 8-byte tail word)",
    },
    Rule {
        applies: |c| c.site == ReadSite::TailWord && c.backend == Backend::Mapped,
        reason: "on MappedMedium the tail word shares its page with the segment header: the \
                 recovery-header cell poisons the same page",
    },
];

/// The coverage of `cell`: the first matching rule's reason, or tested.
pub fn coverage(cell: &Cell) -> Coverage {
    RULES
        .iter()
        .find(|rule| (rule.applies)(cell))
        .map_or(Coverage::Tested, |rule| Coverage::Excluded(rule.reason))
}

/// Every cell, in table order (site, position, policy, member, backend).
pub fn cells() -> Vec<Cell> {
    let mut all = Vec::new();
    for site in SITES {
        for position in POSITIONS {
            for policy in POLICIES {
                for member in MEMBERS {
                    for backend in BACKENDS {
                        all.push(Cell { site, position, policy, member, backend });
                    }
                }
            }
        }
    }
    all
}

/// The tested cells of `site`, in table order.
pub fn tested(site: ReadSite) -> Vec<Cell> {
    cells().into_iter().filter(|c| c.site == site && coverage(c) == Coverage::Tested).collect()
}

/// Y of the figure "poison cells covered X of Y": the number of tested (non-excluded) cells.
pub fn universe() -> u64 {
    cells().iter().filter(|c| coverage(c) == Coverage::Tested).count() as u64
}

/// `docs/poison-matrix.md`, rendered from the table.
pub fn render_markdown() -> String {
    let all = cells();
    let mut out = String::new();
    out.push_str(
        "# The poison matrix\n\n\
         Generated from `testkit/src/matrix.rs` by `tests/poison_matrix.rs` \
         (`MCSTORE_BLESS=1 bash scripts/test` rewrites it; the suite fails when it is stale). \
         Do not edit by hand.\n\n\
         A cell is a read site × the poisoned line of its unit × a policy case × the poisoned \
         members × the medium. Each tested cell checks: the deferred error register recorded \
         every poisoned read and nothing else (a probe medium wraps every member); no operation \
         returns or commits wrong bytes; after a repair the member reads clean and (MappedMedium) \
         the `.badblocks` sidecar no longer holds the range; the same cell without poison has \
         no failure at all. Passing cells are counted in the figure `poison cells covered`.\n\n\
         Policy cases: `retry-then-fail` (primary + replica, retry then Fail), \
         `fail-no-replica` (one member, Fail), `latch` (primary + replica, retry then Latch), \
         `halt` (primary + replica, retry then Halt; a User read that must halt runs in a \
         re-executed child that must abort).\n\n",
    );
    let tested = all.iter().filter(|c| coverage(c) == Coverage::Tested).count();
    out.push_str(&format!(
        "{} cells: {} tested, {} excluded.\n\n",
        all.len(),
        tested,
        all.len() - tested
    ));
    out.push_str("## Exclusion rules\n\n| rule | reason | cells |\n|---|---|---|\n");
    for (i, rule) in RULES.iter().enumerate() {
        let matched = all
            .iter()
            .filter(|c| coverage(c) == Coverage::Excluded(rule.reason) && (rule.applies)(c))
            .count();
        out.push_str(&format!("| {} | {} | {matched} |\n", i + 1, rule.reason));
    }
    out.push_str("\n## Cells\n\n| site | position | policy | member | backend | coverage |\n");
    out.push_str("|---|---|---|---|---|---|\n");
    for cell in &all {
        let cover = match coverage(cell) {
            Coverage::Tested => "tested".to_string(),
            Coverage::Excluded(reason) => {
                let rule = RULES.iter().position(|r| r.reason == reason).map_or(0, |i| i + 1);
                format!("excluded (rule {rule})")
            }
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {cover} |\n",
            cell.site.name(),
            cell.position.name(),
            cell.policy.name(),
            cell.member.name(),
            cell.backend.name()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_the_full_cross_product_with_unique_ids() {
        let all = cells();
        assert_eq!(all.len(), 11 * 3 * 4 * 3 * 2);
        let ids: std::collections::HashSet<String> = all.iter().map(Cell::id).collect();
        assert_eq!(ids.len(), all.len());
    }

    #[test]
    fn every_site_has_tested_cells_and_every_rule_excludes_something() {
        for site in SITES {
            assert!(!tested(site).is_empty(), "{site:?} has no tested cell");
        }
        for rule in RULES {
            assert!(
                cells().iter().any(|c| coverage(c) == Coverage::Excluded(rule.reason)),
                "rule never decides a cell: {}",
                rule.reason
            );
        }
        let y = universe();
        assert!(y > 0 && y < cells().len() as u64);
    }

    #[test]
    fn mapped_cells_run_one_position_and_sim_cells_run_three_where_the_unit_allows() {
        let get = |position, backend| Cell {
            site: ReadSite::GetValue,
            position,
            policy: PolicyCase::RetryThenFail,
            member: Member::Primary,
            backend,
        };
        assert_eq!(coverage(&get(Position::Last, Backend::Sim)), Coverage::Tested);
        assert_eq!(coverage(&get(Position::First, Backend::Mapped)), Coverage::Tested);
        assert!(matches!(coverage(&get(Position::Last, Backend::Mapped)), Coverage::Excluded(_)));
    }
}
