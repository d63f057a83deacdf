"""Fixtures: the node under test is at ``$CREDENCE_URL`` (``make test-python`` and the
Rust harness ``tests/tests/python_sdk.rs`` start one); subject ids are unique per test so
the tests share a node without seeing each other's data."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TypeVar

import pytest

import credence

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def url() -> str:
    value = os.environ.get("CREDENCE_URL")
    if not value:
        pytest.fail("set CREDENCE_URL to a running node (make test-python starts one)")
    return value


@pytest.fixture()
def client(url: str) -> Iterator[credence.Client]:
    with credence.Client(url, timeout=timedelta(seconds=20)) as c:
        yield c


@pytest.fixture()
def subject() -> str:
    return f"SUBJ-PY-{uuid.uuid4().hex[:12]}"


def at(minutes: float = 0) -> datetime:
    """A fixed past instant plus ``minutes``: inside the node's lateness window."""
    return datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=6) + timedelta(minutes=minutes)


def late_payment(event_id: str, subject_id: str, minutes: float, days_late: int = 45) -> credence.Event:
    return credence.Event(
        event_id, subject_id, "financial", at(minutes),
        event_subtype="late_payment", payload={"days_late": days_late},
    )


def eventually(check: Callable[[], T | None], timeout: float = 20.0) -> T:
    """Polls ``check`` until it answers something other than ``None``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout} s")
        time.sleep(0.1)


def scored(client: credence.Client, subject_id: str, events: int) -> credence.ScoreSnapshot:
    """The subject's snapshot once ``events`` events are applied."""

    def check() -> credence.ScoreSnapshot | None:
        try:
            s = client.get_score(subject_id)
        except credence.NotFound:
            return None
        return s if s.applied_events >= events else None

    return eventually(check)
