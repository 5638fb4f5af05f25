//! Fuzz target `scan_ahead`: the `mapped_poison` scenario with background work on, so long
//! forward scans read ahead on a second thread, plus fills of many keys and scans that stop
//! early or edit keys ahead of their cursor; real `SIGBUS` from emulated poison as there. Needs
//! `ASAN_OPTIONS=handle_sigbus=1` under ASan. The body is `mcstore_testkit::fuzz::scan_ahead`;
//! the stable suite replays its corpus.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| mcstore_testkit::fuzz::scan_ahead(data));
