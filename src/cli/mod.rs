//! Command-line definitions and the glue from arguments to library calls.

/// Runs the command line and returns the process exit code.
pub fn main() -> i32 {
    0
}
