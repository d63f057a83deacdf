"""The SDK's data types: what is sent (events, profiles, rules, configs, list entries,
relations) and what comes back (snapshots, results, explanations...).

Every method that takes one of the input types also takes a plain ``dict`` of the same
fields. Times are timezone-aware ``datetime`` objects; durations are ``timedelta``.
Fields left at their default are not sent, so the server's defaults apply.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

RuleStatus = Literal["draft", "active", "retired"]
Operator = Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "contains", "exists"]
ListKind = Literal["block", "allow"]
RelationKind = Literal["family", "friend", "colleague", "neighbour", "classmate", "business_partner"]
AggregateWindow = Literal["hour", "day"]
AggregateGroupBy = Literal["subject", "region", "event_type"]


@dataclass
class Location:
    """Where an event happened."""

    region: str = ""
    district: str = ""
    lat: float = 0.0
    lon: float = 0.0


@dataclass
class Event:
    """Something that happened to a subject. ``event_id`` makes publishing idempotent."""

    event_id: str
    subject_id: str
    event_type: str
    occurred_at: datetime
    event_subtype: str = ""
    source_system: str = ""
    location: Location | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    evidence_uri: str = ""
    received_at: datetime | None = None


@dataclass
class Profile:
    """A (synthetic) subject's profile."""

    subject_id: str
    display_name: str = ""
    birth_year: int = 0
    region: str = ""
    district: str = ""
    occupation: str = ""
    flags: list[str] = field(default_factory=list)
    consent: dict[str, bool] = field(default_factory=dict)
    attributes: dict[str, str] = field(default_factory=dict)
    updated_at: datetime | None = None


@dataclass
class Condition:
    """A test on an event field (``payload.days_late``, ``event_subtype``...)."""

    field: str
    op: Operator
    value: Any = None


@dataclass
class Multiplier:
    """Multiplies a rule's points when its condition holds."""

    when: Condition
    factor: float


@dataclass
class Cap:
    """At most ``max`` applications of a rule per subject within ``window``."""

    max: int
    window: timedelta


@dataclass
class Rule:
    """A versioned scoring rule (see SCORING.md). It is ``active`` unless told otherwise
    (the Rust builder starts rules as drafts): a rule put from a notebook scores at once."""

    id: str
    event_type: str
    points: float
    version: int = 0
    name: str = ""
    description: str = ""
    status: RuleStatus = "active"
    event_subtype: str = ""
    conditions: list[Condition] = field(default_factory=list)
    multipliers: list[Multiplier] = field(default_factory=list)
    cooldown: timedelta | None = None
    cap: Cap | None = None
    valid_from: datetime | None = None
    valid_until: datetime | None = None
    priority: int = 0
    updated_at: datetime | None = None


@dataclass
class Tier:
    """A tier: scores at or above ``min_score`` (up to the next tier's) are in it."""

    name: str
    min_score: float


def _default_tiers() -> list[Tier]:
    return [Tier("E", 0.0), Tier("D", 600.0), Tier("C", 900.0), Tier("B", 1100.0), Tier("A", 1300.0)]


@dataclass
class ScoringConfig:
    """Baseline, bounds, tiers, decay and the rest of the scoring configuration. The
    defaults are the engine's (a node's first config); ``half_life=None`` turns decay off."""

    version: int = 0
    baseline: float = 1000.0
    min_score: float = 0.0
    max_score: float = 2000.0
    tiers: list[Tier] = field(default_factory=_default_tiers)
    half_life: timedelta | None = timedelta(days=90)
    alert_thresholds: list[float] = field(default_factory=lambda: [500.0])
    auto_create_subjects: bool = True
    dedup_horizon: timedelta | None = timedelta(days=30)
    dedup_window_events: int = 256
    max_rule_window: timedelta | None = timedelta(days=365)
    updated_at: datetime | None = None


@dataclass
class ScoreSnapshot:
    """A subject's score."""

    subject_id: str
    score: float
    tier: str
    last_event_time: datetime | None = None
    last_event_id: str = ""
    applied_events: int = 0
    config_version: int = 0
    updated_at: datetime | None = None


@dataclass
class ScoreChange:
    """One rule applied to one event: the delta and why."""

    event_id: str
    subject_id: str
    rule_id: str
    rule_version: int
    config_version: int
    old_score: float
    new_score: float
    delta: float
    at: datetime
    reason: str = ""
    inputs: dict[str, Any] = field(default_factory=dict)
    factor: float = 1.0


