//! report (filled in by its own change).
