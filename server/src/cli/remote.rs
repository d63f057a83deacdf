//! `credence rules apply` and `credence rules list`: rule sets kept in git, against a node.

use std::io::Write;
use std::path::Path;

use anyhow::Context as _;
use credence_proto::v1 as pb;
use credence_proto::v1::scoring_service_client::ScoringServiceClient;
use credence_scorer::{Rule, RuleFile, RuleStatus, ScoringConfig};
use credence_server::convert;
use tonic::transport::Channel;

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

async fn connect(target: &str) -> anyhow::Result<ScoringServiceClient<Channel>> {
    ScoringServiceClient::connect(target.to_owned())
        .await
        .with_context(|| format!("connecting to {target} (is `credence dev` running?)"))
}

/// The latest version of every rule on the node.
async fn latest_rules(client: &mut ScoringServiceClient<Channel>) -> anyhow::Result<Vec<Rule>> {
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
    target: &str,
    retire_missing: bool,
    dry_run: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let file = RuleFile::load(path)?;
    runtime()?.block_on(async {
        let mut client = connect(target).await?;
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
pub(crate) fn list(target: &str, yaml: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    runtime()?.block_on(async {
        let mut client = connect(target).await?;
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
