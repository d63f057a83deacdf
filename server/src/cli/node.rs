//! `credence dev` and `credence serve`: run a node.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use credence_scorer::RuleFile;
use credence_server::config::Config;
use credence_server::node::{self, Addresses};

/// Flags that override the configuration.
#[derive(Debug, Default, clap::Args)]
pub(crate) struct NodeFlags {
    /// gRPC address (config: node.listen).
    #[arg(long)]
    listen: Option<std::net::SocketAddr>,
    /// Data directory (config: node.data_dir).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Prometheus address, or "" for none (config: node.metrics_listen).
    #[arg(long)]
    metrics_listen: Option<String>,
    /// Dashboard address, or "" for none (config: node.dashboard_listen; `dev` serves it on
    /// 127.0.0.1:8080 unless told otherwise).
    #[arg(long)]
    dashboard_listen: Option<String>,
    /// Listen beyond loopback without authentication or TLS (docs/SECURITY.md).
    #[arg(long)]
    insecure: bool,
}

/// Where `credence dev` serves the dashboard unless the config or a flag says otherwise.
const DEV_DASHBOARD: &str = "127.0.0.1:8080";

/// Loads the layered config, applies the flags, sets up logging and runs until a signal.
pub(crate) fn run(config_file: Option<&Path>, flags: NodeFlags, dev: bool) -> anyhow::Result<()> {
    let mut config = Config::load(config_file, std::env::vars())?;
    if let Some(listen) = flags.listen {
        config.node.listen = listen;
    }
    if let Some(dir) = flags.data_dir {
        config.node.data_dir = dir;
    }
    if let Some(metrics) = flags.metrics_listen {
        config.node.metrics_listen = metrics;
    }
    match flags.dashboard_listen {
        Some(dashboard) => config.node.dashboard_listen = dashboard,
        // The README's first command shows the page without more flags.
        None if dev && config.node.dashboard_listen.is_empty() => {
            config.node.dashboard_listen = DEV_DASHBOARD.into();
        }
        None => {}
    }
    config.validate()?;
    // The dashboard's API reaches every RPC: it is exposed exactly as the gRPC port is.
    let exposed = std::iter::once(config.node.listen).chain(config.dashboard_addr()?);
    for listen in exposed {
        credence_server::auth::check_exposure(
            listen,
            &config.auth,
            config.tls.enabled(),
            flags.insecure,
        )?;
    }
    init_logging(&config);
    let seed = if config.node.rules_file.is_empty() {
        RuleFile::example()?
    } else {
        RuleFile::load(Path::new(&config.node.rules_file))
            .with_context(|| format!("node.rules_file {}", config.node.rules_file))?
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("credence")
        .build()
        .context("starting the async runtime")?;
    let data_dir = config.node.data_dir.clone();
    runtime.block_on(node::run(
        config,
        &seed,
        move |at: Addresses| announce(at, &data_dir, dev),
        node::shutdown_signal(),
    ))
}

/// Prints where the node is and how to reach it. Tests and scripts read the first line.
fn announce(at: Addresses, data_dir: &Path, dev: bool) {
    println!("credence listening on {}", at.grpc);
    let scheme = if at.tls { "https" } else { "http" };
    if let Some(metrics) = at.metrics {
        println!("metrics on {scheme}://{metrics}/metrics");
    }
    if let Some(dashboard) = at.dashboard {
        println!("dashboard on {scheme}://{dashboard}/");
    }
    println!("data in {}", data_dir.display());
    if dev {
        println!("try: grpcurl -plaintext {} list", at.grpc);
        println!(
            "     grpcurl -plaintext -d '{{\"subject_id\":\"subject-0001\"}}' {} credence.v1.ScoringService/GetScore",
            at.grpc
        );
        println!("stop with Ctrl-C");
    }
    tracing::info!(grpc = %at.grpc, "serving");
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&config.log.filter))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    // A second initialisation (tests) keeps the first subscriber.
    let _ = if config.log.format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
