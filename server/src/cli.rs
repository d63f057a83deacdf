//! Command-line arguments and their dispatch.

mod node;
mod remote;
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
    /// Start a node for development: embedded storage under ./.credence, the example rules.
    Dev {
        /// Optional config file (TOML; see config/example.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        #[command(flatten)]
        flags: node::NodeFlags,
    },
    /// Start a node with a config file.
    Serve {
        /// Config file (TOML; see config/example.toml).
        #[arg(long)]
        config: PathBuf,
        #[command(flatten)]
        flags: node::NodeFlags,
    },
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
    /// Make a running node's rules and config match a rule file (new versions for changes).
    Apply {
        /// Rule file (YAML, or JSON when it ends in .json).
        #[arg(short = 'f', long = "file")]
        file: PathBuf,
        /// The node.
        #[arg(long, default_value = DEFAULT_TARGET)]
        target: String,
        /// Also retire active rules that are not in the file.
        #[arg(long)]
        retire_missing: bool,
        /// Print what would change; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// List a running node's rules (latest versions).
    List {
        /// The node.
        #[arg(long, default_value = DEFAULT_TARGET)]
        target: String,
        /// Print them as a rule file (YAML) instead of a table.
        #[arg(long)]
        yaml: bool,
    },
}

/// Where the remote commands find a node by default.
const DEFAULT_TARGET: &str = "http://127.0.0.1:50051";

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
        Command::Dev { config, flags } => node::run(config.as_deref(), flags, true),
        Command::Serve { config, flags } => node::run(Some(&config), flags, false),
        Command::Rules(RulesCommand::Check { file }) => rules::check(&file, out),
        Command::Rules(RulesCommand::Apply {
            file,
            target,
            retire_missing,
            dry_run,
        }) => remote::apply(&file, &target, retire_missing, dry_run, out),
        Command::Rules(RulesCommand::List { target, yaml }) => remote::list(&target, yaml, out),
        Command::Simulate {
            rules,
            events,
            contexts,
            format,
        } => simulate::run(&rules, &events, contexts.as_deref(), format, out),
    }
}
