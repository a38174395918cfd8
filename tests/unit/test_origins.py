"""Whose origin is whose: servers' origins, who may frame them, and which requests reach them (a spec)."""

import pytest

from nbhosting_core import Settings
from nbhosting_core.origins import (
    OriginVerdict,
    check_origin,
    frame_ancestors,
    key_of_host,
    notebook_of_page,
    notebook_path,
    server_host,
    server_origin,
    site_origin,
)

KEY = "a" * 40
OWN = f"https://{KEY}.nb.localhost:8443"


# ------------------------------------------------------------------------------------------ where servers live


def test_by_default_each_server_has_its_own_origin_under_nb_dot_the_site():
    s = Settings()
    assert server_host(s, KEY) == f"{KEY}.nb.localhost"
    assert server_origin(s, KEY) == OWN
    assert site_origin(s) == "https://localhost:8443"


def test_a_real_domain_on_port_443_gives_origins_without_a_port():
    s = Settings(site_address="notebooks.example.org", public_url="https://notebooks.example.org/")
    assert server_origin(s, KEY) == f"https://{KEY}.nb.notebooks.example.org"
    other = Settings(site_address="example.org", public_url="https://example.org", servers_domain="nbh.example.net")
    assert server_origin(other, KEY) == f"https://{KEY}.nbh.example.net"


def test_in_path_mode_every_server_is_on_the_sites_origin():
    s = Settings(origin_mode="path")
    assert server_origin(s, KEY) == "https://localhost:8443"
    assert key_of_host(s, f"{KEY}.nb.localhost") is None


@pytest.mark.parametrize("mode", ["subdomain", "path"])
@pytest.mark.parametrize("ui", ["notebook", "lab"])
@pytest.mark.parametrize("notebook", ["a.ipynb", "w1/é & x #2.ipynb"])
def test_a_notebooks_page_names_the_notebook_the_inverse_of_its_path(mode, ui, notebook):
    s = Settings(origin_mode=mode, ui=ui)
    page = server_origin(s, KEY) + notebook_path(s, KEY, notebook)
    assert notebook_of_page(s, KEY, page) == notebook
    assert notebook_of_page(s, KEY, page + "?kernel=x#cell") == notebook


@pytest.mark.parametrize(
    "url",
    [
        None,
        "",
        f"https://evil.example/nb/{KEY}/notebooks/a.ipynb",  # another origin
        f"{OWN}/nb/{'b' * 40}/notebooks/a.ipynb",  # another server's path
        f"{OWN}/nb/{KEY}/tree/w1",  # not a notebook's page
        f"{OWN}/nb/{KEY}/notebooks/%2E%2E/%2E%2E/etc/shadow.ipynb",  # refused as any notebook path
        f"{OWN}/nb/{KEY}/notebooks/.hidden.ipynb",
        f"{OWN}/nb/{KEY}/notebooks/w1/intro.md",  # a student's copy is always .ipynb
        f"{OWN}/nb/{KEY}/notebooks/" + "x" * 5000 + ".ipynb",
        f"{OWN}/_nbh/student/",
    ],
)
def test_any_other_page_names_no_notebook(url):
    assert notebook_of_page(Settings(), KEY, url) is None


def test_a_servers_key_is_read_from_its_host_and_from_nothing_else():
    s = Settings()
    assert key_of_host(s, f"{KEY}.nb.localhost") == KEY
    assert key_of_host(s, f"{KEY}.nb.localhost:8443") == KEY
    assert key_of_host(s, f"{KEY.upper()}.NB.LOCALHOST") == KEY  # host names are case-insensitive
    for host in (
        "nb.localhost",
        f"{KEY}.localhost",
        f"x.{KEY}.nb.localhost",
        f"{KEY}.nb.localhost.evil.org",
        f"{'g' * 40}.nb.localhost",
        f"{KEY[:-1]}.nb.localhost",
        "",
        "[::1]:8443",
    ):
        assert key_of_host(s, host) is None, host


def test_a_server_host_needs_a_key():
    with pytest.raises(ValueError, match="not a server key"):
        server_host(Settings(), "../etc")


# ------------------------------------------------------------------------------------------ who may frame them


