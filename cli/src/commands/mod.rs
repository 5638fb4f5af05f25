//! One file per subcommand: its clap arguments and its `run`.

pub mod badblocks;
pub mod bench;
pub mod check;
pub mod compact;
pub mod create;
pub mod dump;
pub mod info;
pub mod load;
pub mod scrub;
pub mod serve;