@dataclass
class Alert:
    """A subject crossed an alert threshold or changed tier."""

    subject_id: str
    event_id: str
    old_score: float
    new_score: float
    old_tier: str
    new_tier: str
    thresholds_crossed: list[float] = field(default_factory=list)
    at: datetime | None = None


@dataclass
class EventResult:
    """What became of one event of a publish call."""

    index: int
    event_id: str
    outcome: Literal["accepted", "duplicate", "rejected", "too_late"]
    reason: str = ""


@dataclass
class PublishResult:
    """Counts of a publish call, and each event's outcome."""

    accepted: int
    duplicates: int
    rejected: int
    results: list[EventResult] = field(default_factory=list)


@dataclass
class ProfileResult:
    """What became of one profile of an upsert call."""

    index: int
    subject_id: str
    outcome: Literal["created", "updated", "rejected"]
    reason: str = ""


@dataclass
class UpsertResult:
    """Counts of an upsert call, and each profile's outcome."""

    created: int
    updated: int
    rejected: int
    results: list[ProfileResult] = field(default_factory=list)


@dataclass
class SubjectView:
    """A subject's profile and score (either may be missing)."""

    profile: Profile | None = None
    snapshot: ScoreSnapshot | None = None


@dataclass
class TierCount:
    """Subjects in one tier."""

    tier: str
    min_score: float
    subjects: int


@dataclass
class TierDistribution:
    """Subjects per tier."""

    tiers: list[TierCount]
    total_subjects: int


@dataclass
class RuleList:
    """A page of rules."""

    rules: list[Rule]
    rule_set_version: int
    next_page_token: str | None = None


@dataclass
class ListEntry:
    """A subject on the block or allow list."""

    subject_id: str
    kind: ListKind
    reason: str = ""
    expires_at: datetime | None = None
    created_at: datetime | None = None


@dataclass
class Relation:
    """A relation between two subjects in the social graph."""

    subject_id: str
    other_subject_id: str
    kind: RelationKind
    weight: float = 1.0
    since: datetime | None = None


@dataclass
class RelationKey:
    """Which relation to remove."""

    subject_id: str
    other_subject_id: str
    kind: RelationKind


@dataclass
class RelationsResult:
    """Relations stored, and those refused as ``(index, reason)``."""

    upserted: int
    rejected: list[tuple[int, str]] = field(default_factory=list)


@dataclass
class Neighbor:
    """A subject reachable from another."""

    subject_id: str
    depth: int
    kind: RelationKind
    path_weight: float
    path: list[str] = field(default_factory=list)


@dataclass
class Neighbors:
    """The neighbourhood of a subject."""

    neighbors: list[Neighbor]
    truncated: bool = False


@dataclass
class PathStep:
    """One hop of a path."""

    subject_id: str
    kind: RelationKind
    weight: float


@dataclass
class Path:
    """The shortest path between two subjects, if any."""

    found: bool
    steps: list[PathStep] = field(default_factory=list)


@dataclass
class Contributor:
    """One neighbour's part in a subject's association score."""

    subject_id: str
    depth: int
    score: float
    deviation: float
    weight: float
    contribution: float


@dataclass
class Association:
    """How a subject's neighbourhood scores, and who contributes."""

    association: float
    contributors: list[Contributor] = field(default_factory=list)
    attenuation: float = 0.0


@dataclass
class SimulationResult:
    """A simulation's final scores, every change, the alerts and each event's outcome."""

    snapshots: list[ScoreSnapshot]
    changes: list[ScoreChange]
    alerts: list[Alert] = field(default_factory=list)
    results: list[EventResult] = field(default_factory=list)


@dataclass
class ProducerStats:
    """A producer's counts since it was made."""

    sent: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    failed: int = 0
    retries: int = 0


@dataclass
class Outcome:
    """An event a producer could not simply deliver. ``kind``: ``invalid`` (refused before
    sending; ``index`` is its position in the ``send`` call or row in the table),
    ``rejected`` (refused by the node), ``failed`` (not delivered after retries; sending it
    again is safe), ``duplicate`` (stored before)."""

    kind: Literal["invalid", "rejected", "failed", "duplicate"]
    reason: str
    event_id: str | None = None
    index: int | None = None
