"""The Caddyfile as Caddy reads it, in each origin mode and TLS variant: `caddy adapt` and `caddy validate`.

What Caddy makes of the file is checked here, not the file's text: which sites exist, which upstreams each one
reaches, and that what a student's server sends cannot widen a service worker's scope.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nbhosting_core import Settings
from nbhosting_server.serve import CADDYFILE, caddy_adapt, caddy_environment

KEY_RE = "([0-9a-f]{40})"


def require_caddy() -> str:
    caddy = shutil.which("caddy")
    if caddy is None:
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail("CI=true but caddy is not installed", pytrace=False)
        pytest.skip("caddy is not installed (apt-get install caddy)")
    return caddy


def adapted(settings: Settings) -> dict[str, Any]:
    return json.loads(caddy_adapt(settings, require_caddy()))


def walk(node: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object in ``node``, depth first."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def sites(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each site's route, by its host."""
    [server] = config["apps"]["http"]["servers"].values()
    return {route["match"][0]["host"][0]: route for route in server["routes"]}


def proxies_to_sockets(route: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        h
        for h in walk(route)
        if h.get("handler") == "reverse_proxy" and any(u["dial"].startswith("unix/") for u in h["upstreams"])
    ]


def settings(tmp_path: Path, **overrides: Any) -> Settings:
    return Settings(data_root=tmp_path / "data", run_dir=tmp_path / "run", **overrides)


def test_by_default_each_server_is_a_host_of_its_own_under_a_wildcard_site(tmp_path):
    config = adapted(settings(tmp_path))
    found = sites(config)
    assert set(found) == {"localhost", "*.nb.localhost"}
    assert not proxies_to_sockets(found["localhost"])  # nothing under /nb/ on nbhosting's own origin
    [proxy] = proxies_to_sockets(found["*.nb.localhost"])
    assert proxy["upstreams"] == [{"dial": f"unix/{tmp_path}/run/jupyter/{{http.regexp.key.1}}/jupyter.sock"}]
    host_matchers = [m["header_regexp"]["Host"] for m in walk(found["*.nb.localhost"]) if "header_regexp" in m]
    assert host_matchers == [{"name": "key", "pattern": f"^{KEY_RE}\\."}]  # the first label, 40 hex digits
    policies = config["apps"]["tls"]["automation"]["policies"]
    assert any("*.nb.localhost" in p["subjects"] and p["issuers"] == [{"module": "internal"}] for p in policies)


def test_in_path_mode_servers_are_under_the_sites_origin_and_there_is_no_wildcard_site(tmp_path):
    found = sites(adapted(settings(tmp_path, origin_mode="path")))
    assert set(found) == {"localhost"}
    [proxy] = proxies_to_sockets(found["localhost"])
    paths = [m["path_regexp"] for m in walk(found["localhost"]) if m.get("path_regexp", {}).get("name") == "key"]
    # students' pages first (to the app), then the notebooks (to their sockets)
    assert paths == [
        {"name": "key", "pattern": f"^/nb/{KEY_RE}/_nbh/student/"},
        {"name": "key", "pattern": f"^/nb/{KEY_RE}/"},
    ]


@pytest.mark.parametrize("mode", ["subdomain", "path"])
def test_every_proxied_server_is_checked_first_and_its_service_worker_headers_and_jupyters_csp_are_as_said(
    tmp_path, mode
):
    config = adapted(settings(tmp_path, origin_mode=mode))
    for route in sites(config).values():
        for proxy in proxies_to_sockets(route):
            response = proxy.get("headers", {}).get("response", {})
            assert response.get("delete") == ["Service-Worker-Allowed"]  # never widened
            assert "Content-Security-Policy" not in json.dumps(response)  # Jupyter's own policy passes as it is
    checks = [h for h in walk(config) if h.get("handler") == "reverse_proxy" and h.get("rewrite", {}).get("uri")]
    assert checks and all(h["rewrite"]["uri"] == "/_nbh/auth" for h in checks)
    for check in checks:
        sent = check["headers"]["request"]["set"]
        assert sent["X-Nbh-Key"] == ["{http.regexp.key.1}"] and sent["X-Nbh-Upgrade"] == [
            "{http.request.header.Upgrade}"
        ]


