"""Image versions, as a spec: how they are named, which is the newest, what a build publishes, what prune may take."""

from __future__ import annotations

from nbhosting_core.imageversions import (
    ImageVersion,
    is_up_to_date,
    newest,
    next_version,
    parse_version,
    prunable,
    versions_of,
)

H1, H2, H3 = "aaaaaaaaaaaa", "bbbbbbbbbbbb", "cccccccccccc"


def test_a_version_is_named_after_its_course_number_and_content_hash_and_read_back():
    version = ImageVersion("data-science.2", 3, H1)
    assert version.name == f"course-data-science.2-3-{H1}"
    assert parse_version(version.name) == version


def test_folders_that_are_not_course_versions_are_not_read_as_versions():
    for name in ("default-fd5943ea3c88", "wheels", f"course-x-0-{H1}", f"course-x-1-{H1[:11]}", "course--1-" + H1):
        assert parse_version(name) is None, name


def test_the_newest_version_is_the_highest_number_not_the_last_name_in_order():
    names = [f"course-c-9-{H1}", f"course-c-10-{H2}", f"course-c-2-{H3}"]
    assert newest(names, "c") == ImageVersion("c", 10, H2)
    assert [v.number for v in versions_of(names, "c")] == [2, 9, 10]


def test_a_course_whose_name_ends_like_another_courses_version_is_kept_apart():
    names = [f"course-c-1-{H1}", f"course-c-1-2-{H2}"]  # course "c" v1, and course "c-1" v2
    assert newest(names, "c") == ImageVersion("c", 1, H1)
    assert newest(names, "c-1") == ImageVersion("c-1", 2, H2)


def test_a_first_build_is_version_1_and_each_next_one_more_than_the_newest():
    assert next_version([], "c", H1) == ImageVersion("c", 1, H1)
    assert next_version([f"course-c-1-{H1}", f"course-c-4-{H2}"], "c", H3) == ImageVersion("c", 5, H3)


def test_a_build_of_the_newest_versions_content_is_up_to_date_an_older_ones_is_not():
    names = [f"course-c-1-{H1}", f"course-c-2-{H2}"]
    assert is_up_to_date(names, "c", H2)
    assert not is_up_to_date(names, "c", H1)  # going back to old content makes a version 3
    assert not is_up_to_date([], "c", H1)


def test_prune_takes_old_versions_and_old_defaults_no_server_uses():
    names = [f"course-c-1-{H1}", f"course-c-2-{H2}", f"course-c-3-{H3}", "default-111111111111", "default-222222222222"]
    assert prunable(names, in_use=[f"course-c-2-{H2}"], in_service=["default-222222222222"]) == [
        f"course-c-1-{H1}",
        "default-111111111111",
    ]


def test_prune_keeps_the_newest_version_of_every_course_even_unused():
    names = [f"course-a-1-{H1}", f"course-b-1-{H1}", f"course-b-2-{H2}"]
    assert prunable(names, in_use=[], in_service=[]) == [f"course-b-1-{H1}"]


def test_prune_never_touches_what_is_not_an_image_folder():
    names = ["wheels", "logs", ".course-c-2-aaaaaaaaaaaa.tmp", "tiny-aaaaaaaaaaaa"]
    assert prunable(names, in_use=[], in_service=[]) == []
