"""The door's counters in SQLite: one decision at a time across threads and processes, and nothing kept for long."""

import multiprocessing
import sqlite3
import stat

import pytest

from nbhosting_core import Busy
from nbhosting_core.system.counters import SqliteCounters
from nbhosting_core.throttle import Counts, Need, Rate, Requester, ThrottlePolicy, buckets, decide

NOW = 1_000_000.0
POLICY = ThrottlePolicy(
    platform=Rate(burst=7, per_minute=1),
    client=Rate(burst=100, per_minute=60),
    max_running=1000,
    cap_retry_after=30,
    claim_ttl=60,
)


def create(counters, server, *, now=NOW, address="203.0.113.7", running=frozenset()):
    rates = buckets(POLICY, Requester("edx", address))
    return counters.settle(
        now=now,
        buckets=list(rates),
        claim=server,
        ttl=POLICY.claim_ttl,
        decide=lambda counts: decide(
            POLICY, Need.CREATE, server=server, rates=rates, counts=counts, running=running, now=now
        ),
    )


def test_an_allowed_decision_is_stored_and_a_refused_one_leaves_no_trace(tmp_path):
    counters = SqliteCounters(tmp_path / "throttle" / "counters.sqlite")
    assert create(counters, "s1").allowed
    after_one = counters.counts(now=NOW, ttl=60)
    assert set(after_one.tats) == {"platform:edx", "client:203.0.113.7"} and set(after_one.claims) == {"s1"}
    for i in range(6):
        assert create(counters, f"s{i + 2}").allowed
    before = counters.counts(now=NOW, ttl=60)
    refused = create(counters, "s9")
    assert not refused.allowed and refused.why == "platform:edx"
    assert counters.counts(now=NOW, ttl=60) == before  # no claim, nothing drawn


def test_the_file_is_root_only_and_in_wal_mode(tmp_path):
    counters = SqliteCounters(tmp_path / "throttle" / "counters.sqlite")
    create(counters, "s1")
    assert stat.S_IMODE(counters.path.stat().st_mode) == 0o600
    assert stat.S_IMODE(counters.path.parent.stat().st_mode) == 0o700
    with sqlite3.connect(counters.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_full_buckets_and_expired_claims_are_forgotten(tmp_path):
    counters = SqliteCounters(tmp_path / "counters.sqlite")
    create(counters, "old", address="198.51.100.1")
    later = NOW + 3600  # every bucket is full again, the claim long expired
    create(counters, "new", now=later, address="198.51.100.2")
    with sqlite3.connect(counters.path) as db:
        assert [r[0] for r in db.execute("SELECT name FROM buckets ORDER BY name")] == [
            "client:198.51.100.2",
            "platform:edx",
        ]
        assert [r[0] for r in db.execute("SELECT server FROM claims")] == ["new"]


def test_a_released_claim_counts_no_more(tmp_path):
    counters = SqliteCounters(tmp_path / "counters.sqlite")
    create(counters, "s1")
    counters.release("s1")
    assert counters.counts(now=NOW, ttl=60).claims == {}


def test_unusable_counters_refuse_with_busy_rather_than_let_everything_in(tmp_path):
    path = tmp_path / "counters.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    path.chmod(0o600)
    with pytest.raises(Busy) as caught:
        create(SqliteCounters(path), "s1")
    assert caught.value.why == "counters" and caught.value.retry_after > 0


def _many(path, worker, attempts, results):
    counters = SqliteCounters(path)
    allowed = sum(create(counters, f"w{worker}-{i}", address=f"198.51.100.{worker}").allowed for i in range(attempts))
    results.put(allowed)


def test_processes_deciding_at_once_allow_exactly_the_burst(tmp_path):
    path = tmp_path / "counters.sqlite"
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    workers = [context.Process(target=_many, args=(path, w, 10, results)) for w in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
        assert w.exitcode == 0
    assert sum(results.get(timeout=5) for _ in workers) == POLICY.platform.burst
    assert len(SqliteCounters(path).counts(now=NOW, ttl=60).claims) == POLICY.platform.burst


def test_counts_of_a_host_that_never_counted_are_empty(tmp_path):
    assert SqliteCounters(tmp_path / "none.sqlite").counts(now=NOW, ttl=60) == Counts()


def test_a_decision_that_raises_leaves_the_counters_as_they_were(tmp_path):
    counters = SqliteCounters(tmp_path / "counters.sqlite")
    create(counters, "s1")
    before = counters.counts(now=NOW, ttl=60)

    def broken(counts):
        raise RuntimeError("the backend could not be read")

    with pytest.raises(RuntimeError):
        counters.settle(now=NOW, buckets=["platform:edx"], claim="s2", ttl=60, decide=broken)
    assert counters.counts(now=NOW, ttl=60) == before
    assert create(counters, "s3").allowed  # and the next decision goes on


def test_counters_whose_file_was_replaced_are_read_from_the_new_file(tmp_path):
    path = tmp_path / "counters.sqlite"
    counters = SqliteCounters(path)
    create(counters, "s1")
    for leftover in tmp_path.glob("counters.sqlite*"):
        leftover.unlink()  # e.g. RUN_DIR emptied under a running app
    other = SqliteCounters(path)  # another process, after
    create(other, "s2")
    assert set(counters.counts(now=NOW, ttl=60).claims) == {"s2"}  # both see one file
