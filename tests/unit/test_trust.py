"""Trusted copies: the signatures root hands to each server (see nbhosting_core.trust)."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbformat.sign import NotebookNotary
from nbformat.v4 import new_code_cell, new_notebook

import nbhosting_core
from nbhosting_core.system import vouched
from nbhosting_core.system.vouched import VouchedCopies
from nbhosting_core.trust import (
    CourseSignatures,
    merged,
    notary_secret,
    notebook_signature,
    notebooks_of,
    with_signature,
)


def write(path: Path, source: str) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(new_notebook(cells=[new_code_cell(source)]), str(path))
    return path.read_bytes()


def test_a_courses_notary_secret_is_stable_and_its_own():
    assert notary_secret(b"s" * 32, "python") == notary_secret(b"s" * 32, "python")
    assert notary_secret(b"s" * 32, "python") != notary_secret(b"s" * 32, "datascience")
    assert notary_secret(b"s" * 32, "python") != notary_secret(b"t" * 32, "python")
    assert len(notary_secret(b"s" * 32, "python")) == 64


def test_the_signature_is_the_one_jupyters_notary_computes_for_the_same_notebook(tmp_path):
    content = write(tmp_path / "a.ipynb", "1 + 1")
    secret = notary_secret(b"s" * 32, "python")
    notary = NotebookNotary(secret=secret)
    assert notebook_signature(secret, content) == notary.compute_signature(nbformat.reads(content.decode(), 4))
    assert notebook_signature(secret, b"{not json") is None


def test_the_course_signatures_cover_its_notebooks_and_nothing_planted(tmp_path):
    course = tmp_path / "course"
    a = write(course / "w1" / "a.ipynb", "1")
    write(course / ".git" / "b.ipynb", "2")  # hidden folders are not the course's notebooks
    outside = write(tmp_path / "secret.ipynb", "3")
    os.symlink(tmp_path / "secret.ipynb", course / "link.ipynb")  # never followed
    (course / "notes.md").write_text("# not a notebook")
    assert [p.relative_to(course) for p in notebooks_of(course)] == [Path("w1/a.ipynb")]
    secret = notary_secret(b"s" * 32, "python")
    lines = CourseSignatures().lines(course, secret).decode().splitlines()
    assert lines == [f"sha256 {notebook_signature(secret, a)}"]
    assert f"sha256 {notebook_signature(secret, outside)}" not in lines


def test_a_changed_notebook_is_signed_again(tmp_path):
    course = tmp_path / "course"
    write(course / "a.ipynb", "1")
    signatures = CourseSignatures()
    secret = notary_secret(b"s" * 32, "python")
    before = signatures.lines(course, secret)
    changed = write(course / "a.ipynb", "1 + 1 + 1")
    os.utime(course / "a.ipynb", ns=(1, 10**18))
    after = signatures.lines(course, secret)
    assert before != after and after.decode() == f"sha256 {notebook_signature(secret, changed)}\n"


def test_a_jupytext_notebooks_copy_is_signed_as_the_student_receives_it(tmp_path):
    from nbhosting_core.notebooks import notebook_bytes

    course = tmp_path / "course"
    text = "---\njupytext:\n  text_representation:\n    format_name: myst\n---\n\n```{code-cell}\n6 * 7\n```\n"
    (course / "w1").mkdir(parents=True)
    (course / "w1" / "quiz.md").write_text(text)
    (course / "w1" / "README.md").write_text("# not a notebook\n")
    secret = notary_secret(b"s" * 32, "python")
    copy = notebook_bytes(text.encode(), suffix=".md", name="quiz.md")
    assert notebooks_of(course) == [course / "w1" / "quiz.md"]
    assert CourseSignatures().lines(course, secret) == f"sha256 {notebook_signature(secret, copy)}\n".encode()


def test_a_signature_is_added_to_a_servers_list_once():
    assert with_signature(b"", "ab") == b"sha256 ab\n"
    assert with_signature(b"sha256 ab\n", "cd") == b"sha256 ab\nsha256 cd\n"
    assert with_signature(b"sha256 ab", "cd") == b"sha256 ab\nsha256 cd\n"  # a last line without its newline
    assert with_signature(b"sha256 ab\nsha256 cd\n", "cd") is None
    assert with_signature(b"sha256 abcd\n", "ab") == b"sha256 abcd\nsha256 ab\n"  # whole lines, not prefixes


IMAGE_CONFIG = Path(nbhosting_core.__file__).parent / "containerfiles" / "default" / "nbhosting_trust.py"


@pytest.fixture
def image_store(tmp_path):
    """The image's signature store (``nbhosting_trust.py`` as Jupyter runs it), on files under ``tmp_path``."""
    config = {"__name__": "jupyter_config"}
    exec(compile(IMAGE_CONFIG.read_text(), str(IMAGE_CONFIG), "exec"), config)  # no secret file here: `c` unused
    config["NBHOSTING_TRUSTED"] = str(tmp_path / "trusted-digests")
    config["NBHOSTING_DATA"] = str(tmp_path / "data")
    (tmp_path / "data").mkdir()
    return config["NbhostingCourseCopies"]()


