//! mcstore-engine: the running store — write path, commit barrier, policy, index, API.
#![forbid(unsafe_code)]
