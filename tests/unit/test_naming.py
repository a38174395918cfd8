import pytest

from nbhosting_core import InvalidInput
from nbhosting_core.naming import (
    container_name,
    is_key,
    subid_range,
    user_name,
    validate_course,
    validate_notebook_path,
    validate_student_id,
)


@pytest.mark.parametrize("course", ["python3-s2", "flotpython", "a", "MOOC_2024.v1", "x" * 64])
def test_valid_course_names_are_accepted(course):
    assert validate_course(course) == course


@pytest.mark.parametrize("course", ["", "-x", ".hidden", "a/b", "a b", "x" * 65, "a..b", "é", "a;rm", "../etc"])
def test_bad_course_names_are_refused_with_a_message(course):
    with pytest.raises(InvalidInput, match="course name"):
        validate_course(course)


@pytest.mark.parametrize("path", ["intro.ipynb", "w1/intro.ipynb", "w 1/é.ipynb", "a/b/c/d.ipynb"])
def test_valid_notebook_paths_are_accepted(path):
    assert str(validate_notebook_path(path)) == path


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("", "empty"),
        ("/etc/passwd.ipynb", "relative"),
        ("../x.ipynb", r"'\.\.'"),
        ("w1/../../x.ipynb", r"'\.\.'"),
        ("w1//x.ipynb", "empty"),
        ("./x.ipynb", r"'\.'"),
        (".ipynb_checkpoints/x.ipynb", "hidden"),
        ("w1/.x.ipynb", "hidden"),
        ("x.txt", "only"),
        ("w1/intro.v2", "only"),
        ("x.ipynb/", "empty"),
        ("a\\..\\x.ipynb", "control"),
        ("a\nb.ipynb", "control"),
        ("a\x00b.ipynb", "control"),
        ("x" * 256 + ".ipynb", "too long"),
        ("a/" * 600 + "x.ipynb", "longer than"),
    ],
)
def test_escaping_or_odd_notebook_paths_are_refused(path, why):
    with pytest.raises(InvalidInput, match=why):
        validate_notebook_path(path)


@pytest.mark.parametrize(
    "sid", ["a1b2c3", "0" * 32, "auth0|1234", "jean.dupont@example.org", "x" * 300, "x$y`z", "edx:4f8a"]
)
def test_opaque_student_ids_are_accepted(sid):
    assert validate_student_id(sid) == sid


@pytest.mark.parametrize("sid", ["", "a b", "a/b", "a\\b", "x" * 301, "é", "a\tb", "a\nb", "\x7f"])
def test_odd_student_ids_are_refused(sid):
    with pytest.raises(InvalidInput, match="student id"):
        validate_student_id(sid)


def test_user_name_is_deterministic_valid_and_never_the_raw_id():
    name = user_name("alice")
    assert name == user_name("alice")
    assert name != user_name("alice2")
    assert name.startswith("nbh-") and len(name) == 28 and "alice" not in name
    assert all(c in "abcdef0123456789-nbh" for c in name)


def test_user_name_of_a_hostile_id_is_still_a_plain_name():
    name = user_name("$(rm;-rf;~);`id`|x")
    assert name[4:].isalnum()


def test_user_name_prefix_is_checked():
    assert user_name("alice", "nbt-").startswith("nbt-")
    with pytest.raises(ValueError):
        user_name("alice", "Bad prefix")


def test_container_name_joins_user_and_course():
    assert container_name("nbh-abc", "python3-s2") == "nbh-abc-python3-s2"
    with pytest.raises(InvalidInput):
        container_name("nbh-abc", "../x")


def test_subid_ranges_are_disjoint_and_narrow():
    ranges = [subid_range(uid, uid_min=1000, subid_base=2**31, subid_count=1024) for uid in range(1000, 1100)]
    starts = [start for start, _ in ranges]
    assert all(b - a == 1024 for a, b in zip(starts, starts[1:], strict=False))
    assert ranges[0] == (2**31, 1024)
    with pytest.raises(ValueError):
        subid_range(999, uid_min=1000, subid_base=2**31, subid_count=1024)


def test_a_host_holds_more_than_100000_students_with_default_settings():
    from nbhosting_core import Settings

    s = Settings()
    last_uid = s.uid_min + 150_000
    start, count = subid_range(last_uid, uid_min=s.uid_min, subid_base=s.subid_base, subid_count=s.subid_count)
    assert start + count <= 2**32 - 1
    assert s.uid_max - s.uid_min >= 150_000


def test_is_key_accepts_only_40_hex_digits():
    assert is_key("a" * 40)
    assert not is_key("a" * 39)
    assert not is_key("A" * 40)
    assert not is_key("../" + "a" * 37)


@pytest.mark.parametrize(
    ("asked", "candidates", "copy"),
    [
        ("w1/intro", ["w1/intro.ipynb", "w1/intro.md", "w1/intro.py"], "w1/intro.ipynb"),
        ("w1/intro.md", ["w1/intro.md", "w1/intro.ipynb", "w1/intro.py"], "w1/intro.ipynb"),
        ("w1/intro.py", ["w1/intro.py", "w1/intro.ipynb", "w1/intro.md"], "w1/intro.ipynb"),
        ("intro.ipynb", ["intro.ipynb", "intro.md", "intro.py"], "intro.ipynb"),
    ],
)
def test_a_launch_opens_the_file_named_else_the_ipynb_md_py_of_that_name_and_the_copy_is_an_ipynb(
    asked, candidates, copy
):
    from nbhosting_core.naming import notebook_candidates, student_copy_path

    path = validate_notebook_path(asked)
    assert [str(c) for c in notebook_candidates(path)] == candidates
    assert str(student_copy_path(path)) == copy
