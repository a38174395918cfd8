"""Courses from git: create, list, show, pull, archive, delete, against real repositories the tests make."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess

import pytest

from nbhosting_core import CommandFailed, InvalidInput, NotFound, Settings, SubprocessRunner
from nbhosting_core.courses import Courses, CourseState
from nbhosting_core.errors import CourseArchived
from nbhosting_core.shares import ShareStore, page_name, read_page, shares_dir
from nbhosting_core.system.vouched import VouchedCopies
from tests.gitrepos import Upstream, course_repo, git, notebook_text


class Clock:
    now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class RecordingRunner(SubprocessRunner):
    """The real runner, remembering what it was asked to run and how."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], dict[str, str] | None, float]] = []

    def run(self, argv, *, env=None, timeout=60):
        self.calls.append((list(argv), dict(env) if env else None, timeout))
        return super().run(argv, env=env, timeout=timeout)

    def stream(self, argv, *, on_line, env=None, timeout=3600, failure=CommandFailed):
        self.calls.append((list(argv), dict(env) if env else None, timeout))
        return super().stream(argv, on_line=on_line, env=env, timeout=timeout, failure=failure)


@pytest.fixture
def settings(tmp_path):
    return Settings(data_root=tmp_path / "data", run_dir=tmp_path / "run")


@pytest.fixture
def runner():
    return RecordingRunner()


@pytest.fixture
def courses(settings, runner):
    return Courses(settings, runner=runner, clock=Clock(), servers=lambda name: [])


@pytest.fixture
def upstream(tmp_path):
    return course_repo(tmp_path / "upstream")


# ------------------------------------------------------------------------------------------ create


def test_a_course_is_created_by_cloning_a_local_repository_and_its_origin_is_recorded(courses, settings, upstream):
    progress: list[str] = []
    view = courses.create("python", str(upstream.path), progress=progress.append)
    checkout = settings.courses_dir / "python"
    assert view.path == checkout and (checkout / "w1" / "intro.ipynb").is_file() and (checkout / "w2").is_dir()
    assert view.commit == git(upstream.path, "rev-parse", "HEAD")
    assert view.course.remote == str(upstream.path) and view.course.branch == "main"
    assert view.course.state is CourseState.ACTIVE and view.course.created_at == Clock.now
    assert view.course.last_pull is not None and view.course.last_pull.ok
    assert view.config.ui == "lab" and view.config_error is None
    assert any("Cloning into" in line for line in progress)  # git's own progress, passed on as it comes
    assert [v.course.name for v in courses.list_courses()] == ["python"]


def test_a_file_url_and_a_branch_are_accepted(courses, upstream):
    git(upstream.path, "branch", "autumn")
    upstream.write("w3/new.ipynb", notebook_text("3")).commit("week 3, on main only")
    view = courses.create("autumn", f"file://{upstream.path}", branch="autumn")
    assert view.course.branch == "autumn" and not (view.path / "w3").exists()


def test_the_metadata_is_root_only_and_written_whole(courses, settings, upstream):
    courses.create("python", str(upstream.path))
    folder = settings.course_meta_dir
    meta = folder / "python.json"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700 and stat.S_IMODE(meta.stat().st_mode) == 0o600
    assert json.loads(meta.read_text())["remote"] == str(upstream.path)
    assert sorted(p.name for p in folder.iterdir()) == ["python.json"]  # no temporary file left


@pytest.mark.parametrize(
    "remote",
    [
        "http://example.org/course.git",  # not authenticated
        "git://example.org/course.git",
        "ext::sh -c touch% /tmp/pwned",  # a transport that runs commands
        "--upload-pack=touch /tmp/pwned",  # an option
        "relative/path",
        "file://remotehost/srv/course.git",
        "https://exa mple.org/x.git",
    ],
)
def test_remotes_other_than_https_ssh_file_or_an_absolute_path_are_refused(courses, settings, remote):
    with pytest.raises(InvalidInput, match="Refused git remote"):
        courses.create("python", remote)
    assert not settings.courses_dir.exists() or not any(settings.courses_dir.iterdir())


