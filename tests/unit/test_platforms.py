"""The platforms file: what it may say, and how a mistake is reported (the line and the reason)."""

import pytest

from nbhosting_core import InvalidConfig
from nbhosting_core.platforms import load_platforms, origin_of, parse_platforms

GOOD = """
[[platform]]
name = "edx"
origins = ["https://courses.example.org", "https://studio.example.org:8443"]
courses = ["python101", "data-*"]
methods = ["signed", "lti11", "lti13", "legacy"]
secret = "0123456789abcdef0123456789abcdef"

[platform.lti11]
consumer_key = "nbhosting"
shared_secret = "sixteen-chars-ok"

[platform.lti13]
issuer = "https://courses.example.org"
client_id = "abc"
deployment_ids = ["1"]
auth_login_url = "https://courses.example.org/api/lti_consumer/v1/launch/"
jwks_url = "https://courses.example.org/api/lti_consumer/v1/public_keysets/x"

[[platform]]
name = "moodle"
courses = ["*"]
methods = ["signed"]
secret = "fedcba9876543210fedcba9876543210"
"""


def test_a_good_file_gives_every_platform_and_their_lookups():
    platforms = parse_platforms(GOOD)
    edx = platforms.get("edx")
    assert edx is not None and edx.may_launch("python101") and edx.may_launch("data-science")
    assert not edx.may_launch("other") and platforms.get("moodle").may_launch("anything")
    assert platforms.by_consumer_key("nbhosting") is edx
    assert platforms.by_client("https://courses.example.org", "abc") is edx
    assert platforms.legacy() is edx
    assert platforms.origins() == ["https://courses.example.org", "https://studio.example.org:8443"]
    assert edx.student("4f8a") == "edx:4f8a"


def test_no_file_means_no_platform(tmp_path):
    assert load_platforms(tmp_path / "absent.toml").platform == []


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (('secret = "0123456789abcdef0123456789abcdef"', 'secret = "short"'), "at least 32"),
        (('shared_secret = "sixteen-chars-ok"', 'shared_secret = "short"'), "at least 16"),
        (('name = "moodle"', 'name = "Moo dle"'), "platform name"),
        (('"https://studio.example.org:8443"', '"https://studio.example.org/path"'), "not an origin"),
        (('jwks_url = "https://', 'jwks_url = "http://'), "https://"),
        (('courses = ["*"]', 'courses = ["../x"]'), "course name or pattern"),
        (('methods = ["signed"]', 'methods = ["signed", "telepathy"]'), "methods"),
        (('name = "edx"', 'name = "edx"\nflavour = "mint"'), "flavour"),
    ],
)
def test_a_mistake_is_refused_with_its_line_and_why(change, words):
    old, new = change
    text = GOOD.replace(old, new, 1)
    line = next(n for n, x in enumerate(text.splitlines(), 1) if x == new.splitlines()[-1] or new.splitlines()[-1] in x)
    with pytest.raises(InvalidConfig) as refused:
        parse_platforms(text, source="platforms.toml")
    message = refused.value.message
    assert f"platforms.toml, line {line}:" in message and words in message, message


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('[[platform]]\nname = "a"\ncourses = ["*"]\nmethods = ["signed"]\n', "needs a secret"),
        ('[[platform]]\nname = "a"\ncourses = ["*"]\nmethods = ["lti11"]\n', "needs a [platform.lti11]"),
        ('[[platform]]\nname = "a"\ncourses = ["*"]\nmethods = ["legacy"]\n', "needs the platform's origins"),
        (GOOD.replace('name = "moodle"', 'name = "edx"'), "same name"),
        ("[[platform]\n", "platforms.toml"),
    ],
)
def test_what_a_method_needs_and_what_must_be_unique_is_checked(text, words):
    with pytest.raises(InvalidConfig) as refused:
        parse_platforms(text, source="platforms.toml")
    assert words in refused.value.message, refused.value.message


def test_two_legacy_platforms_are_refused():
    text = GOOD.replace('methods = ["signed"]', 'methods = ["signed", "legacy"]').replace(
        'name = "moodle"', 'name = "moodle"\norigins = ["https://moodle.example.org"]'
    )
    with pytest.raises(InvalidConfig, match="one platform at most"):
        parse_platforms(text)


def test_origins_are_normalised():
    assert origin_of("HTTPS://Courses.Example.org:443/x?y") == "https://courses.example.org"
    assert origin_of("http://localhost:8080/") == "http://localhost:8080"
    assert origin_of("javascript:alert(1)") is None and origin_of("not a url") is None


def test_the_demo_platform_is_made_once_even_by_many_at_once(tmp_path):
    import threading

    from nbhosting_server.demo import ensure_demo_platform

    path = tmp_path / "platforms.toml"
    made: list[bool] = []
    threads = [threading.Thread(target=lambda: made.append(ensure_demo_platform(path))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert made.count(True) == 1 and len(made) == 8
    assert load_platforms(path).get("demo").may_launch("demo") and path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["platforms.toml"]
