import pytest
from pydantic import ValidationError

from nbhosting_core import Settings


def test_defaults_derive_every_path_from_data_root_and_run_dir():
    s = Settings(data_root="/srv/nbh", run_dir="/run/x")
    assert str(s.courses_dir) == "/srv/nbh/courses" and str(s.students_dir) == "/srv/nbh/students"
    assert str(s.effective_images_dir) == "/srv/nbh/images" and str(s.secret_file) == "/srv/nbh/secret"
    assert str(s.jupyter_sockets_dir) == "/run/x/jupyter" and str(s.locks_dir) == "/run/x/locks"


def test_settings_come_from_nbh_environment_variables(monkeypatch):
    monkeypatch.setenv("NBH_DATA_ROOT", "/elsewhere")
    monkeypatch.setenv("NBH_EGRESS", "false")
    s = Settings()
    assert str(s.data_root) == "/elsewhere" and s.egress is False


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("url_prefix", "../x"),
        ("url_prefix", "NB"),
        ("site_address", "x.org { respond 1 }"),
        ("frame_ancestors", "x; script-src *"),
        ("user_prefix", "root"),
        ("https_port", 70000),
        ("subid_count", 0),
        ("ui", "classic"),
        ("start_timeout", 0),
    ],
)
def test_bad_settings_are_refused_with_the_field_named(field, value):
    with pytest.raises(ValidationError, match=field):
        Settings(**{field: value})


def test_unknown_settings_are_refused():
    with pytest.raises(ValidationError, match="data_rot"):
        Settings(data_rot="/x")


def test_settings_survive_the_trip_through_the_environment_to_the_server_processes(monkeypatch):
    from nbhosting_server.serve import settings_environment

    s = Settings(data_root="/srv/x", egress_allow=["10.1.2.0/24", "fd00:1::/64"], max_running=7, egress=False)
    for name, value in settings_environment(s).items():
        monkeypatch.setenv(name, value)
    assert Settings() == s


def test_servers_get_their_own_origins_by_default_under_nb_dot_the_site():
    s = Settings()
    assert s.origin_mode == "subdomain" and s.effective_servers_domain == "nb.localhost"
    assert Settings(site_address="Notebooks.Example.org").effective_servers_domain == "nb.notebooks.example.org"
    assert Settings(servers_domain="nbh.example.net").effective_servers_domain == "nbh.example.net"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"site_address": "192.0.2.7"}, "needs servers_domain"),
        ({"servers_domain": "example"}, "servers_domain"),
        ({"servers_domain": "*.example.org"}, "servers_domain"),
        ({"servers_domain": "a.example.org { respond 1 }"}, "servers_domain"),
        ({"servers_tls": "files"}, "servers_tls_cert"),
        ({"origin_mode": "both"}, "origin_mode"),
    ],
)
def test_origin_settings_that_cannot_work_are_refused(values, message):
    with pytest.raises(ValidationError, match=message):
        Settings(**values)


def test_an_ip_address_site_may_use_path_mode_or_name_the_servers_domain():
    assert Settings(site_address="192.0.2.7", origin_mode="path").origin_mode == "path"
    assert Settings(site_address="192.0.2.7", servers_domain="nb.example.org").effective_servers_domain


def test_frame_ancestors_is_an_explicit_override_refused_as_a_wildcard_off_localhost():
    assert Settings().frame_ancestors is None  # default: the platforms' origins (nbhosting_core.origins)
    assert Settings(frame_ancestors="*").frame_ancestors == "*"  # a demo on localhost
    site = {"site_address": "notebooks.example.org", "public_url": "https://notebooks.example.org"}
    for broad in ("*", "'self' *", "https:", "'self' http:"):
        with pytest.raises(ValidationError, match="frame_ancestors may not hold"):
            Settings(**site, frame_ancestors=broad)
    named = Settings(**site, frame_ancestors="'self' https://courses.example.org https://*.example.org")
    assert named.frame_ancestors is not None
