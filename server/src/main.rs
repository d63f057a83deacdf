//! `credence`: the Credence command line.
//!
//! `dev` and `serve` run a node; `rules apply` and `rules list` manage a running node's rule
//! set from a rule file; `rules check` and `simulate` run the engine offline.

mod cli;

// The node allocates per event (decoded messages, payload maps, rows); mimalloc is markedly
// cheaper than the system allocator under that load (see docs/BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    // Not a held lock: a node's tasks print too (the demo's status lines), from other
    // threads, and would wait for it forever.
    match cli::run(args, &mut std::io::stdout()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("credence: {error:#}");
            ExitCode::FAILURE
        }
    }
}
