//! bandwidth (filled in by its own change).
