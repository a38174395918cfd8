"""Workspace quotas: what the hub asks of them, and the measured mode (the loop mode runs for real in
tests/integration/test_quota.py)."""

from __future__ import annotations

import os

import nbformat
import pytest
from nbformat.v4 import new_notebook

from nbhosting_core import FakeAccounts, FakeBackend, Hub, OverQuota, ServerState, Settings, SubprocessRunner
from nbhosting_core.system.quota import LoopQuota, MeasuredQuota, NoQuota, quota_for


class RecordingQuota(NoQuota):
    """Says what the hub asked, in order; over quota on demand."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.calls: list[tuple[str, str]] = []
        self.over: set[str] = set()

    def prepare(self, account):
        self.calls.append(("prepare", account.user))

    def check(self, account):
        self.calls.append(("check", account.user))
        if account.user in self.over:
            raise OverQuota("full", log_detail=account.user)

    def release(self, user):
        self.calls.append(("release", user))
        return True

    def held(self):
        return sorted({u for verb, u in self.calls if verb == "prepare"} - {u for v, u in self.calls if v == "release"})


@pytest.fixture
def env(tmp_path):
    settings = Settings(data_root=tmp_path / "data", run_dir=tmp_path / "run")
    (settings.courses_dir / "c").mkdir(parents=True)
    nbformat.write(new_notebook(), str(settings.courses_dir / "c" / "a.ipynb"))
    (settings.courses_dir / "d").mkdir(parents=True)
    nbformat.write(new_notebook(), str(settings.courses_dir / "d" / "a.ipynb"))
    quota = RecordingQuota(settings)
    backend = FakeBackend()
    hub = Hub(settings, backend=backend, accounts=FakeAccounts(settings.students_dir), quota=quota)
    return hub, quota, backend


def test_the_students_storage_is_prepared_and_checked_before_anything_is_copied_or_started(env):
    hub, quota, backend = env
    launch = hub.open_notebook("c", "a.ipynb", "alice")
    assert quota.calls == [("prepare", launch.user), ("check", launch.user)]
    assert backend.journal == [("create", launch.container)]


def test_a_student_over_quota_gets_no_new_copy_and_no_server(env):
    hub, quota, backend = env
    user = hub.open_notebook("c", "a.ipynb", "alice").user
    hub.remove(f"{user}-c")
    quota.over.add(user)
    with pytest.raises(OverQuota):
        hub.open_notebook("d", "a.ipynb", "alice")
    assert backend.list_servers() == []
    assert not (hub.settings.students_dir / user / "d").exists()


def test_storage_is_released_only_once_none_of_the_students_servers_runs(env):
    hub, quota, _ = env
    first = hub.open_notebook("c", "a.ipynb", "alice")
    second = hub.open_notebook("d", "a.ipynb", "alice")
    hub.stop(first.container)
    assert ("release", first.user) not in quota.calls  # the other course's server still runs
    hub.stop(second.container)
    assert quota.calls[-1] == ("release", first.user)


def test_reconcile_releases_storage_held_for_no_running_server(env):
    hub, quota, backend = env
    launch = hub.open_notebook("c", "a.ipynb", "alice")
    backend.crash(launch.container)  # died without the hub knowing
    report = hub.reconcile()
    assert ("release", launch.user) in quota.calls and f"resources of {launch.user}" in report.cleared


def test_with_measured_usage_the_culler_stops_a_student_over_quota(tmp_path):
    settings = Settings(data_root=tmp_path / "data", run_dir=tmp_path / "run", workspace_quota=16 * 2**20)
    (settings.courses_dir / "c").mkdir(parents=True)
    nbformat.write(new_notebook(), str(settings.courses_dir / "c" / "a.ipynb"))
    quota = MeasuredQuota(settings, SubprocessRunner())
    backend = FakeBackend()
    hub = Hub(settings, backend=backend, accounts=FakeAccounts(settings.students_dir), quota=quota)
    launch = hub.open_notebook("c", "a.ipynb", "alice")
    assert not any(d.cull for d in hub.cull())
    with open(settings.students_dir / launch.user / "c" / "big.bin", "wb") as out:
        out.write(os.urandom(17 * 2**20))
    used, limit = quota.usage(launch.user)
    assert used is not None and used > limit
    [decision] = hub.cull()
    assert decision.cull and decision.reason.value == "over-quota"
    assert backend.list_servers()[0].state is ServerState.STOPPED
    with pytest.raises(OverQuota) as refused:
        hub.open_notebook("c", "a.ipynb", "alice")
    assert "MiB" in refused.value.message and (settings.students_dir / launch.user / "c" / "big.bin").exists()


def test_the_mode_follows_the_setting(tmp_path):
    runner = SubprocessRunner()
    assert isinstance(quota_for(Settings(quota_mode="off"), runner), NoQuota)
    assert isinstance(quota_for(Settings(quota_mode="measured"), runner), MeasuredQuota)
    assert isinstance(quota_for(Settings(quota_mode="loop"), runner), LoopQuota)
    auto = quota_for(Settings(quota_mode="auto"), runner)
    assert isinstance(auto, LoopQuota) == (os.geteuid() == 0 and os.path.exists("/dev/loop-control"))
