//! The proptest state machine of issue [5]: operations, crashes, poison, replica failures and
//! scrubs against the model, with invariants checked after every step.
