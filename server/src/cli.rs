//! Command-line arguments and their dispatch.

mod rules;
mod simulate;

use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Credence: explainable event scoring over synthetic subjects.
#[derive(Debug, Parser)]
#[command(name = "credence", version, about)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Work with rule files.
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Score a file of events offline with a rule file; nothing is stored.
    Simulate {
        /// Rule file (YAML, or JSON when it ends in .json).
        #[arg(long, default_value = "scorer/rules/example.yaml")]
        rules: PathBuf,
        /// Events, one JSON object per line.
        #[arg(long)]
        events: PathBuf,
        /// Subject contexts (profile, lists, association), one JSON object per line with a
        /// `subject_id`.
        #[arg(long)]
        contexts: Option<PathBuf>,
        /// Output: a readable report, or JSON lines of outcomes, changes, alerts and states.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

#[derive(Debug, Subcommand)]
enum RulesCommand {
    /// Validate a rule file and summarise it; every problem names the rule and field.
    Check {
        /// Rule file (YAML, or JSON when it ends in .json).
        file: PathBuf,
    },
}

/// How `simulate` prints its results.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// A report for people.
    Text,
    /// One JSON object per line, for programs.
    Json,
}

/// Runs a parsed command line, writing its output to `out`.
pub(crate) fn run(cli: Cli, out: &mut dyn Write) -> anyhow::Result<()> {
    match cli.command {
        Command::Rules(RulesCommand::Check { file }) => rules::check(&file, out),
        Command::Simulate {
            rules,
            events,
            contexts,
            format,
        } => simulate::run(&rules, &events, contexts.as_deref(), format, out),
    }
}
