//! Fuzz target `crash_ops`: writes on a 256 KiB `SimMedium`, a crash at the input's fence, one
//! crash image (mode and seed from the input) recovered and compared with the model. The body
//! is `mcstore_testkit::fuzz::crash_ops`; the stable suite replays `fuzz/corpus/crash_ops`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mcstore_testkit::fuzz::crash_ops(data));
