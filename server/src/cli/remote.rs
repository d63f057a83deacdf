//! The commands that talk to a running node: `credence rules apply`, `credence rules list`
//! (rule sets kept in git) and `credence audit`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use credence_proto::client::{Bearer, ClientTls};
use credence_proto::v1 as pb;
use credence_proto::v1::query_service_client::QueryServiceClient;
use credence_proto::v1::scoring_service_client::ScoringServiceClient;
use credence_scorer::{Rule, RuleFile, RuleStatus, ScoringConfig};
use credence_server::convert;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// Where the remote commands find a node by default.
const DEFAULT_TARGET: &str = "http://127.0.0.1:50051";

/// How to reach a node: its address, and the token and certificates it asks for.
#[derive(Debug, clap::Args)]
pub(crate) struct Remote {
    /// The node (`http://HOST:PORT`; with --ca-cert TLS is used).
    #[arg(long, default_value = DEFAULT_TARGET)]
    target: String,
    /// Bearer token, for a node with authentication on.
    #[arg(long, env = "CREDENCE_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The CA certificate (PEM) that signed the node's certificate: connect with TLS.
    #[arg(long)]
    ca_cert: Option<PathBuf>,
    /// This client's certificate (PEM), for a node that requires mutual TLS.
    #[arg(long, requires = "client_key")]
    client_cert: Option<PathBuf>,
    /// This client's private key (PEM).
    #[arg(long, requires = "client_cert")]
    client_key: Option<PathBuf>,
}

type Scoring = ScoringServiceClient<InterceptedService<Channel, Bearer>>;
type Query = QueryServiceClient<InterceptedService<Channel, Bearer>>;

impl Remote {
    async fn channel(&self) -> anyhow::Result<(Channel, Bearer)> {
        let read = |what: &str, path: &Path| {
            std::fs::read(path).with_context(|| format!("reading {what} {}", path.display()))
        };
        let tls = ClientTls {
            ca_pem: self
                .ca_cert
                .as_deref()
                .map(|p| read("--ca-cert", p))
                .transpose()?,
            identity: match (&self.client_cert, &self.client_key) {
                (Some(cert), Some(key)) => {
                    Some((read("--client-cert", cert)?, read("--client-key", key)?))
                }
                _ => None,
            },
        };
        let bearer = Bearer::new(self.token.as_deref()).map_err(anyhow::Error::msg)?;
        let channel = credence_proto::client::endpoint(&self.target, &tls)
            .with_context(|| format!("--target {:?}", self.target))?
            .connect()
            .await
            .with_context(|| {
                format!(
                    "connecting to {} (is the node running? with TLS on, pass --ca-cert)",
                    self.target
                )
            })?;
        Ok((channel, bearer))
    }

    async fn scoring(&self) -> anyhow::Result<Scoring> {
        let (channel, bearer) = self.channel().await?;
        Ok(ScoringServiceClient::with_interceptor(channel, bearer))
    }

