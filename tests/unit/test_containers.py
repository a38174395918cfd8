from pathlib import Path

from nbhosting_core import Account, ContainerRecord, ContainerStatus, Settings
from nbhosting_core.containers import Action, container_spec, plan

KEY = "c" * 40


def record(status, key=KEY, rootfs="/r1"):
    return ContainerRecord(name="n", course="c", student_id="s", user="u", key=key, rootfs=rootfs, status=status)


def test_plan_creates_when_absent_and_reuses_a_running_container():
    assert plan(None, "/r1") is Action.CREATE
    assert plan(record(ContainerStatus.RUNNING), "/r1") is Action.REUSE


def test_plan_never_cuts_a_running_session_for_a_new_image():
    assert plan(record(ContainerStatus.RUNNING, rootfs="/old"), "/r1") is Action.REUSE


def test_plan_starts_a_stopped_container_on_the_same_image_else_replaces_it():
    assert plan(record(ContainerStatus.STOPPED), "/r1") is Action.START
    assert plan(record(ContainerStatus.STOPPED, rootfs="/old"), "/r1") is Action.REPLACE


def test_plan_replaces_broken_or_unlabelled_containers():
    assert plan(record(ContainerStatus.BROKEN), "/r1") is Action.REPLACE
    assert plan(record(ContainerStatus.RUNNING, key="junk"), "/r1") is Action.REPLACE
    assert plan(record(ContainerStatus.STOPPED, key=""), "/r1") is Action.REPLACE


def spec(**overrides):
    settings = Settings(**overrides)
    account = Account(student_id="st", user="nbh-u", uid=1000001, gid=1000001, home=Path("/h"))
    return container_spec(settings, account, "c1", KEY, "TOKEN", Path("/h/c1"), Path("/run/x"), Path("/rootfs"))


def test_spec_runs_rootless_read_only_on_a_unix_socket_with_the_token_in_env_not_argv():
    s = spec()
    assert s["userns"] == {"nsmode": "keep-id"} and s["read_only_filesystem"] is True
    assert s["rootfs"] == "/rootfs"
    assert "--ServerApp.sock=/nbhosting/run/jupyter.sock" in s["command"]
    assert f"--ServerApp.base_url=/nb/{KEY}/" in s["command"]
    assert s["env"]["JUPYTER_TOKEN"] == "TOKEN"
    assert not any("TOKEN" in arg for arg in s["command"])
    assert not any("port" in arg.lower() for arg in s["command"])
    assert s["labels"]["nbhosting.key"] == KEY and s["labels"]["nbhosting.student"] == "st"
    mounts = {m["destination"]: m for m in s["mounts"]}
    assert mounts["/home/student"]["source"] == "/h/c1"
    assert mounts["/nbhosting/run"]["source"] == "/run/x"


def test_spec_network_follows_the_egress_setting():
    assert spec()["netns"] == {"nsmode": "slirp4netns"}
    assert spec(egress=False)["netns"] == {"nsmode": "none"}
