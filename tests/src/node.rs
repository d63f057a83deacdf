//! One `credence dev` process.

use std::fs::{File, OpenOptions};
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use credence_proto::v1::graph_service_client::GraphServiceClient;
use credence_proto::v1::ingestion_service_client::IngestionServiceClient;
use credence_proto::v1::query_service_client::QueryServiceClient;
use credence_proto::v1::scoring_service_client::ScoringServiceClient;
use tempfile::TempDir;
use tonic::transport::{Channel, Endpoint};

/// How long a server may take to print its "listening" line.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest message the test clients send or take.
const MAX_MESSAGE: usize = 64 << 20;

/// The `credence` binary to run (`CREDENCE_BIN` names another).
pub fn server_binary() -> anyhow::Result<PathBuf> {
    workspace_binary("credence", "CREDENCE_BIN", "credence-server")
}

/// The `credence-loadgen` binary (`CREDENCE_LOADGEN_BIN` names another).
pub fn loadgen_binary() -> anyhow::Result<PathBuf> {
    workspace_binary(
        "credence-loadgen",
        "CREDENCE_LOADGEN_BIN",
        "credence-loadgen",
    )
}

/// A binary of the workspace: the one `var` names, else the one beside the test executable
/// or in `$CARGO_TARGET_DIR/debug`; the error says how to build it (`package`).
fn workspace_binary(name: &str, var: &str, package: &str) -> anyhow::Result<PathBuf> {
    if let Some(bin) = std::env::var_os(var) {
        let bin = PathBuf::from(bin);
        anyhow::ensure!(bin.is_file(), "{var}={} does not exist", bin.display());
        return Ok(bin);
    }
    let mut candidates = Vec::new();
    // target/<profile>/deps/<test binary> -> target/<profile>/<name>
    if let Ok(exe) = std::env::current_exe()
        && let Some(profile_dir) = exe.parent().and_then(Path::parent)
    {
        candidates.push(profile_dir.join(name));
    }
    if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
        candidates.push(PathBuf::from(target).join("debug").join(name));
    }
    candidates
        .into_iter()
        .find(|c| c.is_file())
        .with_context(|| {
            format!(
                "no `{name}` binary found (looked beside the test executable and in \
                 $CARGO_TARGET_DIR/debug): run `cargo build -p {package}` first, or set {var}"
            )
        })
}

/// Extra settings of a node.
#[derive(Clone, Debug, Default)]
pub struct NodeOptions {
    /// `CREDENCE__SECTION__KEY` variables for the server.
    pub env: Vec<(String, String)>,
    /// A config file passed with `--config`.
    pub config_toml: Option<String>,
    /// How the harness's own clients reach a node with TLS on (a CA turns TLS on).
    pub client_tls: credence_proto::client::ClientTls,
    /// Run `credence dev`'s demo world (off in every test but the demo's own).
    pub demo: bool,
}

impl NodeOptions {
    /// A lag limit of one event and no waiting: a publish while the pipeline still scores
    /// the previous batch is refused with RESOURCE_EXHAUSTED.
    pub fn refusing_when_behind() -> Self {
        Self {
            env: vec![
                ("CREDENCE__PIPELINE__MAX_LAG_EVENTS".into(), "1".into()),
                ("CREDENCE__PIPELINE__BACKPRESSURE_WAIT".into(), "0s".into()),
            ],
            ..Self::default()
        }
    }
}

/// A running (or killed) `credence dev` process and clients connected to it.
#[derive(Debug)]
pub struct Node {
    child: Option<Child>,
    options: NodeOptions,
    dir: TempDir,
    data_dir: PathBuf,
    log_path: PathBuf,
    addr: SocketAddr,
    metrics_url: Option<String>,
    dashboard_url: Option<String>,
    channel: Channel,
    starts: u32,
}

