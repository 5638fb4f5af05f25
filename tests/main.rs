//! The facade's integration suite: one binary, a module per area.
