//! mcstore-recovery: reading the log back — the on-media format, the scan, verification.
#![forbid(unsafe_code)]
