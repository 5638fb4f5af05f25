//! The proptest state machine of issue [5]: operations, crashes, poison, replica failures and
//! scrubs against the model, with invariants checked after every step.
//!
//! The machine is `mcstore_testkit::machine` (shared with the `poison_ops` fuzz target): a store
//! on a primary and one replica (`SimMedium`, 256 KiB each), default policy. Poison that would
//! leave a range with no good copy is skipped, so every read must return the model's value;
//! every acknowledged write must survive every crash and reopen. Failing cases are kept in
//! `tests/machine.proptest-regressions` and replayed first.

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{FileFailurePersistence, TestRunner};

use mcstore_testkit::machine::{Machine, MachineConfig, MachineSummary, Step};
use mcstore_testkit::ops::{key, value};

/// One transition, weighted so writes dominate and the rare events still appear in most runs.
fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (key(), value()).prop_map(|(key, value)| Step::Put { key, value }),
        2 => key().prop_map(|key| Step::Remove { key }),
        2 => prop::collection::vec((key(), prop::option::of(value())), 1..5).prop_map(Step::Batch),
        2 => (key(), key()).prop_map(|(from, to)| Step::Transaction { from, to }),
        1 => Just(Step::Sync),
        2 => (any::<u64>(), 1u8..8, key(), value())
            .prop_map(|(seed, fence, key, value)| Step::Crash { seed, fence, key, value }),
        1 => Just(Step::Reopen),
        2 => (0u8..2, 0u64..(256 << 10), 1u64..256)
            .prop_map(|(member, offset, len)| Step::InjectPoison { member, offset, len }),
        1 => (0u8..2).prop_map(|member| Step::ClearPoison { member }),
        1 => Just(Step::Compact),
        1 => Just(Step::FailReplica),
        1 => Just(Step::Scrub),
    ]
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(step(), 1..40)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "tests/machine.proptest-regressions",
        ))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_replica_set_state_machine_keeps_the_model(steps in steps()) {
        if let Err(failure) = Machine::run(MachineConfig::default(), &steps) {
            return Err(TestCaseError::fail(failure));
        }
    }
}

/// The machine is not vacuous: over a fixed set of generated runs, crashes fire inside puts,
/// poison is injected, replicas fail, and reads are checked.
#[test]
fn the_generated_runs_crash_poison_and_check_reads() {
    let mut runner = TestRunner::deterministic();
    let mut total = MachineSummary::default();
    for _ in 0..12 {
        let steps = steps().new_tree(&mut runner).expect("a generated run").current();
        let summary = Machine::run(MachineConfig::default(), &steps).expect("the machine holds");
        total.steps += summary.steps;
        total.crashes += summary.crashes;
        total.crashes_in_flight += summary.crashes_in_flight;
        total.injections += summary.injections;
        total.reads_checked += summary.reads_checked;
        total.acknowledged += summary.acknowledged;
    }
    assert!(total.crashes_in_flight >= 1, "{total:?}");
    assert!(total.injections >= 3, "{total:?}");
    assert!(total.reads_checked >= 200, "{total:?}");
    assert!(total.acknowledged >= 50, "{total:?}");
}
