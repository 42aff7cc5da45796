//! rules (filled in by its own change).