impl Node {
    /// Starts a server on free loopback ports with a fresh data directory.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(NodeOptions::default()).await
    }

    /// Starts a server with extra settings.
    pub async fn start_with(options: NodeOptions) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new().prefix("credence-e2e-").tempdir()?;
        let data_dir = dir.path().join("data");
        let log_path = dir.path().join("server.log");
        let Started {
            child,
            addr,
            metrics_url,
            dashboard_url,
        } = spawn(&options, dir.path(), &data_dir, &log_path, 1, ANY_PORT)?;
        let mut node = Self {
            child: Some(child),
            options,
            dir,
            data_dir,
            log_path,
            addr,
            metrics_url,
            dashboard_url,
            channel: Endpoint::from_static("http://127.0.0.1:1").connect_lazy(),
            starts: 1,
        };
        node.channel = node.connect().await?;
        Ok(node)
    }

    async fn connect(&self) -> anyhow::Result<Channel> {
        let endpoint =
            credence_proto::client::endpoint(&self.endpoint(), &self.options.client_tls)?
                .connect_timeout(Duration::from_secs(5))
                .tcp_nodelay(true);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match endpoint.connect().await {
                Ok(channel) => return Ok(channel),
                Err(e) if Instant::now() > deadline => {
                    bail!("connecting to {}: {e}\n{}", self.addr, self.log_tail(40))
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// The gRPC address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, for clients.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The Prometheus endpoint, when the server printed one.
    pub fn metrics_url(&self) -> Option<&str> {
        self.metrics_url.as_deref()
    }

    /// The dashboard's address (`http://ADDR/`), when the server printed one.
    pub fn dashboard_url(&self) -> Option<&str> {
        self.dashboard_url.as_deref()
    }

    /// The data directory (kept across restarts).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// A fresh connection to the server (its own HTTP/2 connection).
    pub async fn channel(&self) -> anyhow::Result<Channel> {
        self.connect().await
    }

    /// IngestionService client.
    pub fn ingestion(&self) -> IngestionServiceClient<Channel> {
        IngestionServiceClient::new(self.channel.clone())
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(usize::MAX)
    }

    /// ScoringService client.
    pub fn scoring(&self) -> ScoringServiceClient<Channel> {
        ScoringServiceClient::new(self.channel.clone()).max_decoding_message_size(MAX_MESSAGE)
    }

    /// QueryService client.
    pub fn query(&self) -> QueryServiceClient<Channel> {
        QueryServiceClient::new(self.channel.clone()).max_decoding_message_size(MAX_MESSAGE)
    }

    /// GraphService client.
    pub fn graph(&self) -> GraphServiceClient<Channel> {
        GraphServiceClient::new(self.channel.clone()).max_decoding_message_size(MAX_MESSAGE)
    }

    /// Kills the server with SIGKILL (no shutdown of any kind) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Kills the server if it runs, then starts it again on the same data directory (on new
    /// ports) and reconnects.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.start_again(ANY_PORT).await
    }

    /// Like [`Node::restart`], but on the same gRPC address, so clients holding the address
    /// (an SDK client retrying through a restart) reach the new process.
    pub async fn restart_on_same_address(&mut self) -> anyhow::Result<()> {
        let listen = self.addr.to_string();
        self.start_again(&listen).await
    }

    async fn start_again(&mut self, listen: &str) -> anyhow::Result<()> {
        self.kill();
        self.starts += 1;
        let started = spawn(
            &self.options,
            self.dir.path(),
            &self.data_dir,
            &self.log_path,
            self.starts,
            listen,
        )?;
        self.child = Some(started.child);
        self.addr = started.addr;
        self.metrics_url = started.metrics_url;
        self.dashboard_url = started.dashboard_url;
        self.channel = self.connect().await?;
        Ok(())
    }

    /// The last `lines` lines of the server's output (all starts).
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        let tail = all[all.len().saturating_sub(lines)..].join("\n");
        format!(
            "--- last {lines} lines of {} ---\n{tail}",
            self.log_path.display()
        )
    }

    /// The server's metrics, parsed.
    pub async fn metrics(&self) -> anyhow::Result<credence_loadgen::metrics::Metrics> {
        let url = self
            .metrics_url
            .as_deref()
            .context("the server printed no metrics line")?;
        credence_loadgen::metrics::fetch(url).await
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("{}", self.log_tail(60));
        }
    }
}

