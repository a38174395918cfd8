"""LTI 1.3, as a spec: the login redirect, then which id_tokens let a student in, and why the others are refused.

The platform is the test's own (tests.lti_platforms.Platform13): RSA keys of its own, its JWKS served on a free
local port, id_tokens signed with PyJWT.
"""

import time

import jwt
import pytest

from nbhosting_core import InvalidInput, LaunchRefused, PlatformUnavailable
from nbhosting_core.lti13 import CLAIM, login_redirect, make_state, read_state, verify_lti13
from nbhosting_core.platforms import parse_platforms
from nbhosting_core.system.jwks import KeySets
from nbhosting_core.system.nonces import NonceStore
from tests.lti_platforms import Platform13, new_key, query_of

SECRET = b"nbhosting-secret-" + b"x" * 16
LAUNCH = "https://nb.example.org/lti/13/launch"
TTL = 600


@pytest.fixture
def platform():
    with Platform13() as platform:
        yield platform


@pytest.fixture
def world(platform, tmp_path):
    """The platforms file (the test platform as "edx", plus one that does not launch by LTI 1.3), key sets,
    nonces."""
    text = platform.toml() + (
        '[[platform]]\nname = "off"\ncourses = ["*"]\nmethods = ["signed"]\nsecret = "' + "s" * 32 + '"\n'
        '[platform.lti13]\nissuer = "https://other.example.org"\nclient_id = "other"\ndeployment_ids = ["1"]\n'
        'auth_login_url = "https://other.example.org/auth"\njwks_url = "https://other.example.org/jwks"\n'
    )
    keys = KeySets(timeout=1.0, max_bytes=64 * 1024, ttl=3600, refetch_interval=0)
    return parse_platforms(text), keys, NonceStore(tmp_path / "nonces", keep=TTL)


def login(world, platform, **extra):
    return login_redirect(
        world[0], platform.login_params(LAUNCH, **extra), secret=SECRET, redirect_uri=LAUNCH, now=time.time()
    )


def launch_form(world, platform, token=None, **changes):
    """What the platform posts back: the id_token for the nonce of a fresh login, and the state."""
    asked = query_of(login(world, platform).url)
    if token is None:
        token = platform.id_token(platform.claims(asked["nonce"], LAUNCH, **changes))
    return {"id_token": token, "state": asked["state"]}


def verify(world, form, now=None):
    platforms, keys, nonces = world
    now = time.time() if now is None else now
    return verify_lti13(form, platforms, secret=SECRET, keys=keys, nonces=nonces, now=now, state_ttl=TTL, leeway=30)


def refused(why, world, form, **kwargs):
    with pytest.raises(LaunchRefused) as error:
        verify(world, form, **kwargs)
    assert error.value.why == why, error.value.log_detail
    assert form["id_token"] not in str(error.value) and form["state"] not in str(error.value)
    return error.value


# ------------------------------------------------------------------------------------------------- the login


def test_the_login_sends_the_browser_to_the_platform_with_a_signed_state_and_a_nonce(world, platform):
    redirect = login(world, platform)
    assert redirect.platform == "edx"
    assert redirect.url.startswith("https://courses.example.org/api/lti_consumer/v1/launch/?")
    asked = query_of(redirect.url)
    assert {k: asked[k] for k in ("scope", "response_type", "response_mode", "prompt")} == {
        "scope": "openid",
        "response_type": "id_token",
        "response_mode": "form_post",
        "prompt": "none",
    }
    assert asked["client_id"] == "nbhosting-client" and asked["redirect_uri"] == LAUNCH
    assert asked["login_hint"] == "a1b2c3d4e5f60718293a4b5c6d7e8f90"
    assert asked["lti_message_hint"] == "launch-data-key-123"  # given back unchanged
    state = read_state(SECRET, asked["state"], now=time.time(), ttl=TTL)
    assert state.platform == "edx" and state.nonce == asked["nonce"] and len(asked["nonce"]) >= 32
    assert query_of(login(world, platform).url)["nonce"] != asked["nonce"]  # a new one each time


