"""Alerts stream as scores cross tiers, blocking and awaited."""

from __future__ import annotations

import asyncio
import time

import credence
from conftest import at


def bankruptcy(event_id: str, subject_id: str) -> credence.Event:
    return credence.Event(event_id, subject_id, "financial", at(0), event_subtype="bankruptcy")


def test_watch_alerts_blocking(client: credence.Client, subject: str) -> None:
    with client.watch_alerts(subject_ids=[subject]) as watch:
        # The server registers the watcher as the stream opens; give it a moment.
        time.sleep(0.5)
        assert watch.next(timeout=0.2) is None
        client.publish_events([bankruptcy(f"{subject}-b", subject)])
        alert = watch.next(timeout=20)
    assert alert is not None, "no alert within 20 s"
    assert alert.subject_id == subject and alert.old_tier != alert.new_tier
    assert alert.new_score < alert.old_score


def test_watch_alerts_async(url: str, subject: str) -> None:
    async def run() -> credence.Alert | None:
        async with await credence.AsyncClient.connect(url) as client:
            watch = await client.watch_alerts(subject_ids=[subject])
            await asyncio.sleep(0.5)
            await client.publish_events([bankruptcy(f"{subject}-b", subject)])
            alert = await watch.next(timeout=20)
            watch.close()
            return alert

    alert = asyncio.run(run())
    assert alert is not None and alert.subject_id == subject
