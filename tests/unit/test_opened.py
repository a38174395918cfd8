"""What each student opened, per course: the record behind a course page's marks."""

from __future__ import annotations

import pytest

from nbhosting_core.naming import user_name
from nbhosting_core.opened import OpenedLog


def test_openings_are_recorded_per_student_and_course_once_each_by_their_ipynb(tmp_path):
    log = OpenedLog(tmp_path / "opened")
    log.record("edx:alice", "python", "w1/intro.md")
    log.record("edx:alice", "python", "w1/intro")
    log.record("edx:alice", "python", "w2/loops.ipynb")
    log.record("edx:alice", "other", "x.ipynb")
    log.record("edx:bob", "python", "w3/z.ipynb")
    assert log.opened("edx:alice", "python") == {"w1/intro.ipynb", "w2/loops.ipynb"}
    assert log.opened("edx:bob", "python") == {"w3/z.ipynb"} and log.opened("edx:carol", "python") == set()
    record = tmp_path / "opened" / user_name("edx:alice") / "python.log"
    assert record.read_text().count("w1/intro.ipynb") == 1  # once, however often opened


def test_a_symlink_in_place_of_a_record_is_never_followed(tmp_path):
    log = OpenedLog(tmp_path / "opened")
    log.record("edx:alice", "python", "a.ipynb")
    (record,) = (tmp_path / "opened").glob("*/python.log")
    record.unlink()
    target = tmp_path / "elsewhere"
    target.write_text("")
    record.symlink_to(target)
    with pytest.raises(OSError):
        log.record("edx:alice", "python", "b.ipynb")
    assert target.read_text() == ""
