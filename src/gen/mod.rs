//! Synthetic traffic (filled in by its own change).
