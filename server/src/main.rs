//! `credence`: the Credence command line.
//!
//! Today it runs the scoring engine offline: `rules check` validates a rule file and
//! `simulate` scores a file of events. The gRPC node (`dev`, `serve`) and the remote rule
//! commands (`rules apply`, `rules list`) come with the embedded-platform issue.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args, &mut std::io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("credence: {error:#}");
            ExitCode::FAILURE
        }
    }
}
