"""One request builder per RPC, shared by the blocking and the asyncio client: the native
method name, its JSON arguments, and how to read the answer."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

import pyarrow as pa

from . import _native, table
from ._codec import decode, dumps
from .table import Table
from .types import (
    Association,
    Event,
    ListEntry,
    ListKind,
    Neighbors,
    Path,
    Profile,
    PublishResult,
    Relation,
    RelationKey,
    RelationKind,
    RelationsResult,
    Rule,
    RuleList,
    RuleStatus,
    ScoreSnapshot,
    ScoringConfig,
    SimulationResult,
    SubjectView,
    TierDistribution,
    UpsertResult,
    AggregateGroupBy,
    AggregateWindow,
)

T = TypeVar("T")

EventLike = Event | Mapping[str, Any]
ProfileLike = Profile | Mapping[str, Any]
RuleLike = Rule | Mapping[str, Any]
ConfigLike = ScoringConfig | Mapping[str, Any]


@dataclass(frozen=True)
class Req(Generic[T]):
    """A call: the native method, its arguments (JSON text) and the answer's reader."""

    method: str
    args: str
    read: Callable[[_native.Answer], T]


def _req(method: str, args: Mapping[str, Any], read: Callable[[_native.Answer], T]) -> Req[T]:
    return Req(method, dumps(dict(args)), read)


def _json(tp: type[T]) -> Callable[[_native.Answer], T]:
    def read(answer: _native.Answer) -> T:
        return decode(tp, json.loads(answer.json or "null"))

    return read


def _page(schema: pa.Schema) -> Callable[[_native.Answer], Table]:
    def read(answer: _native.Answer) -> Table:
        page = json.loads(answer.json or "{}")
        return table.from_rows(page["items"], schema, page.get("next_page_token"))

    return read


def _query(**fields: Any) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


def publish_events(events: Iterable[EventLike]) -> Req[PublishResult]:
    return _req("publish_events", {"events": list(events)}, _json(PublishResult))


def upsert_profiles(profiles: Iterable[ProfileLike]) -> Req[UpsertResult]:
    return _req("upsert_profiles", {"profiles": list(profiles)}, _json(UpsertResult))


def get_profile(subject_id: str) -> Req[SubjectView]:
    return _req("get_profile", {"subject_id": subject_id}, _json(SubjectView))


def list_subjects(
    region: str | None, tier: str | None, min_score: float | None, max_score: float | None,
    page_size: int, page_token: str,
) -> Req[Table]:
    q = _query(region=region, tier=tier, min_score=min_score, max_score=max_score,
               page_size=page_size, page_token=page_token)
    return _req("list_subjects", {"query": q}, _page(table.SUBJECTS))


def get_score_history(
    subject_id: str, start: datetime | None, end: datetime | None, page_size: int, page_token: str
) -> Req[Table]:
    q = _query(subject_id=subject_id, **{"from": start, "to": end}, page_size=page_size,
               page_token=page_token)
    return _req("get_score_history", {"query": q}, _page(table.SCORE_HISTORY))


def list_events(
    subject_id: str | None, event_type: str | None, start: datetime | None, end: datetime | None,
    page_size: int, page_token: str,
) -> Req[Table]:
    q = _query(subject_id=subject_id, event_type=event_type, **{"from": start, "to": end},
               page_size=page_size, page_token=page_token)
    return _req("list_events", {"query": q}, _page(table.EVENTS))


def get_tier_distribution(region: str | None) -> Req[TierDistribution]:
    return _req("get_tier_distribution", _query(region=region), _json(TierDistribution))


def get_aggregates(
    window: AggregateWindow, group_by: AggregateGroupBy, start: datetime, end: datetime,
    subject_id: str | None, region: str | None, event_type: str | None, page_size: int,
    page_token: str,
) -> Req[Table]:
    q = _query(window=window, group_by=group_by, **{"from": start, "to": end},
               subject_id=subject_id, region=region, event_type=event_type,
               page_size=page_size, page_token=page_token)
    return _req("get_aggregates", {"query": q}, _page(table.AGGREGATES))


def _analytics(answer: _native.Answer) -> Table:
    data = answer.arrow or b""
    return Table(pa.ipc.open_stream(data).read_all())


def run_analytics(sql: str, max_rows: int | None, timeout: timedelta | None) -> Req[Table]:
    return _req("run_analytics", _query(sql=sql, max_rows=max_rows, timeout=timeout), _analytics)


def put_rule(rule: RuleLike) -> Req[Rule]:
    return _req("put_rule", {"rule": rule}, _json(Rule))


def get_rule(rule_id: str, version: int | None) -> Req[Rule]:
    return _req("get_rule", _query(rule_id=rule_id, version=version), _json(Rule))


