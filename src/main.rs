//! `spindle`: one binary, a subcommand per role plus the local-stack orchestrator.

use std::process::ExitCode;

fn main() -> ExitCode {
    spindle::cli::main()
}
