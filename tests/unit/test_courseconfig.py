"""A course's .nbhosting/course.toml: defaults without it, every key checked, a mistake reported with its line."""

from __future__ import annotations

import os

import pytest

from nbhosting_core import InvalidConfig
from nbhosting_core.courseconfig import CourseConfig, load_course_config, parse_course_config

FULL = """\
image = "course"
ui = "lab"
readonly = ["data", "media/images"]
pythonpath = "lib"

[[tracks]]
name = "Basics"

[[tracks.sections]]
name = "Week 1"
notebooks = ["w1/intro", "w1/loops.md"]

[[tracks.sections]]
name = "Week 2"
notebooks = ["w2/files.ipynb"]
"""


def test_without_the_file_a_course_gets_the_defaults(tmp_path):
    config = load_course_config(tmp_path)
    assert config == CourseConfig()
    assert config.image is None and config.ui is None and config.pythonpath is None and config.tracks == []
    assert config.ui_or("notebook") == "notebook"


def test_every_key_is_read(tmp_path):
    config = parse_course_config(FULL)
    assert config.image == "course" and config.ui_or("notebook") == "lab"
    assert config.readonly == ["data", "media/images"] and config.pythonpath == "lib"
    assert [s.name for s in config.tracks[0].sections] == ["Week 1", "Week 2"]
    assert config.tracks[0].sections[0].notebooks == ["w1/intro", "w1/loops.md"]


@pytest.mark.parametrize("image", ["default", "course", "python-2024"])
def test_the_image_is_the_default_the_courses_own_or_another_courses(image):
    assert parse_course_config(f'image = "{image}"').image == image


def test_read_only_folders_default_to_data_and_media_where_they_exist(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "media").symlink_to(tmp_path / "elsewhere")  # never offered: a symlink could lead anywhere
    assert [str(p) for p in CourseConfig().readonly_folders(tmp_path)] == ["data"]
    assert parse_course_config("readonly = []").readonly_folders(tmp_path) == []


@pytest.mark.parametrize(
    ("text", "line", "field", "why"),
    [
        ('ui = "lab"\nimage = "../x"\n', 2, "image", "course name"),
        ('ui = "classic"\n', 1, "ui", "'notebook' or 'lab'"),
        ('# comment\n\nreadonly = ["data", "../etc"]\n', 3, "readonly", "not a folder of the course"),
        ('pythonpath = "/usr/lib"\n', 1, "pythonpath", "not a folder"),
        ('ui = "lab"\ncolour = "blue"\n', 2, "colour", "Extra inputs"),
        (FULL.replace('notebooks = ["w2/files.ipynb"]', 'notebooks = ["w2/../../x.ipynb"]'), 15, "notebooks", "'..'"),
        (FULL.replace('name = "Week 2"', 'nom = "Week 2"'), 13, "name", "Field required"),  # the section's header
        (FULL + '\n[[tracks]]\nname = "More"\n[[tracks.sections]]\nname = ""\n', 20, "name", "at least 1"),
    ],
)
def test_a_mistake_is_reported_with_its_line_and_why(text, line, field, why):
    with pytest.raises(InvalidConfig) as refused:
        parse_course_config(text)
    message = refused.value.message
    assert f"line {line}:" in message and field in message and why in message


def test_a_file_that_is_not_toml_is_reported_with_its_line():
    with pytest.raises(InvalidConfig, match="line 2"):
        parse_course_config('ui = "lab"\nimage = \n')


def test_the_file_is_read_in_the_repository_never_through_a_symlink(tmp_path):
    secret = tmp_path / "secret.toml"
    secret.write_text('ui = "lab"\n')
    course = tmp_path / "course"
    (course / ".nbhosting").mkdir(parents=True)
    (course / ".nbhosting" / "course.toml").symlink_to(secret)
    with pytest.raises(InvalidConfig, match="not a plain file"):
        load_course_config(course)
    os.unlink(course / ".nbhosting" / "course.toml")
    os.rmdir(course / ".nbhosting")
    (course / ".nbhosting").symlink_to(tmp_path)
    with pytest.raises(InvalidConfig, match="not a plain folder"):
        load_course_config(course)


def test_a_fifo_is_refused_without_blocking(tmp_path):
    (tmp_path / ".nbhosting").mkdir()
    os.mkfifo(tmp_path / ".nbhosting" / "course.toml")
    with pytest.raises(InvalidConfig, match="not a plain file"):
        load_course_config(tmp_path)
