//! `spindle`: one binary, a subcommand per role plus the local-stack orchestrator.

use std::process::ExitCode;

/// mimalloc instead of glibc malloc: the gateway allocates and frees request-sized buffers at
/// a high rate, which glibc serves with mmap/munmap and page zeroing (BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    spindle::cli::main()
}
