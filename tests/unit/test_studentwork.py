"""What students can do with their notebooks, against the in-memory backend: reset with backups, restore,
downloads (a planted symlink never followed), shares and their tokens."""

from __future__ import annotations

import io
import json
import os
import zipfile

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from nbhosting_core import FakeAccounts, FakeBackend, Hub, InvalidInput, InvalidNotebook, NotFound, OverQuota, Settings
from nbhosting_core.shares import is_token, page_name, read_page, shares_dir


class Clock:
    def __init__(self) -> None:
        self.now = 1_780_000_000.0

    def __call__(self) -> float:
        return self.now


def write_nb(path, source: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(new_notebook(cells=[new_code_cell(source)]), str(path))


def sources(raw: bytes) -> list[str]:
    return ["".join(c["source"]) for c in json.loads(raw)["cells"]]


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def hub(tmp_path, clock):
    s = Settings(data_root=tmp_path / "data", run_dir=tmp_path / "run", max_running=100, workspace_quota=64 * 2**20)
    write_nb(s.courses_dir / "python" / "w1" / "intro.ipynb", "print('v1')")
    (s.courses_dir / "python" / "broken.ipynb").write_text("{not a notebook")
    return Hub(s, backend=FakeBackend(clock=clock), accounts=FakeAccounts(s.students_dir), clock=clock)


def student_copy(hub, course="python", notebook="w1/intro.ipynb", student="alice"):
    account = hub.accounts.find(student)
    return account.home / course / notebook


def test_reset_gives_the_new_course_version_and_keeps_the_students_as_a_backup(hub, clock):
    hub.open_notebook("python", "w1/intro.ipynb", "alice")
    mine = student_copy(hub)
    write_nb(mine, "print('my work')")
    write_nb(hub.settings.courses_dir / "python" / "w1" / "intro.ipynb", "print('v2')")  # changed upstream
    clock.now += 10

    reset = hub.work.reset("python", "w1/intro.ipynb", "alice")

    assert sources(mine.read_bytes()) == ["print('v2')"]
    assert reset.copied and reset.backup is not None
    [backup] = hub.work.backups("python", "w1/intro.ipynb", "alice")
    assert backup == reset.backup and backup.id == "20260528T202650Z"
    saved = (
        mine.parent.parent.parent / ".nbhosting" / "backups" / "python" / "w1" / "intro.ipynb" / f"{backup.id}.ipynb"
    )
    assert sources(saved.read_bytes()) == ["print('my work')"]


def test_restore_brings_a_backup_back_and_backs_up_the_current_copy_first(hub, clock):
    hub.open_notebook("python", "w1/intro.ipynb", "alice")
    mine = student_copy(hub)
    write_nb(mine, "print('my work')")
    first = hub.work.reset("python", "w1/intro.ipynb", "alice").backup
    write_nb(mine, "print('after reset')")

    restored = hub.work.restore("python", "w1/intro.ipynb", "alice", first.id)  # the same second: a suffix

    assert sources(mine.read_bytes()) == ["print('my work')"]
    assert restored.backup is not None and restored.backup.id == f"{first.id}-2"
    listed = hub.work.backups("python", None, "alice")
    assert [b.id for b in listed] == [first.id, f"{first.id}-2"]  # nothing lost: the restored one stays listed
    assert {b.notebook for b in listed} == {"w1/intro.ipynb"}


def test_reset_of_a_deleted_copy_just_copies_and_a_broken_course_notebook_moves_nothing(hub):
    hub.open_notebook("python", "w1/intro.ipynb", "alice")
    student_copy(hub).unlink()
    reset = hub.work.reset("python", "w1/intro.ipynb", "alice")
    assert reset.backup is None and reset.copied
    (hub.settings.courses_dir / "python" / "w1" / "intro.ipynb").write_text("{broken")
    with pytest.raises(InvalidNotebook):
        hub.work.reset("python", "w1/intro.ipynb", "alice")
    assert student_copy(hub).exists() and hub.work.backups("python", None, "alice") == []


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda w: w.reset("python", "../x.ipynb", "alice"), InvalidInput),
        (lambda w: w.reset("bad..course", "a.ipynb", "alice"), InvalidInput),
        (lambda w: w.reset("python", "w1/intro.ipynb", "bad id"), InvalidInput),
        (lambda w: w.restore("python", "w1/intro.ipynb", "alice", "../../etc/shadow"), InvalidInput),
        (lambda w: w.restore("python", "w1/intro.ipynb", "alice", "20260101T000000Z"), NotFound),
        (lambda w: w.reset("python", "w1/intro.ipynb", "bob"), NotFound),  # no account: nothing made
        (lambda w: w.download_notebook("python", "w1/missing.ipynb", "alice"), NotFound),
        (lambda w: w.share("python", "w1/intro.ipynb", "bob"), NotFound),
        (lambda w: w.share("python", "w1/missing.ipynb", "alice"), NotFound),
    ],
)
def test_bad_requests_are_refused_and_make_nothing(hub, call, error):
    hub.open_notebook("python", "w1/intro.ipynb", "alice")
    with pytest.raises(error):
        call(hub.work)
    assert hub.accounts.created == ["alice"]