@pytest.mark.parametrize(
    "remote", ["https://example.org/c.git", "ssh://git@example.org/c.git", "git@example.org:t/c.git"]
)
def test_https_and_ssh_remotes_are_accepted(remote):
    from nbhosting_core.system.git import check_remote

    assert check_remote(remote) == remote


def test_a_local_path_must_be_a_git_repository(courses, tmp_path):
    (tmp_path / "plain").mkdir()
    with pytest.raises(InvalidInput, match="not a git repository"):
        courses.create("python", str(tmp_path / "plain"))
    with pytest.raises(InvalidInput, match="not a git repository"):
        courses.create("python", str(tmp_path / "missing"))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root (git's ownership check is root's here)")
def test_a_local_repository_of_another_user_is_refused_with_what_to_do(courses, upstream):
    subprocess.run(["chown", "-R", "nobody", str(upstream.path)], check=True)
    with pytest.raises(InvalidInput, match="belongs to another user.*safe.directory"):
        courses.create("python", str(upstream.path))


def test_bad_names_branches_and_existing_courses_are_refused(courses, settings, upstream):
    with pytest.raises(InvalidInput, match="Invalid course name"):
        courses.create("../etc", str(upstream.path))
    with pytest.raises(InvalidInput, match="Invalid branch"):
        courses.create("python", str(upstream.path), branch="--upload-pack=x")
    (settings.courses_dir / "handmade").mkdir(parents=True)
    with pytest.raises(InvalidInput, match="exists already"):
        courses.create("handmade", str(upstream.path))


def test_a_clone_that_fails_leaves_nothing_behind(courses, settings, upstream):
    with pytest.raises(CommandFailed) as failed:
        courses.create("python", str(upstream.path), branch="no-such-branch")
    assert "no-such-branch" in failed.value.stderr
    assert list(settings.courses_dir.iterdir()) == [] and courses.meta("python") is None


def test_git_never_prompts_never_runs_through_a_shell_and_has_a_timeout(courses, runner, upstream):
    courses.create("python", str(upstream.path))
    courses.pull("python")
    assert runner.calls
    for argv, env, timeout in runner.calls:
        assert argv[0] == "git" and env is not None and env["GIT_TERMINAL_PROMPT"] == "0" and 0 < timeout <= 600
    clone = next(argv for argv, _, _ in runner.calls if "clone" in argv)
    assert clone[clone.index("--") + 1] == str(upstream.path)  # the remote comes after "--": never an option


# ------------------------------------------------------------------------------------------ pull


def test_a_pull_serves_the_new_material(courses, upstream):
    courses.create("python", str(upstream.path))
    upstream.write("w1/intro.ipynb", notebook_text("1 + 1", "2 + 2")).remove("w2/loops.ipynb")
    head = upstream.write("w3/new.ipynb", notebook_text("3")).commit("week 3; loops withdrawn")
    result = courses.pull("python")
    checkout = courses.path("python")
    assert result.ok and result.commit == head and result.config_error is None
    assert "2 + 2" in (checkout / "w1" / "intro.ipynb").read_text()
    assert (checkout / "w3" / "new.ipynb").is_file() and not (checkout / "w2" / "loops.ipynb").exists()
    assert courses.show("python").course.last_pull == result


def test_a_pull_after_upstream_rewrote_its_history_takes_the_new_history(courses, upstream):
    courses.create("python", str(upstream.path))
    head = upstream.write("w1/intro.ipynb", notebook_text("rewritten")).rewrite_history("squashed")
    result = courses.pull("python")
    assert result.ok and result.commit == head
    assert "rewritten" in (courses.path("python") / "w1" / "intro.ipynb").read_text()


def test_a_pull_from_a_remote_that_disappeared_is_recorded_and_the_course_keeps_serving(courses, upstream):
    before = courses.create("python", str(upstream.path)).commit
    shutil.rmtree(upstream.path)
    result = courses.pull("python")
    assert not result.ok and result.commit == before
    assert "does not appear to be a git repository" in result.log or "not a git repository" in result.log
    view = courses.show("python")
    assert view.course.last_pull == result and view.commit == before
    assert (view.path / "w1" / "intro.ipynb").is_file()