    async fn query(&self) -> anyhow::Result<Query> {
        let (channel, bearer) = self.channel().await?;
        Ok(QueryServiceClient::with_interceptor(channel, bearer))
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// The latest version of every rule on the node.
async fn latest_rules(client: &mut Scoring) -> anyhow::Result<Vec<Rule>> {
    let mut rules = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_rules(pb::ListRulesRequest {
                page_size: 1_000,
                page_token: token,
                ..Default::default()
            })
            .await?
            .into_inner();
        for r in &page.rules {
            rules.push(convert::rule(r).with_context(|| format!("rule {} from the node", r.id))?);
        }
        if page.next_page_token.is_empty() {
            return Ok(rules);
        }
        token = page.next_page_token;
    }
}

/// Equal apart from what the store sets (version, time of the write).
fn same_rule(a: &Rule, b: &Rule) -> bool {
    let bare = |r: &Rule| Rule {
        version: 0,
        updated_at: None,
        ..r.clone()
    };
    bare(a) == bare(b)
}

fn same_config(a: &ScoringConfig, b: &ScoringConfig) -> bool {
    let bare = |c: &ScoringConfig| ScoringConfig {
        version: 0,
        updated_at: None,
        ..c.clone()
    };
    bare(a) == bare(b)
}

/// Makes the node's rules and config match a rule file: a changed rule gets a new version,
/// an unchanged one is left alone; with `retire_missing`, active rules that are not in the
/// file are retired. With `dry_run` nothing is written.
pub(crate) fn apply(
    path: &Path,
    remote: &Remote,
    retire_missing: bool,
    dry_run: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let file = RuleFile::load(path)?;
    runtime()?.block_on(async {
        let mut client = remote.scoring().await?;
        let current = latest_rules(&mut client).await?;
        let verb = if dry_run { "would " } else { "" };
        let (mut unchanged, mut written) = (0, 0);
        for rule in &file.rules {
            let existing = current.iter().find(|r| r.id == rule.id);
            if existing.is_some_and(|e| same_rule(e, rule)) {
                unchanged += 1;
                continue;
            }
            written += 1;
            let what = match existing {
                Some(e) => format!("{verb}update {} (v{} -> new version)", rule.id, e.version),
                None => format!("{verb}create {}", rule.id),
            };
            if dry_run {
                writeln!(out, "{what}")?;
            } else {
                let stored = client
                    .put_rule(pb::PutRuleRequest {
                        rule: Some(convert::rule_to_pb(rule)),
                    })
                    .await
                    .with_context(|| format!("writing rule {}", rule.id))?
                    .into_inner()
                    .rule
                    .unwrap_or_default();
                writeln!(out, "{what}: now v{}", stored.version)?;
            }
        }
        for rule in current
            .iter()
            .filter(|r| !file.rules.iter().any(|f| f.id == r.id))
        {
            if retire_missing && rule.status == RuleStatus::Active {
                written += 1;
                writeln!(out, "{verb}retire {} (not in {})", rule.id, path.display())?;
                if !dry_run {
                    client
                        .set_rule_status(pb::SetRuleStatusRequest {
                            rule_id: rule.id.clone(),
                            status: pb::RuleStatus::Retired.into(),
                        })
                        .await
                        .with_context(|| format!("retiring rule {}", rule.id))?;
                }
            } else {
                writeln!(out, "kept {} (on the node, not in the file)", rule.id)?;
            }
        }
        let config = client
            .get_config(pb::GetConfigRequest { version: 0 })
            .await?
            .into_inner()
            .config
            .map(|c| convert::config(&c, &ScoringConfig::default()))
            .transpose()
            .context("config from the node")?;
        if config
            .as_ref()
            .is_none_or(|c| !same_config(c, &file.config))
        {
            written += 1;
            writeln!(out, "{verb}update the scoring config")?;
            if !dry_run {
                client
                    .put_config(pb::PutConfigRequest {
                        config: Some(convert::config_to_pb(&file.config)),
                    })
                    .await
                    .context("writing the scoring config")?;
            }
        }
        writeln!(
            out,
            "{written} change(s) {verb}applied, {unchanged} rule(s) unchanged"
        )?;
        Ok(())
    })
}

/// Prints the node's rules: one line each, or the rule file (YAML) they make.
pub(crate) fn list(remote: &Remote, yaml: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let mut client = remote.scoring().await?;
        let rules = latest_rules(&mut client).await?;
        if yaml {
            let config = client
                .get_config(pb::GetConfigRequest { version: 0 })
                .await?
                .into_inner()
                .config
                .map(|c| convert::config(&c, &ScoringConfig::default()))
                .transpose()?
                .unwrap_or_default();
            let file = RuleFile { config, rules };
            write!(out, "{}", file.to_yaml_string()?)?;
            return Ok(());
        }
        for r in &rules {
            writeln!(
                out,
                "{:<32} v{:<3} {:<8} {:<10} {:>+8} {}",
                r.id,
                r.version,
                format!("{:?}", r.status).to_lowercase(),
                r.event_type,
                r.points,
                r.display_name()
            )?;
        }
        writeln!(out, "{} rule(s)", rules.len())?;
        Ok(())
    })
}

/// Prints the audit trail: the latest `limit` changes recorded at or after `since` (RFC
/// 3339), oldest first, one per line. Read through `RunAnalytics` (view `audit`), so it
/// needs the reader role.
pub(crate) fn audit(
    remote: &Remote,
    since: Option<&str>,
    limit: u32,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let since = match since {
        Some(text) => credence_scorer::Timestamp::parse_rfc3339(text)
            .map_err(|e| anyhow::anyhow!("--since: {e}"))?
            .nanos(),
        None => 0,
    };
    // Only numbers reach the SQL text: the time as parsed above and the limit.
    let sql = format!(
        "SELECT recorded_at, actor, action, target, detail FROM (SELECT * FROM audit \
         WHERE recorded_at >= make_timestamp_ns({since}) ORDER BY seq DESC LIMIT {limit}) \
         ORDER BY seq"
    );
    runtime()?.block_on(async {
        let mut client = remote.query().await?;
        let mut stream = client
            .run_analytics(pb::RunAnalyticsRequest {
                sql,
                max_rows: u64::from(limit),
                timeout: None,
            })
            .await
            .context("reading the audit trail")?
            .into_inner();
        let mut ipc = Vec::new();
        while let Some(part) = stream.message().await.context("reading the audit trail")? {
            ipc.extend_from_slice(&part.arrow_ipc);
        }
        let reader = arrow::ipc::reader::StreamReader::try_new(std::io::Cursor::new(ipc), None)
            .context("the node's answer is not an Arrow IPC stream")?;
        let options = arrow::util::display::FormatOptions::default();
        let mut count = 0;
        for batch in reader {
            let batch = batch.context("the node's answer is not an Arrow IPC stream")?;
            let columns = batch
                .columns()
                .iter()
                .map(|c| arrow::util::display::ArrayFormatter::try_new(c.as_ref(), &options))
                .collect::<Result<Vec<_>, _>>()?;
            for row in 0..batch.num_rows() {
                let fields: Vec<String> =
                    columns.iter().map(|c| c.value(row).to_string()).collect();
                writeln!(out, "{}", fields.join("  "))?;
                count += 1;
            }
        }
        writeln!(out, "{count} change(s)")?;
        Ok(())
    })
}