def test_a_symlinked_notebook_is_never_followed_by_a_download_nor_a_restore(hub, tmp_path):
    hub.open_notebook("python", "w1/intro.ipynb", "alice")
    secret = tmp_path / "shadow"
    secret.write_text("root:secret")
    mine = student_copy(hub)
    mine.unlink()
    mine.symlink_to(secret)
    with pytest.raises(InvalidInput):
        hub.work.download_notebook("python", "w1/intro.ipynb", "alice")
    reset = hub.work.reset("python", "w1/intro.ipynb", "alice")  # the link is moved as a link, never read
    with pytest.raises(InvalidInput):
        hub.work.restore("python", "w1/intro.ipynb", "alice", reset.backup.id)
    assert secret.read_text() == "root:secret"


def test_download_of_a_notebook_is_the_students_copy(hub):
    hub.open_notebook("python", "w1/intro.ipynb", "alice")
    write_nb(student_copy(hub), "print('mine')")
    download = hub.work.download_notebook("python", "w1/intro.ipynb", "alice")
    assert download.filename == "intro.ipynb" and sources(download.stream.read()) == ["print('mine')"]


def test_the_workspace_zip_holds_plain_files_and_never_a_planted_symlink(hub, tmp_path):
    hub.open_notebook("python", "w1/intro.ipynb", "alice")
    workspace = student_copy(hub).parent.parent
    (workspace / "data.csv").write_text("a,b\n1,2\n")
    (workspace / "shadow").symlink_to("/etc/shadow")
    (workspace / "w1" / "etc").symlink_to("/etc", target_is_directory=True)
    (workspace / ".ipynb_checkpoints").mkdir()
    (workspace / ".ipynb_checkpoints" / "x.ipynb").write_text("{}")
    download = hub.work.download_workspace("python", "alice")
    with zipfile.ZipFile(io.BytesIO(download.stream.read())) as z:
        assert sorted(z.namelist()) == ["python/data.csv", "python/w1/intro.ipynb"]
        assert z.read("python/data.csv") == b"a,b\n1,2\n"
    assert download.filename == "python.zip" and download.media_type == "application/zip"


def test_a_workspace_larger_than_the_quota_is_not_zipped(hub):
    hub.open_notebook("python", "w1/intro.ipynb", "alice")
    workspace = student_copy(hub).parent.parent
    with open(workspace / "big.bin", "wb") as big:
        big.write(os.urandom(2**20) * 65)
    with pytest.raises(OverQuota):
        hub.work.download_workspace("python", "alice")


def test_a_share_is_rendered_in_the_students_server_behind_a_token_and_revoked_by_deleting_it(hub, clock):
    hub.open_notebook("python", "w1/intro.ipynb", "alice")
    share = hub.work.share("python", "w1/intro.ipynb", "alice")
    assert is_token(share.token) and len(share.token) == 43
    page = read_page(hub.settings, share.token)
    assert page is not None and b"print(&#x27;v1&#x27;)" in page
    assert not (shares_dir(hub.settings) / "pages" / f"{share.token}.html").exists()  # named by its hash
    assert (shares_dir(hub.settings) / "pages" / page_name(share.token)).exists()
    clock.now += 60
    again = hub.work.share("python", "w1/intro.ipynb", "alice")
    assert again.token == share.token and again.created == clock.now  # updated, same link
    assert hub.work.shares("python", "alice") == [again]
    assert hub.work.unshare("python", "w1/intro.ipynb", "alice") == again
    assert read_page(hub.settings, share.token) is None
    assert hub.work.shares(None, "alice") == []
    assert hub.work.unshare("python", "w1/intro.ipynb", "alice") is None


def test_sharing_needs_the_students_running_server(hub):
    launch = hub.open_notebook("python", "w1/intro.ipynb", "alice")
    hub.stop(launch.container)
    with pytest.raises(NotFound, match="Open this notebook first"):
        hub.work.share("python", "w1/intro.ipynb", "alice")


@pytest.mark.parametrize("token", ["", "x" * 42, "x" * 44, "../" + "x" * 40, "x" * 42 + "/"])
def test_a_share_token_of_another_shape_finds_nothing(hub, token):
    assert not is_token(token)
    assert read_page(hub.settings, token) is None


def test_a_student_cannot_share_more_than_their_quota(hub, monkeypatch):
    from nbhosting_core import shares

    hub.open_notebook("python", "w1/intro.ipynb", "alice")
    monkeypatch.setattr(shares, "MAX_SHARES", 0)
    with pytest.raises(OverQuota):
        hub.work.share("python", "w1/intro.ipynb", "alice")
    assert hub.work.shares(None, "alice") == []