def test_a_pull_of_a_branch_deleted_upstream_fails_clearly_and_the_course_keeps_its_last_good_commit(courses, upstream):
    git(upstream.path, "checkout", "-q", "-b", "autumn")
    good = upstream.write("autumn.ipynb", notebook_text("'autumn'")).commit("the autumn session")
    assert courses.create("python", str(upstream.path), branch="autumn").commit == good
    git(upstream.path, "checkout", "-q", "main")
    git(upstream.path, "branch", "-q", "-D", "autumn")
    result = courses.pull("python")
    assert not result.ok and result.commit == good
    assert "couldn't find remote ref refs/heads/autumn" in result.log
    assert result.log.splitlines()[-1].startswith("branch 'autumn' is gone from the remote: the course keeps serving")
    view = courses.show("python")
    assert view.course.last_pull == result and view.commit == good and view.course.branch == "autumn"
    assert (view.path / "autumn.ipynb").is_file() and git(view.path, "status", "--porcelain") == ""


def test_a_pull_from_an_unreachable_remote_is_recorded(courses, settings, upstream):
    courses.create("python", str(upstream.path))
    git(courses.path("python"), "remote", "set-url", "origin", "https://127.0.0.1:9/nowhere.git")
    result = courses.pull("python")
    assert not result.ok and "127.0.0.1" in result.log and (courses.path("python") / "w1" / "intro.ipynb").is_file()


def test_a_pull_that_brings_a_broken_configuration_works_and_records_the_line(courses, upstream):
    courses.create("python", str(upstream.path))
    upstream.write(".nbhosting/course.toml", 'ui = "lab"\nreadonly = ["data"]\nimage = "../other"\n').commit("oops")
    result = courses.pull("python")
    assert result.ok and result.config_error is not None and "line 3" in result.config_error
    assert "image" in result.config_error
    view = courses.show("python")
    assert view.config_error == result.config_error and view.config.ui is None  # served with the defaults
    assert courses.config("python").image is None


def test_a_local_course_cannot_be_pulled(courses, settings):
    (settings.courses_dir / "handmade").mkdir(parents=True)
    view = courses.show("handmade")
    assert view.local and view.commit is None
    with pytest.raises(InvalidInput, match="local folder"):
        courses.pull("handmade")
    with pytest.raises(NotFound):
        courses.pull("nothing")


def test_pull_all_pulls_every_active_course_with_a_remote(courses, settings, upstream, tmp_path):
    courses.create("python", str(upstream.path))
    other = course_repo(tmp_path / "other")
    courses.create("closed", str(other.path))
    courses.archive("closed")
    (settings.courses_dir / "handmade").mkdir()
    assert [r.course for r in courses.pull_all()] == ["python"]


# ------------------------------------------------------------------------------------------ archive


def test_an_archived_course_is_hidden_never_pulled_and_comes_back(courses, upstream):
    courses.create("python", str(upstream.path))
    assert courses.archive("python").course.state is CourseState.ARCHIVED
    assert courses.is_archived("python")
    assert courses.list_courses() == [] and [v.course.name for v in courses.list_courses(archived=True)] == ["python"]
    with pytest.raises(CourseArchived):
        courses.pull("python")
    assert courses.unarchive("python").course.state is CourseState.ACTIVE
    assert [v.course.name for v in courses.list_courses()] == ["python"] and courses.pull("python").ok


def test_a_local_course_can_be_archived_too(courses, settings):
    (settings.courses_dir / "handmade").mkdir(parents=True)
    courses.archive("handmade")
    assert courses.is_archived("handmade") and courses.list_courses() == []


# ------------------------------------------------------------------------------------------ delete


def _workspace(settings: Settings, user: str, course: str):
    workspace = settings.students_dir / user / course
    workspace.mkdir(parents=True)
    (workspace / "mine.ipynb").write_text("my work")
    return workspace


def test_delete_is_a_dry_run_by_default(courses, settings, upstream):
    courses.create("python", str(upstream.path))
    workspace = _workspace(settings, "nbh-alice", "python")
    plan = courses.delete("python")
    assert not plan.done
    assert plan.removes == [str(courses.path("python")), str(settings.course_meta_dir / "python.json")]
    assert plan.keeps == [str(workspace)]
    assert courses.path("python").is_dir() and courses.meta("python") is not None


