"""What a /metrics scrape costs with many stored events: a worker's first scrape, and the next ones.

Run from the repository root (no root needed, nothing outside a throwaway folder is touched):

    /opt/nbhosting/venv/bin/python -m bench.bench_metrics [--events 1000000] [--new 100]

Stores ``--events`` synthetic events (every kind, 5,000 students, one every half second) straight into a fresh
SQLite database (migrated, as the app's), then times the host's figures as Prometheus gets them (the collector of
``nbhosting_server.metrics``, rendered in the text format): a fresh worker's first scrape (it adds up the whole
table), a scrape with nothing new, and one after ``--new`` events were stored. A second fresh worker then checks
that it shows the same figures.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import Engine, insert

from nbhosting_core.db import open_database
from nbhosting_core.db.engine import sqlite_url
from nbhosting_core.db.schema import events
from nbhosting_core.events import EventJournal
from nbhosting_core.figures import HostFigures
from nbhosting_server.metrics import HostCollector

START = 1.7e9
KINDS = ["open"] * 5 + ["failure", "ready", "ready", "cull", "sample", "stop"]


def store(engine: Engine, first: int, count: int, rng: random.Random) -> None:
    """``count`` synthetic events, offsets from ``first`` (50,000 per transaction)."""
    rows: list[dict[str, Any]] = []
    for i in range(first, first + count):
        kind = rng.choice(KINDS)
        rows.append(
            {
                "source": "2023-11-14.jsonl",
                "offset": i,
                "time": START + i * 0.5,
                "kind": kind,
                "course": "demo",
                "student_id": f"s{rng.randrange(5000)}",
                "action": rng.choice(["create", "start", "reuse", "replace"]),
                "reason": rng.choice(["idle", "busy", "not-found", "max-age"]),
                "duration": None if kind in ("cull", "stop", "sample") else rng.expovariate(0.2),
            }
        )
        if len(rows) == 50_000 or i == first + count - 1:
            with engine.begin() as connection:
                connection.execute(insert(events), rows)
            rows.clear()


def scrape(registry: CollectorRegistry) -> tuple[float, bytes]:
    started = time.perf_counter()
    body = generate_latest(registry)
    return time.perf_counter() - started, body


def worker(journal: EventJournal, engine: Engine, now: float) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    figures = HostFigures(journal, list, database=engine, clock=lambda: now, max_age=0)
    registry.register(HostCollector(figures))
    return registry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--new", type=int, default=100)
    args = parser.parse_args()
    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as folder:
        engine = open_database(sqlite_url(Path(folder) / "nbhosting.sqlite"))
        started = time.perf_counter()
        store(engine, 0, args.events, rng)
        print(f"{args.events:,} events stored in {time.perf_counter() - started:.1f}s")
        journal = EventJournal(Path(folder) / "events")  # empty: nothing to ingest
        now = START + args.events * 0.5 + 10
        one = worker(journal, engine, now)
        first, _ = scrape(one)
        print(f"a fresh worker's first scrape: {first:.3f}s")
        idle, _ = scrape(one)
        print(f"the next scrape, nothing new: {idle * 1000:.1f} ms")
        store(engine, args.events, args.new, rng)
        new, body = scrape(one)
        print(f"the next scrape, {args.new} new events: {new * 1000:.1f} ms")
        later, other = scrape(worker(journal, engine, now))
        print(f"another fresh worker: {later:.3f}s, the same figures: {body == other}")


if __name__ == "__main__":
    main()