def test_a_login_without_client_id_finds_the_issuers_only_platform(world, platform):
    params = platform.login_params(LAUNCH)
    del params["client_id"]
    redirect = login_redirect(world[0], params, secret=SECRET, redirect_uri=LAUNCH, now=time.time())
    assert redirect.platform == "edx"


@pytest.mark.parametrize(
    ("why", "changes"),
    [
        ("unknown-platform", {"iss": "https://stranger.example.org"}),
        ("unknown-platform", {"client_id": "someone-else"}),
        ("method", {"iss": "https://other.example.org", "client_id": "other"}),
        ("deployment", {"lti_deployment_id": "2"}),
        ("target", {"target_link_uri": "https://elsewhere.example.org/lti/13/launch"}),
    ],
)
def test_a_login_from_an_unknown_or_misconfigured_platform_is_refused(world, platform, why, changes):
    with pytest.raises(LaunchRefused) as error:
        login(world, platform, **changes)
    assert error.value.why == why


def test_a_login_without_its_required_parameters_is_a_bad_request(world, platform):
    params = platform.login_params(LAUNCH)
    del params["login_hint"]
    with pytest.raises(InvalidInput):
        login_redirect(world[0], params, secret=SECRET, redirect_uri=LAUNCH, now=time.time())


def test_a_state_is_nbhosting_s_signature_and_lives_a_few_minutes():
    state = make_state(SECRET, "edx", "n0nce", 1000)
    assert read_state(SECRET, state, now=1000 + TTL, ttl=TTL).nonce == "n0nce"
    for why, text, now in (
        ("state-expired", state, 1000 + TTL + 1),
        ("state-forged", make_state(b"another-secret-" + b"y" * 17, "edx", "n0nce", 1000), 1000),
        ("state-forged", state.replace("edx.", "off."), 1000),
        ("state-malformed", "edx.soon.n0nce.sig", 1000),
        ("state-malformed", "x", 1000),
    ):
        with pytest.raises(LaunchRefused) as error:
            read_state(SECRET, text, now=now, ttl=TTL)
        assert error.value.why == why


# ------------------------------------------------------------------------------------------------ the launch


def test_a_signed_launch_opens_the_notebook_of_its_custom_claim_for_its_sub_scoped_by_platform(world, platform):
    launch = verify(world, launch_form(world, platform))
    assert (launch.platform, launch.method, launch.course, launch.notebook) == (
        "edx",
        "lti13",
        "python101",
        "w1/intro.ipynb",
    )
    assert launch.student_id == "edx:a1b2c3d4e5f60718293a4b5c6d7e8f90"


def test_a_token_for_another_audience_is_refused(world, platform):
    refused("audience", world, launch_form(world, platform, aud="another-tool", azp=None))


def test_with_several_audiences_azp_must_be_nbhosting(world, platform):
    several = ["nbhosting-client", "another-tool"]
    assert verify(world, launch_form(world, platform, aud=several)).platform == "edx"
    refused("azp", world, launch_form(world, platform, aud=several, azp=None))
    refused("azp", world, launch_form(world, platform, aud=several, azp="another-tool"))


def test_an_expired_token_is_refused_within_a_small_leeway(world, platform):
    now = int(time.time())
    assert verify(world, launch_form(world, platform, exp=now - 20)).platform == "edx"  # 30 s of leeway
    refused("expired", world, launch_form(world, platform, exp=now - 31))
    refused("not-yet-valid", world, launch_form(world, platform, iat=now + 120))


def test_a_token_signed_with_another_key_is_refused(world, platform):
    asked = query_of(login(world, platform).url)
    forged = platform.id_token(platform.claims(asked["nonce"], LAUNCH), kid="k1", key=new_key())
    refused("bad-signature", world, {"id_token": forged, "state": asked["state"]})


