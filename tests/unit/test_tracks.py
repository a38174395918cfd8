"""A course's table of contents: the tracks its configuration names, else one section per top folder."""

from __future__ import annotations

from pathlib import PurePosixPath

from nbhosting_core.courseconfig import parse_course_config
from nbhosting_core.tracks import course_tracks, notebook_files
from tests.gitrepos import notebook_text

P = PurePosixPath


def test_the_configurations_tracks_are_the_table_of_contents():
    config = parse_course_config('[[tracks]]\nname = "Basics"\n[[tracks.sections]]\nname = "One"\nnotebooks = ["b"]\n')
    tracks = course_tracks("python", config, [P("a.ipynb"), P("w1/x.ipynb")])
    assert [(t.name, [(s.name, s.notebooks) for s in t.sections]) for t in tracks] == [("Basics", [("One", ["b"])])]


def test_without_tracks_each_top_folder_is_a_section_sorted_and_top_notebooks_come_first():
    notebooks = [P("w2/b.ipynb"), P("w10/a.ipynb"), P("w2/a.md"), P("intro.ipynb"), P("w2/deep/c.ipynb")]
    (track,) = course_tracks("python", parse_course_config(""), notebooks)
    assert track.name == "python"
    assert [(s.name, s.notebooks) for s in track.sections] == [
        ("python", ["intro.ipynb"]),
        ("w10", ["w10/a.ipynb"]),
        ("w2", ["w2/a.md", "w2/b.ipynb", "w2/deep/c.ipynb"]),
    ]


def test_a_course_without_notebooks_has_no_track():
    assert course_tracks("empty", parse_course_config(""), []) == []


def test_the_notebooks_of_a_checkout_are_ipynb_and_jupytext_files_never_hidden_skipped_or_linked(tmp_path):
    (tmp_path / "w1").mkdir()
    (tmp_path / "w1" / "intro.ipynb").write_text(notebook_text("1"))
    (tmp_path / "w1" / "text.md").write_text("---\njupytext:\n  text_representation:\n    format_name: markdown\n---\n")
    (tmp_path / "w1" / "README.md").write_text("# just a readme\n")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "helpers.ipynb").write_text(notebook_text("2"))
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "x.ipynb").write_text("{}")
    (tmp_path / "linked.ipynb").symlink_to(tmp_path / "w1" / "intro.ipynb")
    assert notebook_files(tmp_path, skip=[P("lib")]) == [P("w1/intro.ipynb"), P("w1/text.md")]
