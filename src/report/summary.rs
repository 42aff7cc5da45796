//! The human summary of a run.
