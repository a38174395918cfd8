"""The door, as a spec: which launches a platform vouches for, and why the others are refused."""

import pytest

from nbhosting_core import LaunchRefused
from nbhosting_core.launches import (
    Admission,
    admission_token,
    admit,
    check_admission_token,
    check_poll_token,
    launch_signature,
    poll_token,
    signed_launch_path,
)
from nbhosting_core.platforms import parse_platforms

PLATFORMS = parse_platforms("""
[[platform]]
name = "edx"
origins = ["https://courses.example.org"]
courses = ["python101"]
methods = ["signed", "legacy"]
secret = "0123456789abcdef0123456789abcdef"

[[platform]]
name = "lti-only"
courses = ["*"]
methods = ["lti11"]
[platform.lti11]
consumer_key = "k"
shared_secret = "sixteen-chars-ok"
""")
EDX = PLATFORMS.get("edx")
NOW = 1_000_000
TTL = 3600


def signed(course="python101", notebook="w1/intro.ipynb", student="4f8a", expires=NOW + 60, platform=EDX):
    sig = launch_signature(platform.secret.get_secret_value(), platform.name, course, notebook, student, expires)
    return {"platform": platform.name, "expires": str(expires), "signature": sig}


def door(query, course="python101", notebook="w1/intro.ipynb", student="4f8a", **headers):
    return admit(PLATFORMS, course, notebook, student, query, now=NOW, max_ttl=TTL, **headers)


def refused(why, *args, **kwargs):
    with pytest.raises(LaunchRefused) as error:
        door(*args, **kwargs)
    assert error.value.why == why, error.value.log_detail
    return error.value


def test_a_signed_launch_opens_that_notebook_for_that_student_scoped_by_platform():
    admission = door(signed())
    assert (admission.platform, admission.method, admission.student_id) == ("edx", "signed", "edx:4f8a")


def test_a_signed_url_is_what_signed_launch_path_builds():
    path = signed_launch_path(EDX, "python101", "w1/intro.ipynb", "4f8a", NOW + 60)
    assert path.startswith("/notebookLazyCopy/python101/w1/intro.ipynb/4f8a?platform=edx&expires=1000060&signature=")
    assert path.endswith(signed()["signature"])


def test_an_expired_or_too_long_lived_url_is_refused():
    assert "expired" in refused("expired", signed(expires=NOW - 1)).message
    refused("too-far", signed(expires=NOW + TTL + 1))


def test_a_url_signed_for_another_student_notebook_or_course_is_refused():
    query = signed()
    refused("bad-signature", query, student="someone-else")
    refused("bad-signature", query, notebook="w1/other.ipynb")
    refused("bad-signature", {**query, "expires": str(NOW + 61)})
    refused("bad-signature", {**query, "signature": query["signature"][:-1] + "A"})


def test_unknown_platforms_forbidden_courses_and_methods_are_refused():
    refused("unknown-platform", {**signed(), "platform": "nobody"})
    refused("course", signed(course="python102"), course="python102")
    refused("method", {"platform": "lti-only", "expires": str(NOW + 60), "signature": "x"})
    refused("malformed", {"platform": "edx", "expires": "soon", "signature": "x"})
    refused("malformed", {"platform": "edx", "expires": str(NOW + 60)})


def test_an_unsigned_launch_passes_only_from_the_legacy_platforms_origins():
    admission = door({}, referer="https://courses.example.org/courses/x/jump_to/y")
    assert (admission.method, admission.student_id) == ("legacy", "edx:4f8a")
    refused("legacy-origin", {}, referer="https://evil.example.com/")
    refused("legacy-origin", {})  # no Referer: nobody vouches
    refused("course", {}, course="python102", referer="https://courses.example.org/")


def test_without_a_legacy_platform_an_unsigned_launch_is_refused():
    strict = parse_platforms(
        '[[platform]]\nname = "a"\ncourses = ["*"]\nmethods = ["signed"]\nsecret = "' + "s" * 32 + '"\n'
    )
    with pytest.raises(LaunchRefused) as error:
        admit(strict, "c", "n.ipynb", "x", {}, now=NOW, max_ttl=TTL, referer="https://a.example")
    assert error.value.why == "unsigned"


def test_a_poll_token_follows_that_launch_only_until_it_expires():
    secret = b"s" * 32
    admission = door(signed())
    token = poll_token(secret, admission, "python101", "w1/intro.ipynb", "4f8a", NOW + 90)
    followed = check_poll_token(secret, PLATFORMS, token, "python101", "w1/intro.ipynb", "4f8a", now=NOW)
    assert followed.student_id == "edx:4f8a" and followed.method == "poll"
    for student, now in (("other", NOW), ("4f8a", NOW + 91)):
        with pytest.raises(LaunchRefused):
            check_poll_token(secret, PLATFORMS, token, "python101", "w1/intro.ipynb", student, now=now)
    with pytest.raises(LaunchRefused):
        check_poll_token(b"x" * 32, PLATFORMS, token, "python101", "w1/intro.ipynb", "4f8a", now=NOW)


def test_an_admission_token_admits_that_launch_by_that_method_for_a_minute():
    secret = b"s" * 32
    verified = Admission(platform="lti-only", method="lti11", student_id="lti-only:4f8a")
    token = admission_token(secret, verified, "python101", "w1/intro.ipynb", "4f8a", NOW + 60)
    admitted = check_admission_token(secret, PLATFORMS, token, "python101", "w1/intro.ipynb", "4f8a", now=NOW)
    assert admitted == verified


@pytest.mark.parametrize(
    ("why", "change"),
    [
        ("bad-signature", {"student": "someone-else"}),
        ("bad-signature", {"notebook": "w1/other.ipynb"}),
        ("bad-signature", {"secret": b"x" * 32}),
        ("expired", {"now": NOW + 61}),
        ("malformed", {"token": "nobody.lti11.1000060.x"}),
        ("malformed", {"token": "lti-only.signed.1000060.x"}),  # only methods nbhosting verifies itself
        ("method", {"method": "lti13"}),  # the platform does not (or no longer) launch by LTI 1.3
    ],
)
def test_an_admission_token_for_another_launch_or_method_is_refused(why, change):
    args = {"secret": b"s" * 32, "student": "4f8a", "notebook": "w1/intro.ipynb", "now": NOW, "method": "lti11"}
    args.update(change)
    verified = Admission(platform="lti-only", method=args["method"], student_id="lti-only:4f8a")
    token = args.get("token") or admission_token(b"s" * 32, verified, "python101", "w1/intro.ipynb", "4f8a", NOW + 60)
    with pytest.raises(LaunchRefused) as error:
        check_admission_token(
            args["secret"], PLATFORMS, token, "python101", args["notebook"], args["student"], now=args["now"]
        )
    assert error.value.why == why


def test_a_signed_or_legacy_launch_cannot_be_made_into_an_admission_token():
    with pytest.raises(ValueError):
        admission_token(b"s" * 32, door(signed()), "python101", "w1/intro.ipynb", "4f8a", NOW + 60)
