from nbhosting_core import access
from nbhosting_core.tokens import jupyter_token, new_key, sign_access, verify_access

SECRET = b"s" * 32
OTHER_SECRET = b"t" * 32
KEY = "a" * 40
KEY2 = "b" * 40


def test_keys_are_random_and_160_bits():
    keys = {new_key() for _ in range(100)}
    assert len(keys) == 100
    assert all(len(k) == 40 and int(k, 16) >= 0 for k in keys)


def test_jupyter_token_is_per_key_and_per_secret():
    assert jupyter_token(SECRET, KEY) == jupyter_token(SECRET, KEY)
    assert jupyter_token(SECRET, KEY) != jupyter_token(SECRET, KEY2)
    assert jupyter_token(SECRET, KEY) != jupyter_token(OTHER_SECRET, KEY)


def test_access_cookie_round_trips_for_its_key_only():
    value = sign_access(SECRET, KEY, "nbh-x", 2000)
    assert verify_access(SECRET, KEY, value, now=1000) == "nbh-x"
    assert verify_access(SECRET, KEY2, value, now=1000) is None
    assert verify_access(OTHER_SECRET, KEY, value, now=1000) is None


def test_expired_or_tampered_cookies_are_refused():
    value = sign_access(SECRET, KEY, "nbh-x", 2000)
    assert verify_access(SECRET, KEY, value, now=2001) is None
    user, expires, mac = value.split(".")
    assert verify_access(SECRET, KEY, f"nbh-y.{expires}.{mac}", now=1000) is None
    assert verify_access(SECRET, KEY, f"{user}.9999999999.{mac}", now=1000) is None
    assert verify_access(SECRET, KEY, "garbage", now=1000) is None
    assert verify_access(SECRET, KEY, "a.b.c", now=1000) is None


def test_key_is_read_from_notebook_uris_only():
    assert access.key_from_uri(f"/nb/{KEY}/api/status", "nb") == KEY
    assert access.key_from_uri(f"/nb/{KEY}", "nb") == KEY
    assert access.key_from_uri(f"/nb/{KEY}?x=1", "nb") == KEY
    assert access.key_from_uri(f"/other/{KEY}/", "nb") is None
    assert access.key_from_uri("/nb/../../etc/", "nb") is None
    assert access.key_from_uri("/nb/" + "A" * 40 + "/", "nb") is None


def test_decide_allows_the_owner_and_hands_over_the_token():
    value = access.access_cookie_value(SECRET, KEY, "nbh-x", now=1000, max_age=60)
    d = access.decide(SECRET, "nb", f"/nb/{KEY}/lab", [value], now=1030)
    assert d.allowed and d.status == 200 and d.user == "nbh-x"
    assert d.authorization == f"token {jupyter_token(SECRET, KEY)}"


def test_decide_refuses_no_cookie_another_key_and_stale_cookies():
    value = access.access_cookie_value(SECRET, KEY, "nbh-x", now=1000, max_age=60)
    assert access.decide(SECRET, "nb", f"/nb/{KEY}/", [], now=1000).status == 401
    other = access.decide(SECRET, "nb", f"/nb/{KEY2}/", [value], now=1000)
    assert not other.allowed and other.status == 403 and other.authorization == ""
    assert access.decide(SECRET, "nb", f"/nb/{KEY}/", [value], now=1061).status == 403
    assert access.decide(SECRET, "nb", "/nb/forged/", [value], now=1000).status == 404


def test_decide_finds_the_good_cookie_among_several():
    good = access.access_cookie_value(SECRET, KEY, "nbh-x", now=1000, max_age=60)
    bad = access.access_cookie_value(SECRET, KEY2, "nbh-x", now=1000, max_age=60)
    assert access.decide(SECRET, "nb", f"/nb/{KEY}/", [bad, good], now=1000).allowed


def test_a_non_ascii_cookie_is_refused_not_an_error():
    assert verify_access(b"s" * 32, "a" * 40, "é.99999999999.x", 0) is None
