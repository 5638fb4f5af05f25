//! Fuzz target `poison_ops`: a one- or two-member `SimMedium` replica set under a policy from the
//! input, with writes, poison on any member, crashes, reopens, compactions and scrubs: never
//! wrong data, typed errors only where no good copy exists. The body is
//! `mcstore_testkit::fuzz::poison_ops`; the stable suite replays `fuzz/corpus/poison_ops`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mcstore_testkit::fuzz::poison_ops(data));
