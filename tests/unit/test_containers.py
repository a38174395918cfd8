from pathlib import Path

import pytest

from nbhosting_core import Account, Action, Server, ServerState, Settings
from nbhosting_core.containers import (
    LABELS,
    container_spec,
    jupyter_config,
    jupyter_options,
    keep_id_mappings,
    lab_overrides,
    plan,
    server_from_inspect,
    state_of,
)

KEY = "c" * 40


def server(state, key=KEY, image="/r1"):
    return Server(name="n", course="c", student_id="s", user="u", uid=1, key=key, image=image, state=state)


def test_plan_creates_when_absent_and_reuses_a_running_server():
    assert plan(None, "/r1") is Action.CREATE
    assert plan(server(ServerState.RUNNING), "/r1") is Action.REUSE


def test_plan_never_cuts_a_running_session_for_a_new_image():
    assert plan(server(ServerState.RUNNING, image="/old"), "/r1") is Action.REUSE


def test_plan_starts_a_stopped_server_on_the_same_image_else_replaces_it():
    assert plan(server(ServerState.STOPPED), "/r1") is Action.START
    assert plan(server(ServerState.STOPPED, image="/old"), "/r1") is Action.REPLACE


def test_plan_replaces_broken_or_unlabelled_servers():
    assert plan(server(ServerState.BROKEN), "/r1") is Action.REPLACE
    assert plan(server(ServerState.RUNNING, key="junk"), "/r1") is Action.REPLACE
    assert plan(server(ServerState.STOPPED, key=""), "/r1") is Action.REPLACE


def spec(**overrides):
    settings = Settings(**overrides)
    account = Account(student_id="st", user="nbh-u", uid=1000001, gid=1000001, home=Path("/h"))
    return container_spec(settings, account, "c1", KEY, "TOKEN", Path("/h/c1"), Path("/run/x"), Path("/rootfs"))


def test_spec_runs_rootless_read_only_on_a_unix_socket_with_the_token_in_env_not_argv():
    s = spec()
    assert s["userns"] == {"nsmode": "private"} and s["read_only_filesystem"] is True
    assert s["user"] == "1000001:1000001" and s["idmappings"] == keep_id_mappings(1000001, 1000001, 1024)
    assert s["rootfs"] == "/rootfs"
    assert "--ServerApp.sock=/nbhosting/run/jupyter.sock" in s["command"]
    assert f"--ServerApp.base_url=/nb/{KEY}/" in s["command"]
    assert s["env"]["JUPYTER_TOKEN"] == "TOKEN"
    assert not any("TOKEN" in arg for arg in s["command"])
    assert not any("port" in arg.lower() for arg in s["command"])


def test_the_student_keeps_their_ids_inside_and_the_ids_below_go_to_their_subordinate_range():
    maps = keep_id_mappings(3_100_007, 3_100_008, 1024)
    assert maps["UIDMap"] == [
        {"container_id": 0, "host_id": 1, "size": 1024},  # container 0..1023: the student's subordinate ids
        {"container_id": 3_100_007, "host_id": 0, "size": 1},  # the student's uid: the student (0 of their namespace)
    ]
    assert maps["GIDMap"][1] == {"container_id": 3_100_008, "host_id": 0, "size": 1}


def test_a_uid_smaller_than_the_subordinate_range_has_the_rest_of_it_above():
    assert keep_id_mappings(500, 500, 1024)["UIDMap"] == [
        {"container_id": 0, "host_id": 1, "size": 500},
        {"container_id": 500, "host_id": 0, "size": 1},
        {"container_id": 501, "host_id": 501, "size": 524},
    ]


def test_spec_network_follows_the_egress_setting():
    assert spec(egress=True)["netns"] == {"nsmode": "slirp4netns"}
    assert spec(egress=False)["netns"] == {"nsmode": "none"}


def test_spec_bounds_the_container_log():
    assert spec(log_size_max=65536)["log_configuration"] == {"driver": "k8s-file", "size": 65536}


def test_jupyter_culls_its_own_idle_kernels_unless_disabled():
    options = jupyter_options(Settings(kernel_idle_timeout=3600), KEY)
    assert "--MappingKernelManager.cull_idle_timeout=3600" in options
    assert "--MappingKernelManager.cull_busy=False" in options
    assert not any("cull" in o for o in jupyter_options(Settings(kernel_idle_timeout=0), KEY))


def test_labels_written_at_creation_are_read_back():
    s = spec()
    data = {
        "Name": "nbh-u-c1",
        "State": {"Status": "running", "StartedAt": "2026-11-25T21:08:02.123456789Z"},
        "Config": {"Labels": s["labels"]},
    }
    read = server_from_inspect(data, uid=1000001)
    assert (read.name, read.course, read.student_id, read.user, read.key, read.image) == (
        "nbh-u-c1",
        "c1",
        "st",
        "nbh-u",
        KEY,
        "/rootfs",
    )
    assert read.state is ServerState.RUNNING and read.uid == 1000001
    assert abs(read.started_at - 1795640882.123456) < 1e-3
    assert set(s["labels"]) == set(LABELS.values())


def test_podman_states_fold_into_three():
    assert state_of("running") is ServerState.RUNNING
    assert all(state_of(s) is ServerState.STOPPED for s in ("created", "configured", "exited", "stopped"))
    assert all(state_of(s) is ServerState.BROKEN for s in ("paused", "removing", "unknown", ""))


def test_a_container_without_labels_reads_as_unusable():
    read = server_from_inspect({"Name": "/x", "State": {"Status": "exited", "StartedAt": "0001-01-01T00:00:00Z"}}, 5)
    assert read.key == "" and read.started_at is None and plan(read, "/r1") is Action.REPLACE


def test_the_same_container_serves_both_origin_modes():
    assert spec(origin_mode="subdomain") == spec(origin_mode="path")
    assert f"--ServerApp.base_url=/nb/{KEY}/" in spec(origin_mode="subdomain")["command"]


def test_jupyter_reads_nbhostings_configuration_from_its_socket_folder_at_each_start():
    assert spec()["env"]["JUPYTER_CONFIG_PATH"] == "/nbhosting/run/config"


def test_jupyters_own_policy_gets_the_frame_ancestors_and_keeps_its_report_uri():
    config = jupyter_config(Settings(), KEY, "'self' https://localhost:8443 https://courses.example.org")
    csp = config["ServerApp"]["tornado_settings"]["headers"]["Content-Security-Policy"]
    assert csp == (
        "frame-ancestors 'self' https://localhost:8443 https://courses.example.org; "
        f"report-uri /nb/{KEY}/api/security/csp-report"
    )
    assert list(config) == ["ServerApp", "LabServerApp"]
    assert list(config["ServerApp"]) == ["tornado_settings"]


@pytest.mark.parametrize(("mode", "base"), [("subdomain", "/_nbh/student"), ("path", f"/nb/{KEY}/_nbh/student")])
def test_the_uis_get_a_my_work_menu_opening_the_students_pages(mode, base):
    settings = Settings(origin_mode=mode)
    assert jupyter_config(settings, KEY, "'self'")["LabServerApp"] == {"app_settings_dir": "/nbhosting/run/config"}
    [menu] = lab_overrides(settings, KEY)["@jupyterlab/mainmenu-extension:plugin"]["menus"]
    assert {i["command"] for i in menu["items"]} == {"help:open"}
    assert [i["args"]["url"] for i in menu["items"]] == [f"{base}/", f"{base}/download-workspace"]
