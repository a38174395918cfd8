"""Jupytext notebooks (.md, .py) in a course: found by name, with or without extension, and given as an .ipynb."""

from __future__ import annotations

import os
from pathlib import PurePosixPath

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from nbhosting_core import Account, InvalidNotebook, NotFound, Settings
from nbhosting_core.notebooks import notebook_bytes
from nbhosting_core.workspaces import Workspaces

MARKDOWN = """\
---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# Loops

```{code-cell}
for i in range(3):
    print(i)
```
"""

PERCENT = """\
# %% [markdown]
# # Functions

# %%
def square(x):
    return x * x

# %%
square(7)
"""


def test_a_markdown_notebook_becomes_a_valid_ipynb_with_its_cells():
    node = nbformat.reads(notebook_bytes(MARKDOWN.encode(), suffix=".md", name="loops.md").decode(), as_version=4)
    nbformat.validate(node)
    assert [c.cell_type for c in node.cells] == ["markdown", "code"]
    assert "range(3)" in node.cells[1].source and node.metadata.kernelspec.name == "python3"


def test_a_percent_script_becomes_a_notebook_with_a_python_kernel_when_it_names_none():
    node = nbformat.reads(notebook_bytes(PERCENT.encode(), suffix=".py", name="f.py").decode(), as_version=4)
    assert [c.cell_type for c in node.cells] == ["markdown", "code", "code"]
    assert node.cells[2].source == "square(7)" and node.metadata.kernelspec.name == "python3"


def test_an_ipynb_is_still_given_byte_for_byte():
    raw = nbformat.writes(new_notebook(cells=[new_code_cell("1")])).encode()
    assert notebook_bytes(raw, suffix=".ipynb", name="a.ipynb") == raw


def test_text_that_is_not_utf8_is_refused():
    with pytest.raises(InvalidNotebook, match="not UTF-8"):
        notebook_bytes(b"\xff\xfe#", suffix=".md", name="x.md")


@pytest.fixture
def env(tmp_path):
    settings = Settings(data_root=tmp_path / "data", run_dir=tmp_path / "run")
    course = settings.courses_dir / "c1"
    (course / "w1").mkdir(parents=True)
    (course / "w1" / "loops.md").write_text(MARKDOWN)
    (course / "w1" / "funcs.py").write_text(PERCENT)
    nbformat.write(new_notebook(cells=[new_code_cell("'ipynb'")]), str(course / "w1" / "both.ipynb"))
    (course / "w1" / "both.md").write_text(MARKDOWN)
    home = settings.students_dir / "nbh-x"
    home.mkdir(parents=True)
    account = Account(student_id="x", user="nbh-x", uid=os.getuid(), gid=os.getgid(), home=home)
    return Workspaces(settings), account, course, home


@pytest.mark.parametrize(
    ("asked", "source"),
    [
        ("w1/loops", "w1/loops.md"),
        ("w1/loops.md", "w1/loops.md"),
        ("w1/loops.ipynb", "w1/loops.md"),  # a link made before the course moved to Jupytext still opens
        ("w1/funcs", "w1/funcs.py"),
        ("w1/both", "w1/both.ipynb"),  # .ipynb first
        ("w1/both.md", "w1/both.md"),  # the file named, when it exists
    ],
)
def test_the_course_file_is_the_one_named_else_ipynb_md_py_of_that_name(env, asked, source):
    ws, _, course, _ = env
    assert ws.course_notebook("c1", PurePosixPath(asked)) == course / source


def test_a_name_with_no_such_file_is_not_found(env):
    ws, _, _, _ = env
    with pytest.raises(NotFound):
        ws.course_notebook("c1", PurePosixPath("w1/nothing"))


def test_the_students_copy_of_a_jupytext_notebook_is_an_ipynb_never_overwritten(env):
    ws, account, _, home = env
    assert ws.ensure_copy(account, "c1", PurePosixPath("w1/loops")) is True
    copy = home / "c1" / "w1" / "loops.ipynb"
    assert "range(3)" in copy.read_text() and not (home / "c1" / "w1" / "loops.md").exists()
    assert ws.has_copy(account, "c1", PurePosixPath("w1/loops.md"))
    copy.write_text("my own work")
    assert ws.ensure_copy(account, "c1", PurePosixPath("w1/loops.md")) is False
    assert copy.read_text() == "my own work"


def test_a_symlink_the_student_planted_where_the_copy_goes_is_left_alone(env, tmp_path):
    ws, account, _, home = env
    target = tmp_path / "target"
    (home / "c1" / "w1").mkdir(parents=True)
    (home / "c1" / "w1" / "funcs.ipynb").symlink_to(target)
    assert ws.ensure_copy(account, "c1", PurePosixPath("w1/funcs.py")) is False
    assert not target.exists()


def test_the_same_file_always_makes_the_same_notebook():
    assert notebook_bytes(MARKDOWN.encode(), suffix=".md", name="a") == notebook_bytes(
        MARKDOWN.encode(), suffix=".md", name="a"
    )


def test_myst_cells_are_code_cells_even_under_a_short_header():
    text = "---\njupytext:\n  text_representation:\n    format_name: myst\n---\n\n```{code-cell}\n6 * 7\n```\n"
    node = nbformat.reads(notebook_bytes(text.encode(), suffix=".md", name="q.md").decode(), as_version=4)
    assert [c.cell_type for c in node.cells] == ["code"] and node.cells[0].source == "6 * 7"