def test_delete_removes_the_course_and_keeps_students_work_unless_asked(courses, settings, upstream):
    courses.create("python", str(upstream.path))
    alice = _workspace(settings, "nbh-alice", "python")
    other = _workspace(settings, "nbh-alice", "another")
    assert courses.delete("python", yes=True).done
    assert not courses.path("python").exists() and courses.meta("python") is None
    assert (alice / "mine.ipynb").read_text() == "my work"
    with pytest.raises(NotFound):
        courses.show("python")
    courses.create("python", str(upstream.path))
    plan = courses.delete("python", yes=True, students=True)
    assert plan.done and str(alice) in plan.removes and not alice.exists() and other.is_dir()


def _backups(settings: Settings, user: str, course: str):
    folder = settings.students_dir / user / ".nbhosting" / "backups" / course
    (folder / "w1" / "intro.ipynb").mkdir(parents=True)
    (folder / "w1" / "intro.ipynb" / "20261101T000000Z.ipynb").write_text("my old work")
    return folder


def test_delete_lists_students_backups_and_shared_pages_and_removes_them_only_with_students(
    courses, settings, upstream
):
    courses.create("python", str(upstream.path))
    workspace = _workspace(settings, "nbh-alice", "python")
    backups, other_backups = _backups(settings, "nbh-alice", "python"), _backups(settings, "nbh-alice", "another")
    store = ShareStore(settings)
    shared = store.put("nbh-alice", "python", "w1/intro.ipynb", b"<html>mine</html>", 1.0)
    kept = store.put("nbh-alice", "another", "a.ipynb", b"<html>other</html>", 1.0)
    page = shares_dir(settings) / "pages" / page_name(shared.token)
    vouched = VouchedCopies(settings.trust_dir)
    vouched.add("nbh-alice-python", b"sha256 aa")
    vouched.add("nbh-alice-another", b"sha256 bb")
    record = settings.trust_dir / "nbh-alice-python"
    plan = courses.delete("python")
    assert plan.keeps == [
        str(workspace),
        str(backups),
        f"{page} (the page nbh-alice shared of w1/intro.ipynb)",
        f"{record} (the copies root vouched for)",
    ]
    assert courses.delete("python", yes=True).done  # without --students: all kept
    assert backups.is_dir() and read_page(settings, shared.token) == b"<html>mine</html>"
    courses.create("python", str(upstream.path))
    plan = courses.delete("python", students=True)
    assert not plan.done and str(backups) in plan.removes and any(str(page) in r for r in plan.removes)
    assert courses.delete("python", yes=True, students=True).done
    assert not workspace.exists() and not backups.exists() and read_page(settings, shared.token) is None
    assert [s.course for s in store.of("nbh-alice")] == ["another"]  # another course's share and backups stay
    assert read_page(settings, kept.token) == b"<html>other</html>" and other_backups.is_dir()
    assert not record.exists() and vouched.lines("nbh-alice-another") == b"sha256 bb\n"


def test_delete_waits_while_servers_of_the_course_exist(settings, upstream):
    courses = Courses(settings, servers=lambda name: [f"nbh-alice-{name}"])
    courses.create("python", str(upstream.path))
    plan = courses.delete("python", yes=True)
    assert not plan.done and plan.servers == ["nbh-alice-python"] and courses.path("python").is_dir()


def test_delete_never_follows_a_students_symlink(courses, settings, upstream, tmp_path):
    courses.create("python", str(upstream.path))
    precious = tmp_path / "precious"
    precious.mkdir()
    (settings.students_dir / "nbh-mallory").mkdir(parents=True)
    (settings.students_dir / "nbh-mallory" / "python").symlink_to(precious)
    (precious / "backups" / "python").mkdir(parents=True)
    (settings.students_dir / "nbh-mallory" / ".nbhosting").symlink_to(precious)
    plan = courses.delete("python", yes=True, students=True)
    assert plan.done and (precious / "backups" / "python").is_dir() and str(precious) not in " ".join(plan.removes)
    assert "nbh-mallory" not in " ".join(plan.removes)


