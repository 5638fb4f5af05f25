//! Fuzz body `crash_ops`: a sequence of writes (and compactions) decoded from the input on a
//! 256 KiB `SimMedium`, the simulated process dying at the input's fence, one crash image drawn
//! in the input's mode from its seed, recovered and compared with the model by
//! `crash::check_image` (acknowledged writes exact, the in-flight operation whole or absent,
//! recovery idempotent). A crash that fires only at the close checks the clean-shutdown update.
//!
//! Input: `[mode: u8][fence: u16][seed: u64]` then operations, one tag byte each (see
//! [`decode_op`]); at most [`OPS_MAX`] operations.

use std::sync::Arc;

use mcstore_engine::{Db, Error};
use mcstore_pmem::{CrashMode, SimMedium};

use super::input::Input;
use crate::crash::{InFlight, Workload, check_image};
use crate::model::{Model, Op, apply_db};
use crate::pools::{as_medium, small_options};

/// Pool size of a `crash_ops` scenario.
pub const CRASH_POOL_BYTES: u64 = 256 << 10;
/// Operations per input, at most.
pub const OPS_MAX: usize = 24;
/// The fence index is taken modulo this (plus one): fences counted from after `create`.
const FENCE_SPAN: u16 = 160;

/// What one decoded operation is.
#[derive(Clone, Debug)]
enum Action {
    Write(Op),
    Compact,
}

/// One operation: tag `% 8` — 0–2 put, 3 remove, 4 insert, 5 compare-and-swap, 6 a batch of
/// 1–4 entries, 7 a compaction.
fn decode_op(input: &mut Input<'_>) -> Action {
    match input.byte() % 8 {
        0..=2 => Action::Write(Op::Put { key: input.key(), value: input.value() }),
        3 => Action::Write(Op::Remove { key: input.key() }),
        4 => Action::Write(Op::Insert { key: input.key(), value: input.value() }),
        5 => {
            let key = input.key();
            let flags = input.byte();
            let expected = (flags & 1 != 0).then(|| input.value());
            let new = (flags & 2 != 0).then(|| input.value());
            Action::Write(Op::Cas { key, expected, new })
        }
        6 => {
            let n = input.byte() % 4 + 1;
            let entries = (0..n)
                .map(|_| {
                    let key = input.key();
                    let value = (input.byte() & 1 == 0).then(|| input.value());
                    (key, value)
                })
                .collect();
            Action::Write(Op::Batch(entries))
        }
        _ => Action::Compact,
    }
}

/// The `crash_ops` body. Panics only on a bug: an acknowledged write lost, an in-flight one
/// torn, a write acknowledged although the process died in it, damage reported for a pure
/// crash, an error on a healthy store.
pub fn crash_ops(data: &[u8]) {
    run(data);
}

/// Where a `crash_ops` scenario died: inside an operation, in the close, or not at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Died {
    InOperation,
    InClose,
    Never,
}

fn run(data: &[u8]) -> Died {
    let mut input = Input::new(&data[..data.len().min(super::INPUT_BYTES_MAX)]);
    let mode = if input.byte() & 1 == 0 { CrashMode::PerLinePrefix } else { CrashMode::AnySubset };
    let fence = u64::from(input.u16() % FENCE_SPAN) + 1;
    let seed = input.u64();
    let sim = Arc::new(SimMedium::new(CRASH_POOL_BYTES));
    let options = small_options();
    let db = Db::create_on(as_medium(&sim), options.clone()).expect("a fresh pool is created");
    sim.crash_at_fence(Some(sim.fences_seen() + fence));
    let mut model = Model::new();
    let mut in_flight: Option<(Model, InFlight)> = None;
    for _ in 0..OPS_MAX {
        if input.is_empty() {
            break;
        }
        let action = decode_op(&mut input);
        let before = model.clone();
        let (result, what) = match &action {
            Action::Write(op) => {
                let want = model.apply(op);
                let got = apply_db(&db, op);
                if let Ok(got) = &got {
                    assert_eq!(got, &want, "{op:?} returned what the model does not");
                }
                (got.map(drop), InFlight::Op(op.clone()))
            }
            Action::Compact => (db.compact().map(drop), InFlight::Compact),
        };
        if sim.is_crashed() {
            assert!(result.is_err(), "{action:?} was acknowledged although the process died in it");
            in_flight = Some((before, what));
            break;
        }
        match result {
            Ok(()) => {}
            // Nothing is written when the pool is full.
            Err(Error::OutOfSpace { .. }) => model = before,
            Err(error) => panic!("{action:?} failed on a healthy store: {error}"),
        }
    }
    let crashed = in_flight.is_some();
    let (expected, in_flight) = match in_flight {
        Some((before, what)) => (vec![before, model], what),
        None => {
            // Every operation was acknowledged: the crash may still fire in the clean close.
            drop(db);
            (vec![model], InFlight::Close)
        }
    };
    sim.freeze();
    let image = sim.crash_image(mode, seed);
    let workload = Workload {
        name: "crash_ops",
        pool_bytes: CRASH_POOL_BYTES,
        max_pool_bytes: None,
        options,
        setup: Vec::new(),
        in_flight,
        sites: Vec::new(),
    };
    let died = match (crashed, sim.crashed_at()) {
        (true, _) => Died::InOperation,
        (false, Some(_)) => Died::InClose,
        (false, None) => Died::Never,
    };
    let expected: Vec<&Model> = expected.iter().collect();
    if let Err(failure) = check_image(&workload, image, &expected, crashed) {
        panic!("crash_ops ({mode:?}, fence {fence}, seed {seed:#x}): {failure}");
    }
    died
}

/// Seed inputs: each kind of operation, crashes early, late and at the close, both modes.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds = Vec::new();
    let ops: &[&[u8]] = &[
        &[0, 1, 0, 5, 1],                   // put "a" = 5 bytes
        &[3, 1, 0],                         // remove "a"
        &[4, 2, 1, 2, 200, 0, 7],           // insert "bF" = 8 bytes
        &[5, 1, 0, 3, 2, 3, 1, 4],          // cas "a": Some(..) → Some(..)
        &[6, 3, 1, 0, 0, 5, 9, 1, 1, 1, 0], // a batch of 4 entries
        &[7],                               // compact
        &[1, 2, 1, 1, 230, 0x80, 0x0B, 3],  // a put of ~2.9 KiB
    ];
    for fence in [1u16, 2, 3, 5, 8, 13, 40, 159] {
        for (mode, shift) in [(0u8, 0usize), (1, 3)] {
            let mut input = vec![mode];
            input.extend_from_slice(&fence.to_le_bytes());
            input.extend_from_slice(&(u64::from(fence) * 0x9E37 + u64::from(mode)).to_le_bytes());
            for i in 0..10 {
                input.extend_from_slice(ops[(i + shift + usize::from(fence)) % ops.len()]);
            }
            seeds.push((format!("fence{fence}-mode{mode}"), input));
        }
    }
    seeds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seeds_die_inside_operations_and_in_the_close() {
        let died: Vec<Died> = seeds().iter().map(|(_, input)| run(input)).collect();
        assert!(died.iter().filter(|d| **d == Died::InOperation).count() >= 8, "{died:?}");
        assert!(died.contains(&Died::InClose) || died.contains(&Died::Never), "{died:?}");
    }
}
