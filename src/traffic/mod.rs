//! Synthetic traffic for samples and benchmarks (filled in by its own change).
