//! Fuzz body `poison_ops`: a replica set of one or two `SimMedium` members (256 KiB each) and
//! a policy, both from the input, driven through the [`Machine`] by steps decoded from the input
//! — writes, transactions, poison on any member at any range, cleared poison, crashes at a
//! fence, reopens, compactions, a failing replica, scrubs. The machine checks after every step
//! that no read returns data the model does not allow and that a typed error appears only where
//! no good copy can exist.
//!
//! Input: `[config: u8]` (bit 0: two members; bit 1: User retry off; bit 2: Engine fallback
//! `Fail` instead of `Latch`; bit 3: Engine retry off) then steps, one tag byte each (see
//! [`decode_step`]); at most [`STEPS_MAX`] steps.

use mcstore_engine::{EngineFallback, Policy, UserFallback};

use super::input::Input;
use crate::machine::{Machine, MachineConfig, MachineSummary, Step};

/// Steps per input, at most.
pub const STEPS_MAX: usize = 32;
/// Size of each member.
pub const POISON_POOL_BYTES: u64 = 256 << 10;

/// The machine configuration byte `config` selects.
pub fn config(config: u8) -> MachineConfig {
    let fallback = if config & 4 != 0 { EngineFallback::Fail } else { EngineFallback::Latch };
    let policy = Policy::default()
        .user(config & 2 == 0, UserFallback::Fail)
        .engine(config & 8 == 0, fallback);
    MachineConfig {
        members: if config & 1 != 0 { 2 } else { 1 },
        pool_bytes: POISON_POOL_BYTES,
        policy,
        keep_a_good_copy: false,
    }
}

/// One step: tag `% 16` — 0–2 put, 3 remove, 4 batch, 5 transaction, 6 sync, 7–9 inject poison
/// (`[member][offset: u32][len: u8]`), 10 clear poison, 11 compact, 12 scrub, 13 reopen,
/// 14 fail the replica, 15 crash inside a put (`[seed: u64][fence: u8]`).
pub fn decode_step(input: &mut Input<'_>) -> Step {
    match input.byte() % 16 {
        0..=2 => Step::Put { key: input.key(), value: input.value() },
        3 => Step::Remove { key: input.key() },
        4 => {
            let n = input.byte() % 4 + 1;
            Step::Batch(
                (0..n)
                    .map(|_| {
                        let key = input.key();
                        (key, (input.byte() & 1 == 0).then(|| input.value()))
                    })
                    .collect(),
            )
        }
        5 => Step::Transaction { from: input.key(), to: input.key() },
        6 => Step::Sync,
        7..=9 => Step::InjectPoison {
            member: input.byte(),
            offset: u64::from(input.u32()),
            len: u64::from(input.byte()),
        },
        10 => Step::ClearPoison { member: input.byte() },
        11 => Step::Compact,
        12 => Step::Scrub,
        13 => Step::Reopen,
        14 => Step::FailReplica,
        _ => {
            let seed = input.u64();
            let fence = input.byte() % 8 + 1;
            Step::Crash { seed, fence, key: input.key(), value: input.value() }
        }
    }
}

/// The `poison_ops` body: panics on the first step after which the machine's oracle fails.
pub fn poison_ops(data: &[u8]) {
    run(data);
}

fn run(data: &[u8]) -> MachineSummary {
    let mut input = Input::new(&data[..data.len().min(super::INPUT_BYTES_MAX)]);
    let config = config(input.byte());
    let mut steps = Vec::new();
    while !input.is_empty() && steps.len() < STEPS_MAX {
        steps.push(decode_step(&mut input));
    }
    Machine::run(config, &steps).unwrap_or_else(|failure| panic!("poison_ops: {failure}"))
}

/// Seed inputs: each configuration with writes, poison over the log and the superblocks, a
/// scrub, a reopen and a crash.
pub fn seeds() -> Vec<(String, Vec<u8>)> {
    let steps: &[&[u8]] = &[
        &[0, 1, 0, 40, 7],                             // put "a" (40 bytes)
        &[1, 2, 1, 0, 230, 0, 4, 9],                   // put "ba" (~1 KiB)
        &[7, 0, 0, 0, 1, 0, 64],                       // poison member 0 at 64 KiB
        &[8, 1, 0x40, 0, 1, 0, 200],                   // poison member 1 at 64 KiB + 64
        &[9, 0, 0, 0, 0, 0, 8],                        // poison member 0's first superblock
        &[4, 2, 1, 0, 0, 3, 5, 0, 1, 1],               // a batch
        &[5, 1, 0, 1, 1],                              // transaction a → b
        &[12],                                         // scrub
        &[13],                                         // reopen
        &[11],                                         // compact
        &[10, 0],                                      // clear poison on member 0
        &[14],                                         // fail the replica
        &[15, 1, 2, 3, 4, 5, 6, 7, 8, 2, 1, 2, 10, 1], // crash inside a put
        &[6],                                          // sync
    ];
    let mut seeds = Vec::new();
    for config in 0u8..16 {
        let mut input = vec![config];
        for i in 0..12 {
            input.extend_from_slice(steps[(i * 5 + usize::from(config)) % steps.len()]);
        }
        seeds.push((format!("config{config}"), input));
    }
    seeds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seeds_poison_crash_and_meet_allowed_errors() {
        let runs: Vec<MachineSummary> = seeds().iter().map(|(_, input)| run(input)).collect();
        assert!(runs.iter().all(|r| r.injections >= 1), "{runs:?}");
        assert!(runs.iter().any(|r| r.crashes >= 1));
        assert!(runs.iter().any(|r| r.allowed_errors >= 1));
        assert!(runs.iter().filter(|r| r.reads_checked >= 10).count() >= 12, "{runs:#?}");
    }
}
