//! Failure points (issue [5]): fail the N-th medium call once and persistently until the
//! workload completes; only typed errors or success, and the model holds after reopen.