def test_frame_ancestors_are_self_the_site_and_the_platforms_never_a_wildcard():
    s = Settings()
    value = frame_ancestors(
        s, ["https://courses.example.org", "https://lms.example.net", "https://courses.example.org"]
    )
    assert value == "'self' https://localhost:8443 https://courses.example.org https://lms.example.net"
    assert frame_ancestors(s, []) == "'self' https://localhost:8443"
    assert "*" not in frame_ancestors(s, ["https://a.example"])


def test_the_frame_ancestors_setting_overrides_them_all():
    s = Settings(frame_ancestors="'self'  https://only.example.org")
    assert frame_ancestors(s, ["https://courses.example.org"]) == "'self' https://only.example.org"


# ------------------------------------------------------------------------------------- which requests reach them


def decide(method="GET", websocket=False, origin=None, fetch_site=None):
    return check_origin(method=method, websocket=websocket, origin=origin, fetch_site=fetch_site, own_origin=OWN)


def test_reads_pass_from_anywhere_the_cookie_decides():
    for fetch_site in (None, "same-origin", "cross-site", "same-site", "none"):
        assert decide("GET", fetch_site=fetch_site).verdict is OriginVerdict.READ
    assert decide("HEAD", origin="https://evil.example").allowed  # a cross-origin read cannot see the answer


def test_writes_and_websockets_from_the_servers_own_origin_pass():
    for method, websocket in (("PUT", False), ("POST", False), ("PATCH", False), ("DELETE", False), ("GET", True)):
        d = decide(method, websocket, origin=OWN, fetch_site="same-origin")
        assert d.allowed and d.verdict is OriginVerdict.SAME_ORIGIN, (method, websocket)
    assert decide("POST", origin=OWN).allowed  # a browser that sends no Sec-Fetch-Site


@pytest.mark.parametrize(("method", "websocket"), [("POST", False), ("PUT", False), ("OPTIONS", False), ("GET", True)])
@pytest.mark.parametrize(
    ("origin", "fetch_site", "verdict"),
    [
        ("https://evil.example", "cross-site", OriginVerdict.OTHER_ORIGIN),  # any other site
        (f"https://{'b' * 40}.nb.localhost:8443", "same-site", OriginVerdict.OTHER_ORIGIN),  # another student's server
        ("https://localhost:8443", "same-site", OriginVerdict.OTHER_ORIGIN),  # nbhosting's own pages
        ("https://courses.example.org", "cross-site", OriginVerdict.OTHER_ORIGIN),  # a course page framing it
        (f"http://{KEY}.nb.localhost:8443", None, OriginVerdict.OTHER_ORIGIN),  # another scheme
        (f"https://{KEY}.nb.localhost", None, OriginVerdict.OTHER_ORIGIN),  # another port
        (OWN + "/", None, OriginVerdict.OTHER_ORIGIN),  # not an Origin header's form
        ("null", "cross-site", OriginVerdict.OPAQUE),  # a sandboxed frame: an HTML file under /files/
        (None, None, OriginVerdict.NO_ORIGIN),  # browsers always send one with these
        ("", None, OriginVerdict.NO_ORIGIN),
        (OWN, "cross-site", OriginVerdict.OTHER_SITE),  # the second signal disagrees
        (OWN, "same-site", OriginVerdict.OTHER_SITE),
    ],
)
def test_writes_and_websockets_from_anywhere_else_are_refused(method, websocket, origin, fetch_site, verdict):
    d = decide(method, websocket, origin=origin, fetch_site=fetch_site)
    assert not d.allowed and d.verdict is verdict


def test_an_origin_is_compared_case_insensitively():
    assert decide("POST", origin=OWN.upper().replace("HTTPS", "https")).allowed


def test_in_path_mode_the_own_origin_is_the_sites():
    s = Settings(origin_mode="path")
    own = server_origin(s, KEY)
    ok = check_origin(method="PUT", websocket=False, origin="https://localhost:8443", fetch_site=None, own_origin=own)
    assert ok.allowed
    evil = check_origin(method="GET", websocket=True, origin="https://evil.example", fetch_site=None, own_origin=own)
    assert not evil.allowed
