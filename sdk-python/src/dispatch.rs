//! Every RPC of the four services by name, with its arguments as one JSON object.
//!
//! The Python layer sends `(method, {"arg": value, ...})` made by `json.dumps`, in the
//! JSON shape of the Rust SDK's `serde` feature; the answer comes back as JSON (or, for
//! analytics, Arrow IPC bytes). One table of names here keeps the native surface to a
//! single entry point instead of a Python-visible function per RPC.

use std::time::Duration;

use credence::{
    AggregateQuery, Client, Error, Event, EventQuery, ExplainQuery, HistoryQuery, ListEntry,
    ListEntryQuery, ListKind, NeighborQuery, Page, Profile, Relation, RelationKey, RelationKind,
    Result, Rule, RuleQuery, RuleStatus, ScoringConfig, Simulation, SubjectQuery,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

/// What a call answers.
#[derive(Debug, PartialEq)]
pub(crate) enum Reply {
    /// A JSON document.
    Json(Value),
    /// An analytics result: the Arrow IPC stream and its row count.
    Arrow(Vec<u8>, u64),
}

/// The arguments of one call, taken by name.
pub(crate) struct Args {
    method: String,
    map: Map<String, Value>,
}

impl Args {
    /// Parses `json`, which must be an object.
    pub(crate) fn parse(method: &str, json: &str) -> Result<Self> {
        let value: Value = serde_json::from_str(json)
            .map_err(|e| Error::Input(format!("{method}: arguments are not JSON: {e}")))?;
        match value {
            Value::Object(map) => Ok(Self {
                method: method.to_owned(),
                map,
            }),
            other => Err(Error::Input(format!(
                "{method}: arguments must be an object, not {other}"
            ))),
        }
    }

    /// A required argument.
    pub(crate) fn get<T: DeserializeOwned>(&mut self, name: &str) -> Result<T> {
        match self.map.remove(name) {
            Some(v) if !v.is_null() => self.convert(name, v),
            _ => Err(Error::Input(format!(
                "{}: the argument `{name}` is missing",
                self.method
            ))),
        }
    }

    /// An optional argument (absent or null: `None`).
    pub(crate) fn opt<T: DeserializeOwned>(&mut self, name: &str) -> Result<Option<T>> {
        match self.map.remove(name) {
            Some(v) if !v.is_null() => self.convert(name, v).map(Some),
            _ => Ok(None),
        }
    }

    /// An optional argument with its default.
    fn or_default<T: DeserializeOwned + Default>(&mut self, name: &str) -> Result<T> {
        Ok(self.opt(name)?.unwrap_or_default())
    }

    fn convert<T: DeserializeOwned>(&self, name: &str, v: Value) -> Result<T> {
        serde_json::from_value(v).map_err(|e| Error::Input(format!("{}: {name}: {e}", self.method)))
    }

    /// Refuses arguments nobody took: a misspelt keyword must not be ignored.
    pub(crate) fn finish(self) -> Result<()> {
        match self.map.keys().next() {
            None => Ok(()),
            Some(name) => Err(Error::Input(format!(
                "{}: unknown argument `{name}`",
                self.method
            ))),
        }
    }
}

fn to_json<T: Serialize>(value: &T) -> Result<Reply> {
    serde_json::to_value(value)
        .map(Reply::Json)
        .map_err(|e| Error::Protocol(format!("an answer does not serialise: {e}")))
}

fn page<T: Serialize>(page: &Page<T>) -> Result<Reply> {
    to_json(&json!({"items": serde_json::to_value(&page.items)
        .map_err(|e| Error::Protocol(format!("an answer does not serialise: {e}")))?,
        "next_page_token": page.next_page_token}))
}

/// A duration argument in seconds.
fn seconds(args: &mut Args, name: &str) -> Result<Option<Duration>> {
    match args.opt::<f64>(name)? {
        None => Ok(None),
        Some(s) => Duration::try_from_secs_f64(s).map(Some).map_err(|_| {
            Error::Input(format!(
                "{}: {name}: {s} is not a duration in seconds (finite, not negative)",
                args.method
            ))
        }),
    }
}

/// The names [`call`] knows, for the Python layer's checks and the error below.
pub(crate) const METHODS: &[&str] = &[
    "publish_events",
    "upsert_profiles",
    "get_profile",
    "list_subjects",
    "get_score_history",
    "list_events",
    "get_tier_distribution",
    "get_aggregates",
    "run_analytics",
    "put_rule",
    "get_rule",
    "list_rules",
    "set_rule_status",
    "get_config",
    "put_config",
    "get_score",
    "batch_get_scores",
    "explain_score",
    "simulate",
    "put_list_entry",
    "remove_list_entry",
    "list_list_entries",
    "put_relations",
    "remove_relations",
    "get_neighbors",
    "find_path",
    "get_association",
];

/// Runs `method` with `args` on `client`.
pub(crate) async fn call(client: &Client, method: &str, args_json: &str) -> Result<Reply> {
    let mut a = Args::parse(method, args_json)?;
    let reply = match method {
        "publish_events" => {
            let events: Vec<Event> = a.get("events")?;
            a.finish()?;
            to_json(&client.publish_events(&events).await?)
        }
        "upsert_profiles" => {
            let profiles: Vec<Profile> = a.get("profiles")?;
            a.finish()?;
            to_json(&client.upsert_profiles(&profiles).await?)
        }
        "get_profile" => {
            let id: String = a.get("subject_id")?;
            a.finish()?;
            to_json(&client.get_profile(&id).await?)
        }
        "list_subjects" => {
            let q: SubjectQuery = a.or_default("query")?;
            a.finish()?;
            page(&client.list_subjects(&q).await?)
        }
        "get_score_history" => {
            let q: HistoryQuery = a.get("query")?;
            a.finish()?;
            page(&client.get_score_history(&q).await?)
        }
        "list_events" => {
            let q: EventQuery = a.or_default("query")?;
            a.finish()?;
            page(&client.list_events(&q).await?)
        }
        "get_tier_distribution" => {
            let region: Option<String> = a.opt("region")?;
            a.finish()?;
            to_json(&client.get_tier_distribution(region.as_deref()).await?)
        }
        "get_aggregates" => {
            let q: AggregateQuery = a.get("query")?;
            a.finish()?;
            page(&client.get_aggregates(&q).await?)
        }
        "run_analytics" => {
            let sql: String = a.get("sql")?;
            let max_rows: Option<u64> = a.opt("max_rows")?;
            let timeout = seconds(&mut a, "timeout")?;
            a.finish()?;
            let result = client.run_analytics(&sql, max_rows, timeout).await?;
            Ok(Reply::Arrow(result.arrow_ipc, result.rows))
        }
        "put_rule" => {
            let rule: Rule = a.get("rule")?;
            a.finish()?;
            to_json(&client.put_rule(&rule).await?)
        }
        "get_rule" => {
            let id: String = a.get("rule_id")?;
            let version: Option<u32> = a.opt("version")?;
            a.finish()?;
            to_json(&client.get_rule(&id, version).await?)
        }
        "list_rules" => {
            let q: RuleQuery = a.or_default("query")?;
            a.finish()?;
            to_json(&client.list_rules(&q).await?)
        }
        "set_rule_status" => {
            let id: String = a.get("rule_id")?;
            let status: RuleStatus = a.get("status")?;
            a.finish()?;
            to_json(&client.set_rule_status(&id, status).await?)
        }
        "get_config" => {
            let version: Option<u32> = a.opt("version")?;
            a.finish()?;
            to_json(&client.get_config(version).await?)
        }
        "put_config" => {
            let config: ScoringConfig = a.get("config")?;
            a.finish()?;
            to_json(&client.put_config(&config).await?)
        }
        "get_score" => {
            let id: String = a.get("subject_id")?;
            a.finish()?;
            to_json(&client.get_score(&id).await?)
        }
        "batch_get_scores" => {
            let ids: Vec<String> = a.get("subject_ids")?;
            a.finish()?;
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            let (snapshots, missing) = client.batch_get_scores(&ids).await?;
            to_json(&json!({"snapshots": snapshots_json(&snapshots)?, "missing": missing}))
        }
        "explain_score" => {
            let q: ExplainQuery = a.get("query")?;
            a.finish()?;
            to_json(&client.explain_score(&q).await?)
        }
        "simulate" => {
            let s: Simulation = a.get("simulation")?;
            a.finish()?;
            to_json(&client.simulate(&s).await?)
        }
        "put_list_entry" => {
            let entry: ListEntry = a.get("entry")?;
            a.finish()?;
            to_json(&client.put_list_entry(&entry).await?)
        }
        "remove_list_entry" => {
            let id: String = a.get("subject_id")?;
            let kind: ListKind = a.get("kind")?;
            a.finish()?;
            to_json(&client.remove_list_entry(&id, kind).await?)
        }
        "list_list_entries" => {
            let q: ListEntryQuery = a.or_default("query")?;
            a.finish()?;
            page(&client.list_list_entries(&q).await?)
        }
        "put_relations" => {
            let relations: Vec<Relation> = a.get("relations")?;
            a.finish()?;
            to_json(&client.put_relations(&relations).await?)
        }
        "remove_relations" => {
            let keys: Vec<RelationKey> = a.get("keys")?;
            a.finish()?;
            to_json(&client.remove_relations(&keys).await?)
        }
        "get_neighbors" => {
            let id: String = a.get("subject_id")?;
            let q: NeighborQuery = a.or_default("query")?;
            a.finish()?;
            to_json(&client.get_neighbors(&id, &q).await?)
        }
        "find_path" => {
            let from: String = a.get("from_subject_id")?;
            let to: String = a.get("to_subject_id")?;
            let depth: u32 = a.or_default("max_depth")?;
            let kinds: Vec<RelationKind> = a.or_default("relation_kinds")?;
            a.finish()?;
            to_json(&client.find_path(&from, &to, depth, &kinds).await?)
        }
        "get_association" => {
            let id: String = a.get("subject_id")?;
            let depth: u32 = a.or_default("depth")?;
            let kinds: Vec<RelationKind> = a.or_default("relation_kinds")?;
            a.finish()?;
            to_json(&client.get_association(&id, depth, &kinds).await?)
        }
        other => Err(Error::Input(format!(
            "no method `{other}`; the methods are {}",
            METHODS.join(", ")
        ))),
    }?;
    Ok(reply)
}

fn snapshots_json(snapshots: &[credence::ScoreSnapshot]) -> Result<Value> {
    serde_json::to_value(snapshots)
        .map_err(|e| Error::Protocol(format!("an answer does not serialise: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_must_be_an_object() {
        let e = Args::parse("get_score", "[1]").err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("invalid input: get_score: arguments must be an object, not [1]")
        );
    }

    #[test]
    fn a_missing_an_unknown_and_a_mistyped_argument_are_named() {
        let mut a = Args::parse("get_rule", r#"{"rule_id": 7, "verison": 2}"#).expect("object");
        let e = a.get::<String>("rule_id").err().map(|e| e.to_string());
        assert!(
            e.as_deref()
                .is_some_and(|m| m.starts_with("invalid input: get_rule: rule_id: invalid type")),
            "{e:?}"
        );
        let e = a.get::<String>("subject_id").err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("invalid input: get_rule: the argument `subject_id` is missing")
        );
        let e = a.finish().err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("invalid input: get_rule: unknown argument `verison`")
        );
    }

    #[test]
    fn a_negative_timeout_is_refused() {
        let mut a = Args::parse("run_analytics", r#"{"timeout": -1}"#).expect("object");
        let e = seconds(&mut a, "timeout").err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some(
                "invalid input: run_analytics: timeout: -1 is not a duration in seconds \
                 (finite, not negative)"
            )
        );
    }
}
