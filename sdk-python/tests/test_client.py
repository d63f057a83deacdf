"""Every method of the blocking client against a real node."""

from __future__ import annotations

from datetime import timedelta

import pyarrow as pa
import pytest

import credence
from conftest import at, late_payment, scored


def test_publish_score_and_explain(client: credence.Client, subject: str) -> None:
    client.upsert_profiles([credence.Profile(subject, display_name="Fake Person", region="north")])
    result = client.publish_events([late_payment(f"{subject}-1", subject, 0)])
    assert (result.accepted, result.duplicates, result.rejected) == (1, 0, 0)
    again = client.publish_events([late_payment(f"{subject}-1", subject, 0)])
    assert again.duplicates == 1

    snapshot = scored(client, subject, 1)
    assert snapshot.score < 1000.0 and snapshot.tier
    explanation = client.explain_score(subject)
    assert explanation.snapshot is not None and explanation.snapshot.score == snapshot.score
    changes = explanation.changes.to_pylist()
    assert changes and changes[0]["rule_id"] and changes[0]["delta"] < 0
    assert changes[-1]["new_score"] == snapshot.score

    view = client.get_profile(subject)
    assert view.profile is not None and view.profile.display_name == "Fake Person"
    assert view.snapshot is not None and view.snapshot.score == snapshot.score

    scores = client.batch_get_scores([subject, f"{subject}-nobody"])
    assert [s.subject_id for s in scores.snapshots] == [subject]
    assert scores.missing == [f"{subject}-nobody"]

    history = client.get_score_history(subject, all_pages=True)
    assert history.columns == ["at", "event_id", "score", "tier", "delta"]
    assert history.to_pylist()[-1]["score"] == snapshot.score
    assert pa.table(history).schema.field("at").type == pa.timestamp("ns", tz="UTC")

    events = client.list_events(subject_id=subject)
    assert [e["event_id"] for e in events] == [f"{subject}-1"]


def test_a_bad_event_is_rejected_alone(client: credence.Client, subject: str) -> None:
    good = late_payment(f"{subject}-ok", subject, 0)
    bad = {"event_id": f"{subject}-bad", "subject_id": subject, "event_type": "", "occurred_at": at()}
    result = client.publish_events([good, bad])
    assert (result.accepted, result.rejected) == (1, 1)
    rejected = [r for r in result.results if r.outcome == "rejected"]
    assert rejected[0].index == 1 and "event_type" in rejected[0].reason


def test_rules_and_config(client: credence.Client, subject: str) -> None:
    rule_id = f"py_rule_{subject[-8:]}"
    rule = credence.Rule(
        rule_id, "civic", 7.5, event_subtype="cleanup",
        conditions=[credence.Condition("payload.hours", "gte", 2)],
        multipliers=[credence.Multiplier(credence.Condition("payload.hours", "gt", 4), 2.0)],
        cooldown=timedelta(hours=1), cap=credence.Cap(3, timedelta(days=1)),
    )
    stored = client.put_rule(rule)
    assert stored.version >= 1 and stored.cooldown == timedelta(hours=1)
    assert stored.cap == credence.Cap(3, timedelta(days=1))
    assert client.get_rule(rule_id).points == 7.5
    assert rule_id in [r.id for r in client.list_rules(event_type="civic").rules]
    assert client.set_rule_status(rule_id, "retired").status == "retired"

    config = client.get_config()
    assert config.tiers and config.version >= 1
    same = client.get_config(config.version)
    assert same == config


def test_lists_graph_and_distribution(client: credence.Client, subject: str) -> None:
    other = f"{subject}-friend"
    entry = client.put_list_entry(credence.ListEntry(subject, "block", reason="synthetic test"))
    assert entry.kind == "block"
    listed = client.list_list_entries(subject_id=subject)
    assert [r["subject_id"] for r in listed] == [subject]
    assert client.remove_list_entry(subject, "block") is True
    assert client.remove_list_entry(subject, "block") is False

    put = client.put_relations([credence.Relation(subject, other, "friend", weight=0.5)])
    assert put.upserted == 1 and put.rejected == []
    neighbors = client.get_neighbors(subject, depth=1)
    assert [n.subject_id for n in neighbors.neighbors] == [other]
    path = client.find_path(subject, other, max_depth=2)
    assert path.found and path.steps[-1].subject_id == other
    association = client.get_association(subject, depth=1)
    assert association.attenuation >= 0.0
    assert client.remove_relations([credence.RelationKey(subject, other, "friend")]) == 1

    distribution = client.get_tier_distribution()
    assert distribution.total_subjects == sum(t.subjects for t in distribution.tiers)


def test_subjects_aggregates_and_analytics(client: credence.Client, subject: str) -> None:
    client.upsert_profiles([{"subject_id": subject, "region": "py-region"}])
    client.publish_events([late_payment(f"{subject}-1", subject, 0)])
    scored(client, subject, 1)
    subjects = client.list_subjects(region="py-region", all_pages=True)
    assert subject in [r["subject_id"] for r in subjects]
    aggregates = client.get_aggregates("day", "subject", at(-24 * 60), at(60), subject_id=subject)
    assert sum(r["events"] for r in aggregates) >= 1
    table = client.run_analytics(
        f"select count(*) as n from events where subject_id = '{subject}'"
    )
    assert table.to_pylist() == [{"n": 1}]


def test_tables_reach_pyarrow_polars_and_pandas(client: credence.Client, subject: str) -> None:
    client.publish_events([late_payment(f"{subject}-{i}", subject, i) for i in range(3)])
    scored(client, subject, 3)
    history = client.get_score_history(subject)
    import polars

    frame = polars.DataFrame(history)
    assert frame.height == 3 and frame.columns == history.columns
    assert pa.table(history).num_rows == 3
    df = history.to_pandas()
    assert list(df["score"]) == [r["score"] for r in history]


def test_errors_carry_code_and_message(client: credence.Client, url: str) -> None:
    with pytest.raises(credence.NotFound) as nf:
        client.get_score("SUBJ-PY-NOBODY-EVER")
    assert nf.value.code == "not_found" and nf.value.attempts == 1
    with pytest.raises(credence.InvalidArgument) as ia:
        client.run_analytics("delete from events")
    assert ia.value.message
    with pytest.raises(credence.InputError, match="naive datetime"):
        from datetime import datetime

        client.publish_events([credence.Event("e", "s", "t", datetime(2026, 1, 1))])
    with pytest.raises(credence.ConnectError):
        credence.Client("http://127.0.0.1:9", connect_timeout=timedelta(seconds=2))
    closed = credence.Client(url)
    closed.close()
    with pytest.raises(credence.ClosedError):
        closed.get_config()
