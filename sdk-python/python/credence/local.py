"""The scoring engine run here, with no server: ``simulate`` gives the numbers a node
gives for the same rules, config and events, to the bit; ``load_rules`` reads a rule file."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

from . import _native
from . import _requests as rq
from ._codec import decode, dumps
from ._requests import ConfigLike, EventLike, ProfileLike, RuleLike
from .errors import native_errors
from .types import ListEntry, Rule, ScoringConfig, SimulationResult

__all__ = ["load_config", "load_rules", "simulate"]


def simulate(
    rules: Iterable[RuleLike],
    config: ConfigLike | None,
    events: Iterable[EventLike],
    *,
    profiles: Iterable[ProfileLike] = (),
    lists: Iterable[ListEntry | Mapping[str, Any]] = (),
    associations: Mapping[str, float] | None = None,
) -> SimulationResult:
    """Scores ``events`` with ``rules`` and ``config`` (``None``: the default config) in
    this process. A bad input raises ``InvalidArgument`` with the message a node would send."""
    sim = rq.simulation(rules, config, events, profiles, lists, associations)
    with native_errors():
        text = _native.simulate(dumps(sim))
    return decode(SimulationResult, json.loads(text))


def _rule_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    with native_errors():
        result: dict[str, Any] = json.loads(_native.load_rule_file(os.fspath(path)))
    return result


def load_rules(path: str | os.PathLike[str]) -> list[Rule]:
    """The rules of a YAML rule file (``scorer/rules/example.yaml`` is one)."""
    return [decode(Rule, r) for r in _rule_file(path)["rules"]]


def load_config(path: str | os.PathLike[str]) -> ScoringConfig | None:
    """The scoring config of a rule file, if it has one."""
    config = _rule_file(path).get("config")
    return None if config is None else decode(ScoringConfig, config)