/// `--listen` for a free port.
const ANY_PORT: &str = "127.0.0.1:0";

/// A started server process and the addresses it printed.
struct Started {
    child: Child,
    addr: SocketAddr,
    metrics_url: Option<String>,
    dashboard_url: Option<String>,
}

fn spawn(
    options: &NodeOptions,
    dir: &Path,
    data_dir: &Path,
    log_path: &Path,
    start: u32,
    listen: &str,
) -> anyhow::Result<Started> {
    let bin = server_binary()?;
    let mut log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)?;
    writeln!(
        log,
        "=== start {start}: {} dev --data-dir {}",
        bin.display(),
        data_dir.display()
    )?;
    let mut command = Command::new(&bin);
    command
        .arg("dev")
        .args([
            "--listen",
            listen,
            "--metrics-listen",
            "127.0.0.1:0",
            "--dashboard-listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(data_dir)
        .args((!options.demo).then_some("--no-demo"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log.try_clone()?))
        .envs(options.env.iter().map(|(k, v)| (k, v)));
    if let Some(toml) = &options.config_toml {
        let path = dir.join("config.toml");
        std::fs::write(&path, toml)?;
        command.arg("--config").arg(path);
    }
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let stdout = child.stdout.take().context("no stdout")?;
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || copy_lines(stdout, &tx, log));

    let deadline = Instant::now() + START_TIMEOUT;
    let mut addr = None;
    let mut metrics = None;
    let mut dashboard = None;
    while addr.is_none() || metrics.is_none() || dashboard.is_none() {
        let now = Instant::now();
        // The other lines may come before or after; give them a moment after the gRPC one.
        let until = match addr {
            Some(_) => deadline.min(now + Duration::from_secs(5)),
            None => deadline,
        };
        let Ok(line) = rx.recv_timeout(until.saturating_duration_since(now)) else {
            if let Some(addr) = addr {
                return Ok(Started {
                    child,
                    addr,
                    metrics_url: metrics,
                    dashboard_url: dashboard,
                });
            }
            let status = child.try_wait().ok().flatten();
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(log_path).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            bail!(
                "`{} dev` did not print \"credence listening on ADDR\" within {:?} ({}); its output:\n{}",
                bin.display(),
                START_TIMEOUT,
                status.map_or_else(
                    || "still running, killed".to_owned(),
                    |s| format!("exited: {s}")
                ),
                tail.join("\n")
            );
        };
        if let Some(rest) = line.split("credence listening on ").nth(1) {
            let text = rest.split_whitespace().next().unwrap_or_default();
            addr =
                Some(text.parse::<SocketAddr>().with_context(|| {
                    format!("the server printed an unreadable address: {line:?}")
                })?);
        } else if let Some(rest) = line.split("dashboard on ").nth(1) {
            dashboard = Some(
                rest.split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
            );
        } else if let Some(rest) = line.split("metrics on ").nth(1) {
            metrics = Some(
                rest.split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
            );
        }
    }
    let addr = addr.context("no address")?;
    Ok(Started {
        child,
        addr,
        metrics_url: metrics,
        dashboard_url: dashboard,
    })
}

/// Copies the server's stdout into the log, passing each line on while someone listens.
fn copy_lines(stdout: impl std::io::Read, tx: &mpsc::Sender<String>, mut log: File) {
    let mut listening = true;
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let _ = writeln!(log, "{line}");
        if listening && tx.send(line).is_err() {
            listening = false;
        }
    }
}
