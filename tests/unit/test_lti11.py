"""LTI 1.1, as a spec: which signed launch forms let a student in, and why the others are refused.

The platform is the test's own consumer, signing with oauthlib's Client as Open edX's LTI consumer does.
"""

import urllib.parse

import pytest

from nbhosting_core import InvalidInput, LaunchRefused
from nbhosting_core.lti11 import verify_lti11
from nbhosting_core.platforms import parse_platforms
from nbhosting_core.system.nonces import NonceStore
from tests.lti_platforms import Consumer11

PLATFORMS = parse_platforms("""
[[platform]]
name = "edx"
courses = ["python101", "data-*"]
methods = ["lti11"]
[platform.lti11]
consumer_key = "nbhosting"
shared_secret = "edx-shared-secret-0123"

[[platform]]
name = "signs-only"
courses = ["*"]
methods = ["signed"]
secret = "0123456789abcdef0123456789abcdef"
[platform.lti11]
consumer_key = "signs-only-key"
shared_secret = "signs-only-secret-0123"
""")
EDX = Consumer11("nbhosting", "edx-shared-secret-0123")
URL = "https://nb.example.org/lti/11/launch"
NOW = 1_800_000_000
WINDOW = 300


@pytest.fixture
def nonces(tmp_path):
    return NonceStore(tmp_path / "nonces", keep=WINDOW, clock=lambda: NOW)


def verify(body, nonces, url=URL, now=NOW):
    return verify_lti11(url, body, PLATFORMS, now=now, window=WINDOW, nonces=nonces)


def refused(why, body, nonces, **kwargs):
    with pytest.raises(LaunchRefused) as error:
        verify(body, nonces, **kwargs)
    assert error.value.why == why, error.value.log_detail
    signature = dict(urllib.parse.parse_qsl(body)).get("oauth_signature", "no signature")
    for secret in ("edx-shared-secret-0123", "signs-only-secret-0123", signature):  # never in a log line
        assert secret not in str(error.value)
    return error.value


def test_a_signed_launch_opens_the_notebook_of_its_custom_parameters_for_its_user_scoped_by_platform(nonces):
    launch = verify(EDX.sign(URL, EDX.form(), timestamp=NOW), nonces)
    assert (launch.platform, launch.method, launch.course, launch.notebook) == (
        "edx",
        "lti11",
        "python101",
        "w1/intro.ipynb",
    )
    assert launch.student_id == "edx:a1b2c3d4e5f60718293a4b5c6d7e8f90"


def test_hmac_sha256_is_accepted_too_but_plaintext_is_not(nonces):
    assert verify(EDX.sign(URL, EDX.form(), timestamp=NOW, method="HMAC-SHA256"), nonces).platform == "edx"
    with pytest.raises(InvalidInput):
        verify(EDX.sign(URL, EDX.form(), timestamp=NOW, method="PLAINTEXT"), nonces)


def test_a_launch_signed_with_another_secret_or_changed_after_signing_is_refused(nonces):
    refused("bad-signature", EDX.sign(URL, EDX.form(), timestamp=NOW, secret="not-the-shared-secret"), nonces)
    body = EDX.sign(URL, EDX.form(), timestamp=NOW)
    refused("bad-signature", body.replace("a1b2c3d4e5f60718293a4b5c6d7e8f90", "someone-else"), nonces)
    refused("bad-signature", body.replace("python101", "data-science"), nonces)


def test_a_launch_signed_for_another_url_is_refused(nonces):
    # the platform signs the URL it posts to: behind Caddy, nbhosting rebuilds it from its public URL
    body = EDX.sign("http://127.0.0.1:8710/lti/11/launch", EDX.form(), timestamp=NOW)
    error = refused("bad-signature", body, nonces)
    assert URL in error.log_detail


def test_a_stale_or_future_timestamp_is_refused(nonces):
    refused("stale", EDX.sign(URL, EDX.form(), timestamp=NOW - WINDOW - 1), nonces)
    refused("stale", EDX.sign(URL, EDX.form(), timestamp=NOW + WINDOW + 1), nonces)
    assert verify(EDX.sign(URL, EDX.form(), timestamp=NOW - WINDOW), nonces).platform == "edx"  # the edge


def test_a_replayed_launch_is_refused(nonces):
    body = EDX.sign(URL, EDX.form(), timestamp=NOW, nonce="once-only")
    verify(body, nonces)
    refused("replayed", body, nonces)


def test_a_nonce_is_claimed_only_once_the_signature_is_good(nonces):
    body = EDX.sign(URL, EDX.form(), timestamp=NOW, nonce="precious")
    forged = EDX.sign(URL, EDX.form(user_id="mallory"), timestamp=NOW, nonce="precious", secret="guessed-secret")
    refused("bad-signature", forged, nonces)
    assert verify(body, nonces).user_id == "a1b2c3d4e5f60718293a4b5c6d7e8f90"  # the forgery burnt nothing


def test_an_unknown_consumer_key_is_refused(nonces):
    stranger = Consumer11("who-is-this", "edx-shared-secret-0123")
    error = refused("unknown-consumer", stranger.sign(URL, stranger.form(), timestamp=NOW), nonces)
    assert "'who-is-this'" in error.log_detail


def test_a_platform_that_does_not_launch_by_lti11_is_refused_even_correctly_signed(nonces):
    other = Consumer11("signs-only-key", "signs-only-secret-0123")
    error = refused("method", other.sign(URL, other.form(), timestamp=NOW), nonces)
    assert "course staff" in error.message


def test_a_course_the_platform_may_not_launch_is_refused(nonces):
    refused("course", EDX.sign(URL, EDX.form(custom_course="secret-course"), timestamp=NOW), nonces)


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"custom_course": None}, "which notebook"),
        ({"custom_notebook": None}, "which notebook"),
        ({"custom_notebook": "../../etc/passwd.ipynb"}, "Invalid notebook path"),
        ({"custom_course": "bad..course"}, "Invalid course name"),
        ({"user_id": None}, "who you are"),
        ({"user_id": "has space"}, "Invalid student id"),
        ({"lti_message_type": "ContentItemSelectionRequest"}, "could not be verified"),
    ],
)
def test_a_launch_missing_its_user_course_or_notebook_is_a_bad_request(nonces, fields, says):
    with pytest.raises(InvalidInput) as error:
        verify(EDX.sign(URL, EDX.form(**fields), timestamp=NOW), nonces)
    assert says in error.value.message


def test_without_custom_parameters_the_launch_url_may_name_the_notebook(nonces):
    url = URL + "?course=data-science&notebook=w2/pandas.ipynb"  # part of what the platform signs
    form = EDX.form(custom_course=None, custom_notebook=None)
    launch = verify(EDX.sign(url, form, timestamp=NOW), nonces, url=url)
    assert (launch.course, launch.notebook) == ("data-science", "w2/pandas.ipynb")


@pytest.mark.parametrize("body", ["", "user_id=x", "oauth_consumer_key=nbhosting&oauth_signature=x", "%zz=1"])
def test_a_form_that_is_not_an_oauth_signed_launch_is_a_bad_request(nonces, body):
    with pytest.raises(InvalidInput):
        verify(body, nonces)


def test_launches_need_a_public_url_over_tls(nonces):
    refused("insecure", EDX.sign("http://nb.example.org/lti/11/launch", EDX.form(), timestamp=NOW), nonces,
            url="http://nb.example.org/lti/11/launch")  # fmt: skip