def test_a_student_makes_one_share_or_zip_at_a_time(hub):
    import fcntl

    from nbhosting_core import Busy

    hub.open_notebook("python", "w1/intro.ipynb", "alice")
    user = hub.accounts.find("alice").user
    lock = hub.settings.locks_dir / f"work-{user}.lock"
    with open(lock, "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # a rendering of theirs in progress
        with pytest.raises(Busy):
            hub.work.share("python", "w1/intro.ipynb", "alice")
        with pytest.raises(Busy):
            hub.work.download_workspace("python", "alice")
    assert hub.work.download_workspace("python", "alice").size > 0


def test_a_jupytext_course_notebook_resets_the_students_ipynb_copy(hub):
    (hub.settings.courses_dir / "python" / "notes.md").write_text("# Notes\n\n```python\nprint('md v1')\n```\n")
    hub.open_notebook("python", "notes.md", "alice")
    copy = hub.accounts.find("alice").home / "python" / "notes.ipynb"
    write_nb(copy, "print('mine')")
    reset = hub.work.reset("python", "notes.md", "alice")
    assert reset.notebook == "notes.ipynb" and reset.backup is not None
    assert "md v1" in copy.read_text() and not (copy.parent / "notes.md").exists()
    assert [b.notebook for b in hub.work.backups("python", "notes", "alice")] == ["notes.ipynb"]


def test_copies_made_into_a_running_server_are_vouched_for_to_it_and_a_restore_is_not(hub):
    backend = hub.backend
    first = hub.open_notebook("python", "w1/intro.ipynb", "alice")
    write_nb(hub.settings.courses_dir / "python" / "w2" / "new.ipynb", "print('pulled')")  # a pull, say
    write_nb(hub.settings.courses_dir / "python" / "w1" / "intro.ipynb", "print('v2')")
    assert hub.open_notebook("python", "w2/new.ipynb", "alice").key == first.key  # the same running server
    hub.open_notebook("python", "w1/intro.ipynb", "alice")  # the student's copy is there: nothing copied
    reset = hub.work.reset("python", "w1/intro.ipynb", "alice")
    hub.work.restore("python", "w1/intro.ipynb", "alice", reset.backup.id)  # the student's own: not the course's
    vouched = backend.vouched(first.container)
    assert [notebook for notebook, _ in vouched] == ["w1/intro.ipynb", "w2/new.ipynb", "w1/intro.ipynb"]
    assert [sources(content) for _, content in vouched] == [["print('v1')"], ["print('pulled')"], ["print('v2')"]]
    assert vouched[1][1] == student_copy(hub, notebook="w2/new.ipynb").read_bytes()  # exactly what was copied


def test_copies_vouched_for_before_a_start_are_trusted_by_it_whatever_the_course_became(hub):
    launch = hub.open_notebook("python", "w1/intro.ipynb", "alice")  # a copy of v1
    hub.stop(launch.container)
    assert hub.backend.vouched(launch.container) == []  # stopped: nothing runs to trust anything
    hub.work.reset("python", "w1/intro.ipynb", "alice")  # while stopped: v1 again
    write_nb(hub.settings.courses_dir / "python" / "w1" / "intro.ipynb", "print('v2')")  # then a pull, say
    again = hub.open_notebook("python", "w1/intro.ipynb", "alice")
    assert again.key == launch.key and not again.copied
    # its start lists the course as it is now (v2) and the copies vouched for before: the student's v1 copy
    assert [sources(content) for _, content in hub.backend.vouched(launch.container)] == [["print('v1')"]]


def test_the_notebooks_listed_are_the_students_plain_ipynb_files_by_path(hub, tmp_path):
    hub.open_notebook("python", "w1/intro.ipynb", "alice")
    workspace = student_copy(hub).parent.parent
    write_nb(workspace / "a" / "b" / "deep.ipynb", "1")
    write_nb(workspace / "w1" / ".ipynb_checkpoints" / "intro-checkpoint.ipynb", "old")
    write_nb(workspace / ".hidden" / "x.ipynb", "hidden")
    (workspace / "notes.txt").write_text("not a notebook")
    outside = tmp_path / "outside"
    write_nb(outside / "theirs.ipynb", "not the student's")
    (workspace / "linked.ipynb").symlink_to(outside / "theirs.ipynb")
    (workspace / "linked-dir").symlink_to(outside)

    listed = hub.work.notebooks("python", "alice")

    assert [n.notebook for n in listed.notebooks] == ["a/b/deep.ipynb", "w1/intro.ipynb"] and not listed.truncated
    intro = listed.notebooks[1]
    assert intro.size == student_copy(hub).stat().st_size and intro.modified == student_copy(hub).stat().st_mtime


def test_a_student_without_a_workspace_has_no_notebooks_and_the_list_is_capped(hub, monkeypatch):
    hub.open_notebook("python", "w1/intro.ipynb", "alice")
    assert hub.work.notebooks("other", "alice").notebooks == []
    with pytest.raises(NotFound):
        hub.work.notebooks("python", "nobody")
    monkeypatch.setattr("nbhosting_core.studentfiles.MAX_NOTEBOOKS", 3)
    for n in range(5):
        write_nb(student_copy(hub).parent / f"n{n}.ipynb", str(n))
    listed = hub.work.notebooks("python", "alice")
    assert [n.notebook for n in listed.notebooks] == ["w1/intro.ipynb", "w1/n0.ipynb", "w1/n1.ipynb"]
    assert listed.truncated
