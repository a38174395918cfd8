"""Who and what a verified LTI launch names, and how it continues as a click (pure)."""

import urllib.parse

import pytest

from nbhosting_core import InvalidInput, LaunchRefused
from nbhosting_core.launches import check_admission_token
from nbhosting_core.lti import ADMISSION_TTL, continue_path, launch_for
from nbhosting_core.platforms import parse_platforms

PLATFORMS = parse_platforms("""
[[platform]]
name = "edx"
courses = ["python101", "data-*"]
methods = ["lti11"]
[platform.lti11]
consumer_key = "nbhosting"
shared_secret = "edx-shared-secret-0123"
""")
EDX = PLATFORMS.get("edx")
CUSTOM = {"course": "python101", "notebook": "w1/intro.ipynb"}


def test_the_user_is_the_platforms_scoped_and_the_notebook_comes_from_the_custom_parameters():
    launch = launch_for(EDX, "lti11", "4f8a", CUSTOM)
    assert (launch.student_id, launch.course, launch.notebook) == ("edx:4f8a", "python101", "w1/intro.ipynb")
    assert launch.admission().method == "lti11"


def test_custom_parameters_win_over_the_target_urls_query():
    launch = launch_for(EDX, "lti11", "4f8a", CUSTOM, "https://nb/lti/11/launch?course=data-x&notebook=b.ipynb")
    assert launch.course == "python101"
    launch = launch_for(EDX, "lti11", "4f8a", {}, "https://nb/lti/11/launch?course=data-x&notebook=b.ipynb")
    assert (launch.course, launch.notebook) == ("data-x", "b.ipynb")


@pytest.mark.parametrize(
    ("user", "custom", "says"),
    [
        (None, CUSTOM, "who you are"),
        ("", CUSTOM, "who you are"),
        (42, CUSTOM, "who you are"),
        ("4f8a", {"course": "python101"}, "which notebook"),
        ("4f8a", {"course": " ", "notebook": "a.ipynb"}, "which notebook"),
        ("4f8a", {"course": "python101", "notebook": 7}, "which notebook"),
        ("4f8a", {"course": "python101", "notebook": "/etc/a.ipynb"}, "Invalid notebook path"),
    ],
)
def test_a_launch_without_a_valid_user_course_or_notebook_is_a_bad_request(user, custom, says):
    with pytest.raises(InvalidInput) as error:
        launch_for(EDX, "lti11", user, custom)
    assert says in error.value.message


def test_a_course_the_platform_may_not_launch_is_refused():
    with pytest.raises(LaunchRefused) as error:
        launch_for(EDX, "lti11", "4f8a", {"course": "other", "notebook": "a.ipynb"})
    assert error.value.why == "course"


def test_a_verified_launch_continues_at_the_launch_url_with_an_admission_token_for_a_minute():
    secret, now = b"s" * 32, 1_800_000_000
    launch = launch_for(EDX, "lti11", "id:with@odd", {"course": "python101", "notebook": "w 1/intro.ipynb"})
    path, _, query = continue_path(secret, launch, now=now).partition("?")
    assert path == "/notebookLazyCopy/python101/w%201/intro.ipynb/id%3Awith%40odd"
    token = dict(urllib.parse.parse_qsl(query))["admit"]
    admitted = check_admission_token(secret, PLATFORMS, token, "python101", "w 1/intro.ipynb", "id:with@odd", now=now)
    assert admitted.student_id == "edx:id:with@odd" and admitted.method == "lti11"
    with pytest.raises(LaunchRefused):
        check_admission_token(
            secret, PLATFORMS, token, "python101", "w 1/intro.ipynb", "id:with@odd", now=now + ADMISSION_TTL + 1
        )
