//! Fuzz target `mapped_poison`: a real `MappedMedium` in /dev/shm with emulated poison raising
//! real `SIGBUS`: the register is set, no wrong data, typed errors. Needs
//! `ASAN_OPTIONS=handle_sigbus=1` under ASan (mcstore's handler chains to the sanitizer's). The
//! body is `mcstore_testkit::fuzz::mapped_poison`; the stable suite replays its corpus.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mcstore_testkit::fuzz::mapped_poison(data));
