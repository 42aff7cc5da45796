//! The `dnatsim` command line: parse, run one command, map errors to exit codes.

mod cli;

fn main() {
    std::process::exit(cli::main());
}
