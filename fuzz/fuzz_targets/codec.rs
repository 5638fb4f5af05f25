//! Fuzz target `codec`: record, segment-header, superblock and tail-word decoding on arbitrary
//! bytes, and encode/decode round trips. The body is `mcstore_testkit::fuzz::codec`; the stable
//! suite replays `fuzz/corpus/codec` through the same function.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mcstore_testkit::fuzz::codec(data));
