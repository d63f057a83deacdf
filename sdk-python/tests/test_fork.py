"""fork(): a client made before it is refused in the child, with a clear error, and a new
client made in the child works; nothing hangs."""

from __future__ import annotations

import multiprocessing as mp
import os

import pytest

import credence


def _child(url: str, parent: credence.Client, queue: "mp.Queue[str]") -> None:
    try:
        parent.get_config()
        queue.put("inherited client worked")
    except credence.ForkError as e:
        queue.put(f"refused: {e.message}")
    with credence.Client(url) as fresh:
        queue.put(f"fresh: {len(fresh.get_config().tiers)} tiers")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() here")
def test_fork_refuses_inherited_clients_and_allows_new_ones(client: credence.Client, url: str) -> None:
    client.get_config()  # the parent's runtime and connection are in use
    ctx = mp.get_context("fork")
    queue: mp.Queue[str] = ctx.Queue()
    child = ctx.Process(target=_child, args=(url, client, queue))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == 0, "the child hung or failed"
    first, second = queue.get(timeout=5), queue.get(timeout=5)
    assert first.startswith("refused: ") and "fork()" in first, first
    assert second.startswith("fresh: ") and not second.endswith(" 0 tiers"), second
    assert client.get_config().tiers  # the parent is unharmed
