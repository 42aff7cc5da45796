//! The `dnatsim` command line: parse, run one command, map errors to exit codes.

// As in the library: each `unsafe` is allowed on its own function, with its reason.
#![deny(unsafe_code)]

mod cli;

fn main() {
    std::process::exit(cli::main());
}