def list_rules(
    status: RuleStatus | None, event_type: str | None, all_versions: bool, page_size: int,
    page_token: str,
) -> Req[RuleList]:
    q = _query(status=status, event_type=event_type, all_versions=all_versions,
               page_size=page_size, page_token=page_token)
    return _req("list_rules", {"query": q}, _json(RuleList))


def set_rule_status(rule_id: str, status: RuleStatus) -> Req[Rule]:
    return _req("set_rule_status", {"rule_id": rule_id, "status": status}, _json(Rule))


def get_config(version: int | None) -> Req[ScoringConfig]:
    return _req("get_config", _query(version=version), _json(ScoringConfig))


def put_config(config: ConfigLike) -> Req[ScoringConfig]:
    return _req("put_config", {"config": config}, _json(ScoringConfig))


def get_score(subject_id: str) -> Req[ScoreSnapshot]:
    return _req("get_score", {"subject_id": subject_id}, _json(ScoreSnapshot))


@dataclass
class Scores:
    """``batch_get_scores``: the snapshots found and the ids that have none."""

    snapshots: list[ScoreSnapshot]
    missing: list[str]


def batch_get_scores(subject_ids: Sequence[str]) -> Req[Scores]:
    return _req("batch_get_scores", {"subject_ids": list(subject_ids)}, _json(Scores))


@dataclass
class Explanation:
    """A subject's score and the changes that made it (a table, newest last)."""

    snapshot: ScoreSnapshot | None
    changes: Table
    next_page_token: str | None = None


def _explanation(answer: _native.Answer) -> Explanation:
    e = json.loads(answer.json or "{}")
    snapshot = decode(ScoreSnapshot | None, e.get("snapshot"))  # type: ignore[arg-type]
    changes = table.from_rows(e.get("changes", []), table.CHANGES)
    return Explanation(snapshot, changes, e.get("next_page_token"))


def explain_score(
    subject_id: str, start: datetime | None, end: datetime | None, page_size: int, page_token: str
) -> Req[Explanation]:
    q = _query(subject_id=subject_id, **{"from": start, "to": end}, page_size=page_size,
               page_token=page_token)
    return _req("explain_score", {"query": q}, _explanation)


def simulation(
    rules: Iterable[RuleLike],
    config: ConfigLike | None,
    events: Iterable[EventLike],
    profiles: Iterable[ProfileLike],
    lists: Iterable[ListEntry | Mapping[str, Any]],
    associations: Mapping[str, float] | None,
) -> dict[str, Any]:
    """The arguments of a simulation, as the server's and the local one take them."""
    return _query(rules=list(rules), config=config, events=list(events),
                  profiles=list(profiles), list_entries=list(lists),
                  associations=dict(associations or {}))


def simulate(sim: dict[str, Any]) -> Req[SimulationResult]:
    return _req("simulate", {"simulation": sim}, _json(SimulationResult))


def put_list_entry(entry: ListEntry | Mapping[str, Any]) -> Req[ListEntry]:
    return _req("put_list_entry", {"entry": entry}, _json(ListEntry))


def remove_list_entry(subject_id: str, kind: ListKind) -> Req[bool]:
    return _req("remove_list_entry", {"subject_id": subject_id, "kind": kind}, _json(bool))


def list_list_entries(
    kind: ListKind | None, subject_id: str | None, include_expired: bool, page_size: int,
    page_token: str,
) -> Req[Table]:
    q = _query(kind=kind, subject_id=subject_id, include_expired=include_expired,
               page_size=page_size, page_token=page_token)
    return _req("list_list_entries", {"query": q}, _page(table.LIST_ENTRIES))


def put_relations(relations: Iterable[Relation | Mapping[str, Any]]) -> Req[RelationsResult]:
    return _req("put_relations", {"relations": list(relations)}, _json(RelationsResult))


def remove_relations(keys: Iterable[RelationKey | Mapping[str, Any]]) -> Req[int]:
    return _req("remove_relations", {"keys": list(keys)}, _json(int))


def get_neighbors(
    subject_id: str, depth: int, kinds: Sequence[RelationKind], limit: int
) -> Req[Neighbors]:
    q = {"depth": depth, "kinds": list(kinds), "limit": limit}
    return _req("get_neighbors", {"subject_id": subject_id, "query": q}, _json(Neighbors))


def find_path(
    from_subject_id: str, to_subject_id: str, max_depth: int, kinds: Sequence[RelationKind]
) -> Req[Path]:
    args = {"from_subject_id": from_subject_id, "to_subject_id": to_subject_id,
            "max_depth": max_depth, "relation_kinds": list(kinds)}
    return _req("find_path", args, _json(Path))


def get_association(subject_id: str, depth: int, kinds: Sequence[RelationKind]) -> Req[Association]:
    args = {"subject_id": subject_id, "depth": depth, "relation_kinds": list(kinds)}
    return _req("get_association", args, _json(Association))
