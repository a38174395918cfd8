"""The door's limits, as a spec: which launches may make something now, and when the others may try again."""

import pytest

from nbhosting_core import Settings
from nbhosting_core.throttle import (
    Counts,
    Need,
    Rate,
    Requester,
    ThrottlePolicy,
    buckets,
    client_key,
    decide,
    default_max_running,
    gcra,
    retry_after_header,
)

NOW = 1_000_000.0
GiB = 2**30
POLICY = ThrottlePolicy(
    platform=Rate(burst=5, per_minute=60),
    client=Rate(burst=3, per_minute=2),
    max_running=4,
    cap_retry_after=30,
    claim_ttl=60,
)
ALICE = Requester(platform="edx", address="203.0.113.7")
NONE = Counts()


def launch(need=Need.CREATE, *, server="new", counts=NONE, running=frozenset(), now=NOW, requester=ALICE):
    rates = buckets(POLICY, requester) if requester else {}
    return decide(POLICY, need, server=server, rates=rates, counts=counts, running=running, now=now)


def burst(n, *, now=NOW, counts=NONE, requester=ALICE):
    """``n`` creations at ``now``, each stored as the counters would; the verdicts and the counts after."""
    verdicts = []
    for i in range(n):
        verdict = launch(server=f"s{i}", counts=counts, now=now, requester=requester)
        verdicts.append(verdict)
        if verdict.allowed:
            counts = Counts(tats={**counts.tats, **verdict.tats}, claims=counts.claims)
    return verdicts, counts


# --------------------------------------------------------------------------------------------- one bucket


def test_a_bucket_allows_its_burst_at_once_then_one_launch_per_interval():
    rate = Rate(burst=3, per_minute=2)  # one every 30 s
    tat = None
    for _ in range(3):
        allowed, tat, _ = gcra(tat, NOW, rate)
        assert allowed
    allowed, same, wait = gcra(tat, NOW, rate)
    assert not allowed and same == tat and wait == 30
    assert not gcra(tat, NOW + 29.9, rate)[0]
    assert gcra(tat, NOW + 30, rate)[0]


def test_a_bucket_left_alone_long_enough_is_full_again():
    rate = Rate(burst=3, per_minute=2)
    tat = None
    for _ in range(3):
        tat = gcra(tat, NOW, rate)[1]
    later = NOW + 3 * 30
    for _ in range(3):
        allowed, tat, _ = gcra(tat, later, rate)
        assert allowed
    assert not gcra(tat, later, rate)[0]


def test_a_bucket_never_saves_up_more_than_its_burst():
    rate = Rate(burst=2, per_minute=60)
    tat = gcra(None, NOW, rate)[1]
    a_day_later = NOW + 86400
    for _ in range(2):
        allowed, tat, _ = gcra(tat, a_day_later, rate)
        assert allowed
    assert not gcra(tat, a_day_later, rate)[0]


# --------------------------------------------------------------------------------------------- the rates


def test_creations_from_one_client_beyond_its_burst_are_refused_with_the_time_to_wait():
    verdicts, _ = burst(4)
    assert [v.allowed for v in verdicts] == [True, True, True, False]
    refused = verdicts[-1]
    assert refused.why == "client:203.0.113.7" and refused.retry_after == 30
    assert refused.tats == {}  # a refused launch draws nothing


def test_a_refused_creation_draws_from_no_bucket_so_the_platform_is_not_charged_for_it():
    _, counts = burst(3)
    refused = launch(counts=counts)
    assert not refused.allowed and refused.tats == {}
    other = launch(counts=counts, requester=Requester("edx", "198.51.100.1"))
    assert other.allowed  # the platform's bucket still holds what the refused launch did not take


def test_clients_are_counted_apart_but_all_draw_on_their_platform():
    counts = Counts()
    allowed = 0
    for i in range(10):
        verdict = launch(server=f"s{i}", counts=counts, requester=Requester("edx", f"198.51.100.{i}"))
        if verdict.allowed:
            allowed += 1
            counts = Counts(tats={**counts.tats, **verdict.tats})
        else:
            assert verdict.why == "platform:edx"
    assert allowed == 5  # the platform's burst, whatever the number of addresses


def test_platforms_are_counted_apart():
    counts = Counts()
    for i in range(5):
        verdict = launch(server=f"s{i}", counts=counts, requester=Requester("edx", f"198.51.100.{10 + i}"))
        counts = Counts(tats={**counts.tats, **verdict.tats})
    assert not launch(counts=counts, requester=Requester("edx", "198.51.100.2")).allowed
    assert launch(counts=counts, requester=Requester("moodle", "198.51.100.2")).allowed


def test_the_longest_wait_is_told_when_several_limits_refuse():
    counts = Counts(tats={"platform:edx": NOW + 4 * 1 + 10, "client:203.0.113.7": NOW + 3 * 30 + 5})
    verdict = launch(counts=counts)
    assert not verdict.allowed and verdict.why == "client:203.0.113.7" and verdict.retry_after == 35


