"""The producer: dicts, dataclasses and tables (pyarrow, pandas, polars); invalid rows are
outcomes of their own; close waits for every acknowledgement."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pyarrow as pa
import pytest

import credence
from conftest import at, late_payment, scored


def test_events_and_dicts(client: credence.Client, subject: str) -> None:
    with client.producer(batch_events=100, linger=timedelta(milliseconds=5)) as producer:
        assert producer.send(late_payment(f"{subject}-0", subject, 0)) == 1
        queued = producer.send(
            [{"event_id": f"{subject}-{i}", "subject_id": subject, "event_type": "financial",
              "event_subtype": "late_payment", "occurred_at": at(i), "payload": {"days_late": 10}}
             for i in range(1, 200)]
        )
        assert queued == 199
        producer.send([late_payment(f"{subject}-0", subject, 0)])  # a duplicate
    with pytest.raises(credence.ClosedError):
        producer.stats()
    outcomes = producer.outcomes()
    assert [o.kind for o in outcomes] == ["duplicate"]
    assert outcomes[0].event_id == f"{subject}-0"
    assert scored(client, subject, 200).applied_events == 200


def test_a_dataframe_with_payload_columns(client: credence.Client, subject: str) -> None:
    n = 1000
    frame = pd.DataFrame({
        "event_id": [f"{subject}-{i}" for i in range(n)],
        "subject_id": subject,
        "event_type": "financial",
        "event_subtype": "late_payment",
        "occurred_at": pd.date_range(at(0), periods=n, freq="s", tz="UTC"),
        "days_late": [30 + i % 60 for i in range(n)],
    })
    with client.producer() as producer:
        assert producer.send(frame) == n
    snapshot = scored(client, subject, n)
    assert snapshot.applied_events == n
    stored = client.list_events(subject_id=subject, page_size=1)
    assert '"days_late"' in stored.to_pylist()[0]["payload"]


def test_invalid_rows_are_refused_alone(client: credence.Client, subject: str) -> None:
    table = pa.table({
        "event_id": [f"{subject}-a", None, f"{subject}-c"],
        "subject_id": [subject] * 3,
        "event_type": ["financial"] * 3,
        "event_subtype": ["late_payment"] * 3,
        "occurred_at": pa.array([at(0), at(1), at(2)], pa.timestamp("us", tz="UTC")),
        "payload": ['{"days_late": 40}', None, "not json"],
    })
    producer = client.producer()
    assert producer.send(table) == 1
    stats = producer.close()
    assert stats.accepted == 1
    outcomes = producer.outcomes()
    assert sorted((o.kind, o.index) for o in outcomes) == [("invalid", 1), ("invalid", 2)]
    assert "event_id" in outcomes[0].reason
    with pytest.raises(credence.ClosedError):
        producer.send(late_payment(f"{subject}-late", subject, 3))


def test_a_naive_time_column_refuses_the_table(client: credence.Client, subject: str) -> None:
    table = pa.table({
        "event_id": ["x"], "subject_id": [subject], "event_type": ["financial"],
        "occurred_at": pa.array([at(0).replace(tzinfo=None)], pa.timestamp("us")),
    })
    with client.producer() as producer, pytest.raises(credence.InputError, match="no time zone"):
        producer.send(table)


def test_a_node_rejection_is_an_outcome(client: credence.Client, subject: str) -> None:
    with client.producer() as producer:
        producer.send({"event_id": f"{subject}-r", "subject_id": subject, "event_type": "",
                       "occurred_at": at(0)})
    (outcome,) = producer.outcomes()
    assert outcome.kind == "rejected" and "event_type" in outcome.reason
