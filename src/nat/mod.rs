//! nat (filled in by its own change).
