"""Credence Python SDK: a typed client for the Credence event-scoring platform (synthetic
data only), over the Rust SDK.

    import credence
    with credence.Client("http://127.0.0.1:50051") as client:
        print(client.get_score("subject-0001"))

``Client`` blocks (and leaves a notebook's event loop alone); ``AsyncClient`` is for
asyncio. Tabular results are ``Table`` objects that pyarrow, polars, DuckDB and pandas
read directly. ``simulate`` runs the scoring engine locally.
"""

from ._native import __version__
from ._requests import Explanation, Scores
from .client import (
    AlertWatch,
    AsyncAlertWatch,
    AsyncClient,
    AsyncProducer,
    Client,
    Producer,
    RetryConfig,
)
from .errors import (
    Aborted,
    AlreadyExists,
    ClosedError,
    ConnectError,
    CredenceError,
    DeadlineExceeded,
    FailedPrecondition,
    ForkError,
    InputError,
    Internal,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ProtocolError,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
    Unimplemented,
)
from .local import load_config, load_rules, simulate
from .table import Table
from .types import (
    Alert,
    Association,
    Cap,
    Condition,
    Event,
    EventResult,
    ListEntry,
    Location,
    Multiplier,
    Neighbor,
    Neighbors,
    Outcome,
    Path,
    PathStep,
    ProducerStats,
    Profile,
    PublishResult,
    Relation,
    RelationKey,
    RelationsResult,
    Rule,
    RuleList,
    ScoreChange,
    ScoreSnapshot,
    ScoringConfig,
    SimulationResult,
    SubjectView,
    Tier,
    TierCount,
    TierDistribution,
    UpsertResult,
)

__all__ = [
    "Aborted", "Alert", "AlertWatch", "AlreadyExists", "Association", "AsyncAlertWatch",
    "AsyncClient", "AsyncProducer", "Cap", "Client", "ClosedError", "Condition",
    "ConnectError", "CredenceError", "DeadlineExceeded", "Event", "EventResult",
    "Explanation", "FailedPrecondition", "ForkError", "InputError", "Internal",
    "InvalidArgument", "ListEntry", "Location", "Multiplier", "Neighbor", "Neighbors",
    "NotFound", "Outcome", "Path", "PathStep", "PermissionDenied", "Producer",
    "ProducerStats", "Profile", "ProtocolError", "PublishResult", "Relation", "RelationKey",
    "RelationsResult", "ResourceExhausted", "RetryConfig", "Rule", "RuleList", "ScoreChange",
    "ScoreSnapshot", "Scores", "ScoringConfig", "SimulationResult", "SubjectView", "Table",
    "Tier", "TierCount", "TierDistribution", "Unauthenticated", "Unavailable",
    "Unimplemented", "UpsertResult", "__version__", "load_config", "load_rules", "simulate",
]