def test_unsigned_or_symmetrically_signed_tokens_are_refused(world, platform):
    asked = query_of(login(world, platform).url)
    claims = platform.claims(asked["nonce"], LAUNCH)
    for token in (
        jwt.encode(claims, None, algorithm="none"),
        jwt.encode(claims, "a-guessable-shared-key-of-32-bytes!", algorithm="HS256", headers={"kid": "k1"}),
    ):
        refused("algorithm", world, {"id_token": token, "state": asked["state"]})


def test_a_replayed_launch_is_refused(world, platform):
    form = launch_form(world, platform)
    verify(world, form)
    refused("replayed", world, form)


def test_a_token_with_another_nonce_than_the_logins_is_refused(world, platform):
    first, second = query_of(login(world, platform).url), query_of(login(world, platform).url)
    token = platform.id_token(platform.claims(first["nonce"], LAUNCH))
    refused("nonce", world, {"id_token": token, "state": second["state"]})


@pytest.mark.parametrize(
    ("why", "changes"),
    [
        ("deployment", {CLAIM + "deployment_id": "2"}),
        ("deployment", {CLAIM + "deployment_id": None}),
        ("message-type", {CLAIM + "message_type": "LtiDeepLinkingRequest"}),
        ("version", {CLAIM + "version": "1.2.0"}),
        ("resource-link", {CLAIM + "resource_link": None}),
        ("issuer", {"iss": "https://stranger.example.org"}),
        ("malformed", {"nonce": None}),
    ],
)
def test_a_token_with_a_wrong_claim_is_refused(world, platform, why, changes):
    refused(why, world, launch_form(world, platform, **changes))


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({CLAIM + "custom": None}, "which notebook"),
        ({CLAIM + "custom": {"course": "python101"}}, "which notebook"),
        ({"sub": None}, "who you are"),
    ],
)
def test_a_token_missing_its_user_course_or_notebook_is_a_bad_request(world, platform, changes, says):
    with pytest.raises(InvalidInput) as error:
        verify(world, launch_form(world, platform, **changes))
    assert says in error.value.message


def test_a_course_the_platform_may_not_launch_is_refused(world, platform):
    custom = {"course": "secret-course", "notebook": "a.ipynb"}
    refused("course", world, launch_form(world, platform, **{CLAIM + "custom": custom}))


def test_without_custom_claim_the_target_link_uri_may_name_the_notebook(world, platform):
    target = LAUNCH + "?course=data-science&notebook=w2/pandas.ipynb"
    launch = verify(world, launch_form(world, platform, **{CLAIM + "custom": None, CLAIM + "target_link_uri": target}))
    assert (launch.course, launch.notebook) == ("data-science", "w2/pandas.ipynb")


def test_an_unknown_key_makes_nbhosting_fetch_the_platforms_keys_again_when_it_rotates(world, platform):
    assert verify(world, launch_form(world, platform)).platform == "edx"  # k1, fetched and cached
    assert platform.fetches == 1
    platform.rotate("k2")
    assert verify(world, launch_form(world, platform)).platform == "edx"  # signed with k2: fetched again
    assert platform.fetches == 2
    asked = query_of(login(world, platform).url)
    old = platform.id_token(platform.claims(asked["nonce"], LAUNCH), kid="k1")  # the retired key
    refused("unknown-key", world, {"id_token": old, "state": asked["state"]})


def test_a_platform_whose_keys_do_not_answer_gets_a_clear_error_within_the_timeout(world, platform):
    platform.silent = True
    started = time.monotonic()
    with pytest.raises(PlatformUnavailable) as error:
        verify(world, launch_form(world, platform))
    assert time.monotonic() - started < 3  # timeout 1 s
    assert "did not answer" in error.value.message and "within 1 s" in error.value.log_detail


def test_the_platforms_own_refusal_is_said_as_such(world):
    with pytest.raises(LaunchRefused) as error:
        verify(world, {"error": "login_required", "error_description": "log in first"})
    assert error.value.why == "platform-error"


def test_a_post_without_token_or_state_is_a_bad_request(world):
    with pytest.raises(InvalidInput):
        verify(world, {"state": "x"})
