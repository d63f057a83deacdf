"""credence.simulate runs the engine here and gives the node's numbers to the bit: the
same as the node's Simulate and as live scoring of the same events."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

import credence
from conftest import REPO, at, scored


def test_local_equals_server_equals_live(client: credence.Client, subject: str) -> None:
    rules = credence.load_rules(REPO / "scorer/rules/example.yaml")
    assert rules and all(isinstance(r, credence.Rule) for r in rules)
    config = client.get_config()
    live_rules = client.list_rules(status="active", page_size=1000).rules
    events = [
        credence.Event(f"{subject}-{i}", subject, "financial", at(i * 37.5),
                       event_subtype="late_payment", payload={"days_late": 10 + 13 * i})
        for i in range(6)
    ]
    local = credence.simulate(live_rules, config, events)
    remote = client.simulate(live_rules, config, events)
    # Identical but for the snapshots' `updated_at`, the clock time of each run.
    def timeless(r: credence.SimulationResult) -> credence.SimulationResult:
        return replace(r, snapshots=[replace(s, updated_at=None) for s in r.snapshots])

    assert timeless(local) == timeless(remote)
    client.publish_events(events)
    snapshot = scored(client, subject, len(events))
    (simulated,) = local.snapshots
    assert simulated.score == snapshot.score  # exact: same engine, same decay bits
    assert simulated.tier == snapshot.tier
    live = [c["new_score"] for c in client.explain_score(subject).changes]
    assert live == [c.new_score for c in local.changes]


def test_local_simulation_refuses_bad_rules_like_the_server(client: credence.Client) -> None:
    bad = credence.Rule("r", "financial", float("inf"))
    with pytest.raises(credence.InputError):
        credence.simulate([bad], None, [])
    rule = credence.Rule("r", "", 5.0)
    with pytest.raises(credence.InvalidArgument) as local:
        credence.simulate([rule], None, [])
    with pytest.raises(credence.InvalidArgument) as remote:
        client.simulate([rule], None, [])
    assert local.value.message == remote.value.message


def test_a_config_with_no_decay(subject: str) -> None:
    rule = credence.Rule("flat", "civic", 10.0)
    config = credence.ScoringConfig(half_life=timedelta(0))
    events = [credence.Event(f"{subject}-{i}", subject, "civic", at(i * 60)) for i in range(3)]
    result = credence.simulate([rule], config, events)
    assert [s.score for s in result.snapshots] == [1030.0]
    assert config.max_rule_window == timedelta(days=365)