def replace(path: Path, data: bytes) -> None:
    """As root replaces a running server's list: a new file renamed over it."""
    tmp = path.with_name(".new")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def test_the_images_store_reads_the_list_again_when_root_replaced_it(image_store, tmp_path):
    listed = tmp_path / "trusted-digests"
    assert not image_store.check_signature("ab", "sha256")  # no list yet
    replace(listed, b"sha256 ab\n")
    assert image_store.check_signature("ab", "sha256") and not image_store.check_signature("cd", "sha256")
    replace(listed, b"sha256 ab\nsha256 cd\n")  # a copy of a notebook a pull brought, made while it runs
    assert image_store.check_signature("cd", "sha256")
    assert not image_store.check_signature("cd", "sha512")
    listed.unlink()
    assert not image_store.check_signature("ab", "sha256")


def test_the_images_store_keeps_the_students_own_signatures(image_store, tmp_path):
    replace(tmp_path / "trusted-digests", b"sha256 ab\n")
    image_store.store_signature("ef", "sha256")
    assert image_store.check_signature("ef", "sha256") and image_store.check_signature("ab", "sha256")
    image_store.close()


def test_a_start_lists_the_course_then_the_copies_vouched_for_before_each_once_whole_lines_up_to_a_limit():
    course = b"sha256 aa\nsha256 bb\n"
    assert merged(course, b"sha256 bb\nsha256 cc\n\nsha256 cc\n", 1000) == b"sha256 aa\nsha256 bb\nsha256 cc\n"
    assert merged(course, b"", 1000) == course
    assert merged(course, b"sha256 cc\nsha256 dd\n", len(course) + 10) == course + b"sha256 cc\n"  # dd: no room


def test_root_records_each_copy_once_per_server_and_keeps_the_last_ones(tmp_path, monkeypatch):
    record = VouchedCopies(tmp_path / "trust")
    assert record.lines("u1-python") == b""
    assert record.add("u1-python", b"sha256 aa") and not record.add("u1-python", b"sha256 aa")
    assert record.add("u1-python", b"sha256 bb") and record.add("u2-python", b"sha256 cc")
    assert record.lines("u1-python") == b"sha256 aa\nsha256 bb\n" and record.lines("u2-python") == b"sha256 cc\n"
    assert (tmp_path / "trust").stat().st_mode & 0o777 == 0o700
    monkeypatch.setattr(vouched, "MAX_LINES", 2)
    record.add("u1-python", b"sha256 dd")
    assert record.lines("u1-python") == b"sha256 bb\nsha256 dd\n"
    assert sorted(p.name for p in (tmp_path / "trust").iterdir()) == ["u1-python", "u2-python"]  # no temporary left


def test_roots_record_follows_no_link_and_takes_no_path(tmp_path):
    record = VouchedCopies(tmp_path / "trust")
    (tmp_path / "trust").mkdir()
    (tmp_path / "elsewhere").write_bytes(b"sha256 planted\n")
    (tmp_path / "trust" / "u1-python").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OSError):
        record.lines("u1-python")
    for name in ("../x", "a/b", ".hidden", ""):
        with pytest.raises(ValueError):
            record.add(name, b"sha256 aa")
