"""Platforms' key sets: fetched bounded in time and size, cached, fetched again on an unknown key id, not hammered.

The key set is served by a real local HTTP server (tests.lti_platforms.Platform13) or, for answers a platform
should never give, by a plain function in place of the fetch (the one seam where the network is touched).
"""

import http.server
import threading
import time

import pytest

from nbhosting_core import LaunchRefused, PlatformUnavailable
from nbhosting_core.system.jwks import KeySets, fetch_json, parse_key_set
from tests.lti_platforms import Platform13, new_key, public_jwk


class Clock:
    now = 1000.0

    def __call__(self):
        return self.now


def key_sets(clock, **kwargs):
    options = {"timeout": 1.0, "max_bytes": 64 * 1024, "ttl": 3600, "refetch_interval": 10, "clock": clock}
    return KeySets(**{**options, **kwargs})


def test_keys_are_fetched_once_then_served_from_the_cache_until_they_expire():
    clock = Clock()
    with Platform13() as platform:
        sets = key_sets(clock)
        assert sets.key(platform.jwks_url, "k1").key_id == "k1"
        assert sets.key(platform.jwks_url, "k1").key_id == "k1"
        assert platform.fetches == 1
        clock.now += 3600
        sets.key(platform.jwks_url, "k1")
        assert platform.fetches == 2


def test_an_unknown_key_id_fetches_again_at_most_once_per_interval():
    clock = Clock()
    with Platform13() as platform:
        sets = key_sets(clock)
        sets.key(platform.jwks_url, "k1")
        for _ in range(5):  # invented key ids cannot make nbhosting hammer the platform
            with pytest.raises(LaunchRefused) as error:
                sets.key(platform.jwks_url, "invented")
            assert error.value.why == "unknown-key"
        assert platform.fetches == 1  # fetched at first use, less than 10 s ago
        platform.rotate("k2")
        clock.now += 10
        assert sets.key(platform.jwks_url, "k2").key_id == "k2"
        assert platform.fetches == 2


def test_a_token_without_key_id_uses_the_sets_only_key():
    with Platform13() as platform:
        assert KeySets(timeout=1, max_bytes=65536, ttl=60, refetch_interval=0).key(platform.jwks_url, None)


def test_a_silent_platform_costs_one_timeout_then_fails_fast_until_the_interval_passes():
    clock = Clock()
    with Platform13() as platform:
        platform.silent = True
        sets = key_sets(clock, timeout=0.5)
        started = time.monotonic()
        with pytest.raises(PlatformUnavailable):
            sets.key(platform.jwks_url, "k1")
        assert 0.4 < time.monotonic() - started < 2
        started = time.monotonic()
        with pytest.raises(PlatformUnavailable) as error:
            sets.key(platform.jwks_url, "k1")
        assert time.monotonic() - started < 0.1 and "failed 0 s ago" in error.value.log_detail
        assert platform.fetches == 1


def test_when_a_refresh_fails_the_cached_keys_stay_in_use():
    clock = Clock()
    with Platform13() as platform:
        sets = key_sets(clock, timeout=0.5)
        sets.key(platform.jwks_url, "k1")
        platform.silent = True
        clock.now += 3600
        assert sets.key(platform.jwks_url, "k1").key_id == "k1"  # expired, not refreshed: still served


class DripHandler(http.server.BaseHTTPRequestHandler):
    """Answers 200, then one byte of body a tenth of a second, for ever (a platform holding the line)."""

    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.end_headers()
        try:
            for _ in range(600):
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(0.1)
        except OSError:
            pass

    def log_message(self, *args):
        pass


def test_a_platform_dripping_its_answer_cannot_hold_a_fetch_past_its_deadline():
    server, url = serving(DripHandler)
    try:
        started = time.monotonic()
        with pytest.raises(PlatformUnavailable) as error:
            fetch_json(url, 0.5, 65536)
        assert time.monotonic() - started < 1.5
        assert "no answer within 0.5 s" in error.value.log_detail
    finally:
        server.shutdown()
        server.server_close()


class PageHandler(http.server.BaseHTTPRequestHandler):
    """Answers 200 with an HTML page (a key set URL pointing at the platform's login page, say)."""

    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"<html>Please log in</html>")

    def log_message(self, *args):
        pass


def serving(handler):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/jwks"


def test_a_key_set_larger_than_the_cap_or_not_json_or_not_200_is_refused():
    with Platform13() as platform:
        for _ in range(20):
            platform.rotate(f"k{_}")
        platform.published = list(platform.keys)  # 20 keys: about 10 KB
        with pytest.raises(PlatformUnavailable) as error:
            fetch_json(platform.jwks_url, 1.0, 4096)
        assert "more than 4096 bytes" in error.value.log_detail
    for handler, says in ((http.server.BaseHTTPRequestHandler, "answered HTTP 501"), (PageHandler, "not JSON")):
        server, url = serving(handler)  # the bare handler has no GET: 501
        try:
            with pytest.raises(PlatformUnavailable) as error:
                fetch_json(url, 1.0, 4096)
            assert says in error.value.log_detail
        finally:
            server.shutdown()
            server.server_close()
    with pytest.raises(PlatformUnavailable):
        fetch_json("ftp://127.0.0.1/jwks", 1.0, 4096)


def test_only_rsa_signing_keys_are_kept():
    rsa = public_jwk(new_key(), "rsa")
    keys = parse_key_set(
        {
            "keys": [
                rsa,
                {"kty": "oct", "k": "c2VjcmV0", "kid": "hmac"},  # a shared secret must never verify a launch
                {**public_jwk(new_key(), "enc"), "use": "enc"},
                {**public_jwk(new_key(), "rs512"), "alg": "RS512"},
                "not a key",
            ]
        }
    )
    assert list(keys) == ["rsa"]
    for bad in ({"keys": []}, {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}, [], {"nokeys": 1}):
        with pytest.raises(ValueError):
            parse_key_set(bad)


def test_a_key_set_that_is_not_one_is_the_platforms_fault():
    sets = KeySets(timeout=1, max_bytes=65536, ttl=60, refetch_interval=0, fetch=lambda url, t, m: {"keys": "no"})
    with pytest.raises(PlatformUnavailable) as error:
        sets.key("https://courses.example.org/jwks", "k1")
    assert "not a JSON Web Key Set" in error.value.log_detail