def test_starting_a_stopped_server_draws_on_no_rate():
    _, counts = burst(3)
    assert not launch(counts=counts).allowed
    start = launch(Need.START, counts=counts)
    assert start.allowed and start.tats == {}


def test_a_launch_from_no_platform_an_admins_draws_on_no_rate():
    assert launch(requester=None).allowed and launch(requester=None).tats == {}


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("fe80::1%eth0", "fe80::/64"),
        ("testclient", "testclient"),
    ],
)
def test_an_ipv6_client_counts_by_its_64_and_an_ipv4_one_by_its_address(address, key):
    assert client_key(address) == key


# --------------------------------------------------------------------------------------------- the cap


def test_the_cap_refuses_a_new_server_when_that_many_run():
    running = frozenset({"a", "b", "c", "d"})
    verdict = launch(running=running)
    assert not verdict.allowed and verdict.why == "cap" and verdict.retry_after == 30
    assert verdict.in_use == 4 and verdict.max_running == 4
    assert launch(running=frozenset({"a", "b", "c"})).allowed


def test_the_cap_holds_for_a_start_too():
    assert not launch(Need.START, server="e", running=frozenset({"a", "b", "c", "d"})).allowed


def test_starts_admitted_a_moment_ago_count_until_they_show_as_running():
    claims = {"a": NOW - 1, "b": NOW - 2}
    verdict = launch(counts=Counts(claims=claims), running=frozenset({"c", "d"}))
    assert not verdict.allowed and verdict.in_use == 4


def test_a_claim_and_the_running_server_it_became_count_once():
    verdict = launch(counts=Counts(claims={"a": NOW - 1, "b": NOW - 1}), running=frozenset({"a", "b", "c"}))
    assert verdict.allowed and verdict.in_use == 3


def test_a_claim_older_than_the_start_timeout_no_longer_counts():
    verdict = launch(counts=Counts(claims={"a": NOW - 60}), running=frozenset({"b", "c", "d"}))
    assert verdict.allowed and verdict.in_use == 3


def test_a_launchs_own_earlier_claim_is_not_counted_against_it():
    verdict = launch(server="a", counts=Counts(claims={"a": NOW - 1}), running=frozenset({"b", "c", "d"}))
    assert verdict.allowed


def test_a_refusal_at_the_cap_draws_no_rate():
    verdict = launch(running=frozenset({"a", "b", "c", "d"}))
    assert not verdict.allowed and verdict.tats == {}


# --------------------------------------------------------------------------------------------- defaults


def test_by_default_the_cap_is_what_the_students_share_holds_at_what_a_server_typically_uses():
    assert default_max_running(24 * GiB, 0.85, 256 * 2**20) == 81
    assert default_max_running(64 * GiB, 0.85, 512 * 2**20) == 108
    assert default_max_running(1 * GiB, 0.5, 2 * GiB) == 1  # at least one
    assert default_max_running(1 * GiB, 0.85, 2 * GiB) == 1  # at least one


def test_the_policy_comes_from_the_settings():
    policy = ThrottlePolicy.from_settings(Settings(), mem_total=24 * GiB)
    assert policy.platform == Rate(300, 60) and policy.client == Rate(200, 2)
    assert policy.max_running == 130 and policy.cap_retry_after == 30 and policy.claim_ttl == 60
    assert ThrottlePolicy.from_settings(Settings(max_running=3), mem_total=24 * GiB).max_running == 3


def test_retry_after_is_whole_seconds_and_never_zero():
    assert retry_after_header(0.01) == 1 and retry_after_header(29.2) == 30 and retry_after_header(30) == 30


def test_by_default_a_lecture_of_100_behind_one_address_all_get_in_at_once_and_the_101st_later():
    """A lecture starts: 100 new students of one platform, behind one NAT'd address, in the same second."""
    settings = Settings()
    policy = ThrottlePolicy.from_settings(settings, mem_total=24 * GiB)
    lecture = Requester(platform="edx", address="198.51.100.1")
    tats: dict[str, float] = {}
    for i in range(100):
        rates = buckets(policy, lecture)
        running = frozenset(f"s{j}" for j in range(i))  # every one admitted before runs
        verdict = decide(
            policy, Need.CREATE, server=f"s{i}", rates=rates, counts=Counts(tats=tats), running=running, now=NOW
        )
        assert verdict.allowed, (i, verdict.why)
        tats.update(verdict.tats)
    # the address's burst is a hall's, not unbounded: past it, its sustained rate (2 a minute)
    for i in range(100, settings.creation_client_burst):
        tats.update(
            decide(
                policy, Need.CREATE, server=f"s{i}", rates=rates, counts=Counts(tats=tats), running=frozenset(), now=NOW
            ).tats
        )
    refused = decide(
        policy, Need.CREATE, server="late", rates=rates, counts=Counts(tats=tats), running=frozenset(), now=NOW
    )
    assert not refused.allowed and refused.why == "client:198.51.100.1" and refused.retry_after == pytest.approx(30)
