"""The automatic pull: every course_pull_interval seconds, the helper pulls every active course with a remote, in
one process per host; each result is recorded where `nbh course show` reads it."""

from __future__ import annotations

import shutil

import pytest

from nbhosting_core import FakeAccounts, FakeBackend, Hub, Settings
from nbhosting_core.helper.service import course_puller
from tests.gitrepos import course_repo, notebook_text


def hub_with(tmp_path, interval: float) -> Hub:
    settings = Settings(data_root=tmp_path / "data", run_dir=tmp_path / "run", course_pull_interval=interval)
    return Hub(settings, backend=FakeBackend(), accounts=FakeAccounts(settings.students_dir))


def test_it_is_off_by_default():
    assert Settings().course_pull_interval == 0


def test_with_an_interval_of_0_nothing_pulls(tmp_path):
    assert course_puller(hub_with(tmp_path, 0)) is None


def test_a_pass_pulls_every_active_course_with_a_remote_and_records_failures_too(tmp_path):
    hub = hub_with(tmp_path, 300)
    python = course_repo(tmp_path / "python")
    gone = course_repo(tmp_path / "gone")
    hub.courses.create("python", str(python.path))
    hub.courses.create("gone", str(gone.path))
    hub.courses.create("closed", str(course_repo(tmp_path / "closed").path))
    hub.courses.archive("closed")
    head = python.write("w9/new.ipynb", notebook_text("9")).commit("week 9")
    shutil.rmtree(gone.path)
    puller = course_puller(hub)
    assert puller is not None
    try:
        results = {r.course: r for r in puller.run_once()}
    finally:
        puller.stop()
    assert sorted(results) == ["gone", "python"]  # never the archived one
    assert results["python"].ok and results["python"].commit == head
    assert (hub.courses.path("python") / "w9" / "new.ipynb").is_file()
    assert not results["gone"].ok and hub.courses.show("gone").course.last_pull == results["gone"]


def test_one_process_per_host_pulls(tmp_path):
    hub = hub_with(tmp_path, 300)
    upstream = course_repo(tmp_path / "python")
    hub.courses.create("python", str(upstream.path))
    first, second = course_puller(hub), course_puller(hub)
    assert first is not None and second is not None
    try:
        assert first.try_lead() and len(first.run_once()) == 1
        assert second.run_once() == []  # the lock is held: it does nothing
    finally:
        first.stop()
        second.stop()


@pytest.mark.parametrize("interval", [-1])
def test_a_negative_interval_is_refused(interval):
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        Settings(course_pull_interval=interval)


def test_each_pull_is_logged_with_who_asked_and_how_long_it_took(tmp_path, caplog):
    hub = hub_with(tmp_path, 300)
    hub.courses.create("python", str(course_repo(tmp_path / "python").path))
    puller = course_puller(hub)
    assert puller is not None
    with caplog.at_level("INFO", logger="nbhosting_core.courses"):
        try:
            puller.run_once()
        finally:
            puller.stop()
        hub.courses.archive("python")
    pulled = [r.getMessage() for r in caplog.records if "pull ok" in r.getMessage()]
    assert len(pulled) == 1 and "(by the automatic pull) in " in pulled[0]
    assert any("python: archived (by uid" in r.getMessage() for r in caplog.records)


def test_doctor_says_which_courses_failed_their_last_pull_or_have_a_refused_configuration(tmp_path):
    from nbhosting_core.system.doctor import courses_check

    hub = hub_with(tmp_path, 300)
    good = course_repo(tmp_path / "good")
    gone = course_repo(tmp_path / "gone")
    hub.courses.create("good", str(good.path))
    hub.courses.create("gone", str(gone.path))
    assert (
        courses_check(hub.settings).ok
        and "2 active course(s), pulled every 300 s" in courses_check(hub.settings).detail
    )
    shutil.rmtree(gone.path)
    good.write(".nbhosting/course.toml", "ui = 3\n").commit("a typo")
    hub.courses.pull_all()
    check = courses_check(hub.settings)
    assert not check.ok and not check.required
    assert "last pull failed: gone" in check.detail and "course.toml refused: good" in check.detail
