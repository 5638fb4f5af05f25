//! Fuzz target `recover_image`: mutated and arbitrary pool images opened on a `SimMedium`
//! (≤ 256 KiB, no background work). The body is `mcstore_testkit::fuzz::recover_image`; the
//! stable suite replays `fuzz/corpus/recover_image` through the same function.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mcstore_testkit::fuzz::recover_image(data));
