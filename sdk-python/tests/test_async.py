"""The asyncio client: the same calls, awaited."""

from __future__ import annotations

import asyncio

import pytest

import credence
from conftest import late_payment


def test_async_client_publishes_reads_and_raises(url: str, subject: str) -> None:
    async def run() -> None:
        async with await credence.AsyncClient.connect(url) as client:
            result = await client.publish_events([late_payment(f"{subject}-1", subject, 0)])
            assert result.accepted == 1
            for _ in range(200):
                try:
                    snapshot = await client.get_score(subject)
                    break
                except credence.NotFound:
                    await asyncio.sleep(0.1)
            else:
                raise AssertionError("never scored")
            assert snapshot.applied_events == 1
            explanation, history = await asyncio.gather(
                client.explain_score(subject), client.get_score_history(subject)
            )
            assert len(explanation.changes) >= 1 and len(history) == 1
            config = await client.get_config()
            assert config.tiers
            with pytest.raises(credence.NotFound):
                await client.get_score(f"{subject}-nobody")

            async with await client.producer(linger=None) as producer:
                await producer.send([late_payment(f"{subject}-p{i}", subject, i + 1) for i in range(50)])
                await producer.flush()
                assert producer.stats().accepted == 50
            assert producer.outcomes() == []

    asyncio.run(run())


def test_async_connect_error(url: str) -> None:
    async def run() -> None:
        with pytest.raises(credence.ConnectError):
            await credence.AsyncClient.connect("http://127.0.0.1:9")

    asyncio.run(run())
