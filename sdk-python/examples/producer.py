"""Example: a synthetic population and a day of its events, published from a pandas
DataFrame through the producer, then the tier distribution. Run it against ``make dev``:

    python sdk-python/examples/producer.py --url http://127.0.0.1:50051
"""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta, timezone

import pandas as pd

import credence


def main() -> None:
    parser = argparse.ArgumentParser(description="publish synthetic events from a DataFrame")
    parser.add_argument("--url", default="http://127.0.0.1:50051")
    parser.add_argument("--subjects", type=int, default=1000)
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args()

    run = datetime.now(timezone.utc).strftime("%H%M%S")
    subjects = [f"SUBJ-EX-{run}-{i:05}" for i in range(args.subjects)]
    start = datetime.now(timezone.utc) - timedelta(days=1)
    events = pd.DataFrame({
        "event_id": [f"ex-{run}-{i}" for i in range(args.events)],
        "subject_id": [subjects[i % len(subjects)] for i in range(args.events)],
        "event_type": "financial",
        "event_subtype": ["late_payment" if i % 3 else "bill_paid" for i in range(args.events)],
        "occurred_at": pd.date_range(start, periods=args.events, freq="2s", tz="UTC"),
        "days_late": [(i * 7) % 90 for i in range(args.events)],
    })
    with credence.Client(args.url) as client:
        client.upsert_profiles(
            [credence.Profile(s, display_name=f"Synthetic {s[-5:]}", region="north") for s in subjects]
        )
        producer = client.producer()
        queued = producer.send(events)
        stats = producer.close()
        print(f"published {queued} events: {stats.accepted} accepted, {stats.duplicates} duplicates")
        for outcome in producer.outcomes():
            print(f"not accepted: {outcome}")
        for tier in client.get_tier_distribution().tiers:
            print(f"tier {tier.tier}: {tier.subjects} subjects")


if __name__ == "__main__":
    main()