def test_a_checkout_is_readable_by_every_user_whatever_the_umask(courses, upstream):
    previous = os.umask(0o077)
    try:
        courses.create("python", str(upstream.path))
        upstream.write("w4/late.ipynb", notebook_text("4")).commit("week 4")
        courses.pull("python")
    finally:
        os.umask(previous)
    checkout = courses.path("python")
    for path in (checkout, checkout / "w1", checkout / "w1" / "intro.ipynb", checkout / "w4" / "late.ipynb"):
        assert path.stat().st_mode & 0o004, path
        assert not path.stat().st_mode & 0o002, path


def test_submodules_are_cloned_and_follow_a_pull(courses, upstream, tmp_path, monkeypatch):
    # root's own git configuration may allow file:// submodules (git refuses them by default): this test's does
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text('[protocol "file"]\n\tallow = always\n')
    monkeypatch.setenv("HOME", str(home))
    shared = Upstream(tmp_path / "shared")
    shared.write("tools.py", "VERSION = 1\n").commit("tools 1")
    git(upstream.path, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(shared.path), "shared")
    upstream.commit("the shared tools, as a submodule")
    courses.create("python", str(upstream.path))
    assert (courses.path("python") / "shared" / "tools.py").read_text() == "VERSION = 1\n"
    shared.write("tools.py", "VERSION = 2\n").commit("tools 2")
    git(upstream.path / "shared", "pull", "-q", "origin", "main")
    upstream.commit("tools 2")
    assert courses.pull("python").ok
    assert (courses.path("python") / "shared" / "tools.py").read_text() == "VERSION = 2\n"


def test_a_pull_removes_untracked_leftovers_but_keeps_ignored_files(courses, upstream):
    upstream.write(".gitignore", "generated/\n").commit("generated data is not tracked")
    courses.create("python", str(upstream.path))
    checkout = courses.path("python")
    (checkout / "w1" / "stray.ipynb").write_text("{}")  # left by hand: never served after a pull
    (checkout / "old-week").mkdir()
    (checkout / "old-week" / "x.ipynb").write_text("{}")
    (checkout / "generated").mkdir()
    (checkout / "generated" / "table.csv").write_text("1\n")  # ignored: the teacher's, kept
    upstream.write("w3/new.ipynb", notebook_text("3")).commit("week 3")
    result = courses.pull("python")
    assert result.ok and (checkout / "w3" / "new.ipynb").is_file()
    assert not (checkout / "w1" / "stray.ipynb").exists() and not (checkout / "old-week").exists()
    assert (checkout / "generated" / "table.csv").read_text() == "1\n"
    assert courses.meta("python") is not None and courses.show("python").commit == result.commit  # its metadata


def test_a_submodule_removed_upstream_leaves_no_folder_and_a_submodules_own_leftovers_go(
    courses, upstream, tmp_path, monkeypatch
):
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_text('[protocol "file"]\n\tallow = always\n')
    monkeypatch.setenv("HOME", str(home))
    for name in ("shared", "extra"):
        sub = Upstream(tmp_path / name)
        sub.write("tools.py", f"NAME = {name!r}\n").commit(name)
        git(upstream.path, "-c", "protocol.file.allow=always", "submodule", "add", "-q", str(sub.path), name)
    upstream.commit("two submodules")
    courses.create("python", str(upstream.path))
    checkout = courses.path("python")
    assert (checkout / "extra" / "tools.py").is_file()
    (checkout / "shared" / "stray.py").write_text("x = 1\n")  # untracked, inside a submodule
    git(upstream.path, "rm", "-q", "extra")
    upstream.commit("extra withdrawn")
    result = courses.pull("python")
    assert result.ok, result.log
    assert not (checkout / "extra").exists()  # its folder (a repository of its own) went with it
    assert (checkout / "shared" / "tools.py").is_file() and not (checkout / "shared" / "stray.py").exists()


def test_a_clone_a_crash_cut_is_cleared_by_the_next_create(courses, settings, upstream):
    stale = settings.courses_dir / ".clone-python-deadbeef"
    (stale / "w1").mkdir(parents=True)
    (settings.courses_dir / ".clone-other-cafe").mkdir()
    courses.create("python", str(upstream.path))
    assert not stale.exists() and (settings.courses_dir / ".clone-other-cafe").is_dir()  # only its own
    assert [v.course.name for v in courses.list_courses()] == ["python"]
