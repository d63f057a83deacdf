//! Command-line arguments and their dispatch.

mod demo;
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
        #[command(flatten)]
        demo: demo::DemoFlags,
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
    /// Print the audit trail: who changed rules, config, lists, relations or profiles, when.
    Audit {
        /// Only changes at or after this time (RFC 3339).
        #[arg(long)]
        since: Option<String>,
        /// At most this many (the latest).
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[command(flatten)]
        remote: remote::Remote,
    },
    /// Manage bearer tokens.
    #[command(subcommand)]
    Token(TokenCommand),
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
        #[command(flatten)]
        remote: remote::Remote,
        /// Also retire active rules that are not in the file.
        #[arg(long)]
        retire_missing: bool,
        /// Print what would change; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// List a running node's rules (latest versions).
    List {
        #[command(flatten)]
        remote: remote::Remote,
        /// Print them as a rule file (YAML) instead of a table.
        #[arg(long)]
        yaml: bool,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Make a new random token; prints it once, with the entry for the token file (which
    /// keeps only its SHA-256).
    New {
        /// The token's name: who it is for (written into the audit trail).
        #[arg(long)]
        name: String,
        /// Its roles: admin, producer, reader (repeat or separate with commas).
        #[arg(long = "role", required = true, value_delimiter = ',')]
        roles: Vec<String>,
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
        Command::Dev {
            config,
            flags,
            demo,
        } => node::run(config.as_deref(), flags, Some(&demo)),
        Command::Serve { config, flags } => node::run(Some(&config), flags, None),
        Command::Rules(RulesCommand::Check { file }) => rules::check(&file, out),
        Command::Rules(RulesCommand::Apply {
            file,
            remote,
            retire_missing,
            dry_run,
        }) => remote::apply(&file, &remote, retire_missing, dry_run, out),
        Command::Rules(RulesCommand::List { remote, yaml }) => remote::list(&remote, yaml, out),
        Command::Audit {
            since,
            limit,
            remote,
        } => remote::audit(&remote, since.as_deref(), limit, out),
        Command::Token(TokenCommand::New { name, roles }) => new_token(&name, &roles, out),
        Command::Simulate {
            rules,
            events,
            contexts,
            format,
        } => simulate::run(&rules, &events, contexts.as_deref(), format, out),
    }
}

/// `credence token new`: a random token and its token-file entry.
fn new_token(name: &str, roles: &[String], out: &mut dyn Write) -> anyhow::Result<()> {
    use credence_server::auth;
    for role in roles {
        anyhow::ensure!(
            auth::Role::parse(role).is_some(),
            "unknown role {role:?}: roles are admin, producer, reader"
        );
    }
    let token = auth::new_token()?;
    let entry = format!(
        "[[token]]\nname = {name:?}\nsha256 = {:?}\nroles = {roles:?}\n",
        auth::token_hash_hex(&token)
    );
    // The entry must load as the node will load it.
    auth::Tokens::parse(&entry)?;
    writeln!(
        out,
        "token (shown once; give it to {name:?} and keep it secret):\n{token}\n\n\
         add to the token file, then send the node SIGHUP:\n{entry}"
    )?;
    Ok(())
}
