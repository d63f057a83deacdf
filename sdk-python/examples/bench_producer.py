"""Benchmark: publishing events through the Python SDK's producer (``make bench-python``
runs it against a release node, after the Rust ``bench_producer`` measured the node's raw
``StreamEvents`` rate on the same node).

Each round builds ``--events`` synthetic events as an Arrow table (``--mode table``: no
Python per event on the hot path) or as a list of dicts (``--mode dicts``, for contrast),
then times ``producer.send`` through ``close`` (every acknowledgement in). Before each
round the node is left to finish scoring what it was sent, so no round inherits a backlog.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pyarrow as pa

import credence


def stored(client: credence.Client) -> int:
    rows = client.run_analytics("select count(*) as n from events").to_pylist()
    return int(rows[0]["n"])


def wait_for(client: credence.Client, total: int) -> None:
    deadline = time.monotonic() + 600
    while stored(client) < total:
        if time.monotonic() > deadline:
            raise SystemExit(f"the node did not store {total} events in 10 minutes")
        time.sleep(0.25)


def table(prefix: str, n: int, start: datetime) -> pa.Table:
    base = int(start.timestamp() * 1_000_000)
    return pa.table({
        "event_id": [f"{prefix}-{i}" for i in range(n)],
        "subject_id": [f"SUBJ-PYBENCH-{i % 10_000:05}" for i in range(n)],
        "event_type": ["financial"] * n,
        "event_subtype": ["late_payment"] * n,
        "occurred_at": pa.array(range(base, base + n), pa.int64()).cast(pa.timestamp("us", tz="UTC")),
        "days_late": [10 + i % 80 for i in range(n)],
    })


def dicts(prefix: str, n: int, start: datetime) -> list[dict[str, Any]]:
    return [
        {"event_id": f"{prefix}-{i}", "subject_id": f"SUBJ-PYBENCH-{i % 10_000:05}",
         "event_type": "financial", "event_subtype": "late_payment",
         "occurred_at": start + timedelta(microseconds=i), "payload": {"days_late": 10 + i % 80}}
        for i in range(n)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:50051")
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mode", choices=["table", "dicts"], default="table")
    args = parser.parse_args()

    client = credence.Client(args.url, timeout=timedelta(seconds=60))
    total = stored(client)
    start = datetime.now(timezone.utc) - timedelta(hours=12)
    rates = []
    for round_ in range(args.rounds):
        wait_for(client, total)
        prefix = f"py{int(time.time())}r{round_}"
        at = start + timedelta(seconds=round_ * 3600)
        data: Any = table(prefix, args.events, at) if args.mode == "table" else dicts(prefix, args.events, at)
        began = time.perf_counter()
        producer = client.producer()
        producer.send(data)
        stats = producer.close()
        elapsed = time.perf_counter() - began
        rates.append(args.events / elapsed)
        total += stats.accepted
        print(f"python {args.mode:<6} {args.events:>9} events in {elapsed:6.2f} s = "
              f"{args.events / elapsed:>9.0f} events/s ({stats.accepted} accepted, "
              f"{stats.rejected} rejected)", flush=True)
    print(f"median of {args.rounds} rounds: python {args.mode} {statistics.median(rates):.0f}/s")


if __name__ == "__main__":
    main()