@pytest.mark.parametrize("mode", ["subdomain", "path"])
def test_caddys_own_endpoints_of_the_app_are_refused_on_every_site(tmp_path, mode):
    for route in sites(adapted(settings(tmp_path, origin_mode=mode))).values():
        patterns = [m["path_regexp"]["pattern"] for m in walk(route) if "path_regexp" in m]
        assert "^/_nbh/(auth|tls-ask)" in patterns


def test_the_admins_wildcard_certificate_or_on_demand_certificates_asked_of_the_app(tmp_path):
    cert, key = tmp_path / "wild.crt", tmp_path / "wild.key"
    files = adapted(settings(tmp_path, servers_tls="files", servers_tls_cert=cert, servers_tls_key=key))
    assert files["apps"]["tls"]["certificates"]["load_files"][0]["certificate"] == str(cert)
    real = {"site_address": "notebooks.example.org", "public_url": "https://notebooks.example.org"}
    on_demand = adapted(settings(tmp_path, servers_tls="on_demand", **real))
    policies = on_demand["apps"]["tls"]["automation"]["policies"]
    [servers] = [p for p in policies if "*.nb.notebooks.example.org" in p.get("subjects", [])]
    assert servers["on_demand"] is True
    assert on_demand["apps"]["tls"]["automation"]["on_demand"]["ask"] == "http://127.0.0.1:8710/_nbh/tls-ask"


def test_capabilities_in_urls_are_masked_in_caddys_error_log_and_there_is_no_access_log(tmp_path):
    logging = adapted(settings(tmp_path))["logging"]["logs"]
    assert "http.log.error" in logging["default"]["exclude"]  # errors are logged once, masked
    masked = logging["errors"]["encoder"]["fields"]["request>uri"]
    assert masked["filter"] == "query"
    assert {(a["type"], a["parameter"], a["value"]) for a in masked["actions"]} == {
        ("replace", "t", "REDACTED"),
        ("replace", "signature", "REDACTED"),
        ("replace", "poll", "REDACTED"),
        ("replace", "s", "REDACTED"),
    }
    assert not any("access" in name for name in logging)


@pytest.mark.parametrize("mode", ["subdomain", "path"])
def test_caddy_validates_the_configuration(tmp_path, mode):
    caddy = require_caddy()
    s = settings(tmp_path, origin_mode=mode)
    env = {"PATH": os.environ["PATH"], **caddy_environment(s)}
    done = subprocess.run(
        [caddy, "validate", "--config", str(CADDYFILE), "--adapter", "caddyfile"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Valid configuration" in done.stdout + done.stderr


def app_proxies_told_the_key(route: dict[str, Any]) -> list[dict[str, Any]]:
    """Reverse proxies to the app (not the forward-auth checks) that name the routed key in X-Nbh-Key."""
    return [
        h
        for h in walk(route)
        if h.get("handler") == "reverse_proxy"
        and h["upstreams"] == [{"dial": "127.0.0.1:8710"}]
        and not h.get("rewrite")
        and h.get("headers", {}).get("request", {}).get("set", {}).get("X-Nbh-Key") == ["{http.regexp.key.1}"]
    ]


def test_students_pages_reach_the_app_with_the_key_routed_on_in_both_modes(tmp_path):
    servers = sites(adapted(settings(tmp_path)))["*.nb.localhost"]
    told = json.dumps(app_proxies_told_the_key(servers))
    paths = [m.get("path") for m in walk(servers) if "path" in m]
    assert ["/_nbh/student/*"] in paths and ["/_nbh/ticket"] in paths
    assert len(app_proxies_told_the_key(servers)) == 2, told  # the ticket, the student's pages
    site = sites(adapted(settings(tmp_path, origin_mode="path")))["localhost"]
    assert len(app_proxies_told_the_key(site)) == 1


@pytest.mark.parametrize("mode", ["subdomain", "path"])
def test_every_site_compresses_what_it_answers_notebooks_included_zstd_first(tmp_path, mode):
    for host, route in sites(adapted(settings(tmp_path, origin_mode=mode))).items():
        encoders = [h for h in walk(route) if h.get("handler") == "encode"]
        assert len(encoders) == 1, host  # once per site: never twice over the same answer
        assert encoders[0]["prefer"] == ["zstd", "gzip"] and set(encoders[0]["encodings"]) == {"zstd", "gzip"}
        # it wraps the whole site, the proxies to the servers' sockets included: the site's first route, unmatched
        first = route["handle"][0]["routes"][0]
        assert "match" not in first and first["handle"] == encoders, host
