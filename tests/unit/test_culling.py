"""The culling policy, as a spec: who is stopped, who is kept, and why."""

import pytest

from nbhosting_core import CullPolicy, CullReason, Server, ServerActivity, ServerState, should_cull
from nbhosting_core.culling import Culler, last_seen

HOUR = 3600.0
POLICY = CullPolicy(idle_timeout=2 * HOUR, max_age=24 * HOUR, max_age_idle=600)
NOW = 1_000_000.0


def server(started_ago: float, state=ServerState.RUNNING):
    return Server(
        name="s",
        course="c",
        student_id="x",
        user="u",
        uid=1,
        key="k" * 40,
        image="i",
        state=state,
        started_at=NOW - started_ago,
    )


def decide(started_ago, *, proxied_ago=None, jupyter_ago=None, busy=0):
    activity = None
    if jupyter_ago is not None or busy:
        activity = ServerActivity(
            last_activity=NOW - jupyter_ago if jupyter_ago is not None else None,
            kernels=max(busy, 1),
            busy_kernels=busy,
        )
    proxied = NOW - proxied_ago if proxied_ago is not None else None
    return should_cull(server(started_ago), now=NOW, proxied=proxied, activity=activity, policy=POLICY)


def test_a_server_nobody_touched_since_its_start_is_stopped_after_the_idle_timeout():
    assert not decide(2 * HOUR - 1).cull
    stopped = decide(2 * HOUR)
    assert stopped.cull and stopped.reason is CullReason.IDLE and stopped.idle_seconds == 2 * HOUR


def test_a_student_reading_with_no_kernel_is_kept_while_their_page_makes_requests():
    kept = decide(5 * HOUR, proxied_ago=60)
    assert not kept.cull and kept.reason is CullReason.ACTIVE and kept.idle_seconds == 60


def test_kernel_activity_reported_by_jupyter_counts_as_activity():
    assert not decide(5 * HOUR, proxied_ago=4 * HOUR, jupyter_ago=30 * 60).cull
    assert decide(5 * HOUR, proxied_ago=4 * HOUR, jupyter_ago=3 * HOUR).cull


def test_a_long_computation_is_never_idle():
    kept = decide(20 * HOUR, proxied_ago=19 * HOUR, jupyter_ago=19 * HOUR, busy=1)
    assert not kept.cull and kept.reason is CullReason.BUSY


def test_an_old_server_is_restarted_at_its_next_idle_moment_only():
    assert not decide(25 * HOUR, proxied_ago=60).cull  # in use: not now
    restarted = decide(25 * HOUR, proxied_ago=601)
    assert restarted.cull and restarted.reason is CullReason.MAX_AGE
    assert not decide(23 * HOUR, proxied_ago=601).cull  # young enough: an idle moment is not a reason


def test_even_an_old_server_is_kept_while_a_kernel_computes():
    assert not decide(30 * HOUR, proxied_ago=2 * HOUR, busy=2).cull


def test_a_server_that_is_not_running_is_left_alone():
    decision = should_cull(server(10 * HOUR, ServerState.STOPPED), now=NOW, proxied=None, activity=None, policy=POLICY)
    assert not decision.cull and decision.reason is CullReason.NOT_RUNNING


def test_last_seen_is_the_latest_sign_of_life_and_ignores_unknowns():
    s = server(100)
    assert last_seen(s, None, None) == NOW - 100
    assert last_seen(s, NOW - 10, ServerActivity(last_activity=NOW - 50)) == NOW - 10
    assert last_seen(s, None, ServerActivity(last_activity=NOW - 5)) == NOW - 5


def test_policy_comes_from_the_settings():
    from nbhosting_core import Settings

    policy = CullPolicy.from_settings(Settings(idle_timeout=60, max_age=120, max_age_idle=30))
    assert (policy.idle_timeout, policy.max_age, policy.max_age_idle) == (60, 120, 30)


@pytest.mark.parametrize("workers", [2, 5])
def test_exactly_one_culler_leads_whatever_the_number_of_workers(tmp_path, workers):
    passes = []
    cullers = [
        Culler(lambda i=i: passes.append(i) or [], lock_path=tmp_path / "culler.lock", interval=60)
        for i in range(workers)
    ]
    try:
        for culler in cullers:
            culler.run_once()
        assert sum(c.is_leader for c in cullers) == 1 and len(passes) == 1
        leader = next(c for c in cullers if c.is_leader)
        leader.stop()  # the leader goes away: another takes over at its next attempt
        for culler in cullers:
            if culler is not leader:
                culler.run_once()
        assert sum(c.is_leader for c in cullers) == 1 and len(passes) == 2
    finally:
        for culler in cullers:
            culler.stop()
