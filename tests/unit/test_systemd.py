"""`nbh systemd`: each process runs as its own user, in the sandbox it can bear, and systemd itself accepts the units.

The units are read back by two parsers: :func:`words` (systemd's documented rules for command lines, written
out here) and systemd's own (``systemd-analyze verify``, offline: no running systemd needed).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from nbhosting_core import InvalidConfig, Settings
from nbhosting_server import cli, systemd
from nbhosting_server.serve import app_argv, caddy_argv, caddy_environment, settings_environment

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
needs_systemd_analyze = pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")
PYTHON = "/opt/nbhosting/venv/bin/python"
NBH = "/opt/nbhosting/venv/bin/nbh"
CADDY = "/usr/bin/caddy"
#: every setting that gives a unit a mount namespace of its own
MOUNT_NAMESPACING = {
    "ProtectSystem",
    "ProtectHome",
    "PrivateTmp",
    "PrivateDevices",
    "PrivateMounts",
    "ReadWritePaths",
    "ReadOnlyPaths",
    "InaccessiblePaths",
    "ExecPaths",
    "NoExecPaths",
    "TemporaryFileSystem",
    "BindPaths",
    "BindReadOnlyPaths",
    "MountFlags",
    "ProtectKernelTunables",
    "ProtectKernelModules",
    "ProtectKernelLogs",
    "ProtectControlGroups",
    "ProtectProc",
    "ProcSubset",
    "RootDirectory",
    "RootImage",
    "MountAPIVFS",
}


def directives(text: str) -> dict[str, dict[str, list[str]]]:
    """A unit's settings: section -> key -> every value given, in order (comments dropped)."""
    sections: dict[str, dict[str, list[str]]] = {}
    section: dict[str, list[str]] = {}
    for line in text.splitlines():
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        section.setdefault(key, []).append(value)
    return sections


def service(text: str) -> dict[str, str]:
    """The [Service] section, each key's last value."""
    return {key: values[-1] for key, values in directives(text)["Service"].items()}


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "f": "\f", "v": "\v"}


def words(line: str, *, specifiers: bool = True) -> list[str]:
    """A command line split as systemd does (systemd.service(5), "Command lines"), then expanded with no variables.

    Specifiers first, on the whole line (only ``%%`` is expected: any other is a bug); then words, quoted or not,
    with C escapes; then, in the arguments (not the program's path), ``$$`` is ``$`` (a lone ``$`` is a bug).
    """
    if specifiers:
        assert not re.search(r"%[^%]", line.replace("%%", "")), f"a specifier would expand in {line!r}"
        line = line.replace("%%", "%")
    out: list[str] = []
    i, n = 0, len(line)
    while i < n:
        while i < n and line[i] in " \t":
            i += 1
        if i == n:
            break
        word, quote = [], None
        while i < n and (quote or line[i] not in " \t"):
            c = line[i]
            if quote and c == quote:
                quote = None
            elif not quote and c in "\"'":
                quote = c
            elif c == "\\":
                i += 1
                e = line[i]
                if e == "x":
                    word.append(chr(int(line[i + 1 : i + 3], 16)))
                    i += 2
                else:
                    word.append(_ESCAPES.get(e, e))
            else:
                word.append(c)
            i += 1
        assert quote is None, f"unbalanced quote in {line!r}"
        out.append("".join(word))
    program, *args = out
    for arg in args:
        assert "$" not in arg.replace("$$", ""), f"a variable would expand in {arg!r}"
    return [program, *(arg.replace("$$", "$") for arg in args)]


def env_file(text: str) -> dict[str, str]:
    """An environment file as systemd reads our form of it (``NAME="value"``, ``\\`` before ``\\ " ` $``)."""
    env = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, quoted = line.partition("=")
        assert quoted.startswith('"') and quoted.endswith('"'), line
        env[name] = re.sub(r'\\([\\"`$])', r"\1", quoted[1:-1])
    return env


def make_units(settings: Settings | None = None, workers: int = 3, python: str = PYTHON) -> dict[str, str]:
    return systemd.units(settings or Settings(), nbh=NBH, python=python, caddy=CADDY, workers=workers)


def executable(path: Path) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return str(path)


def written_units(tmp_path: Path, settings: Settings | None = None, python: str = sys.executable) -> Path:
    """The units, written into tmp_path/units with programs that exist (systemd-analyze checks them)."""
    files = systemd.plan(
        settings or Settings(),
        nbh=executable(tmp_path / "venv" / "bin" / "nbh"),
        python=python,
        caddy=shutil.which("caddy") or executable(tmp_path / "bin" / "caddy"),
        workers=2,
        unit_dir=tmp_path / "units",
        env_dir=tmp_path / "etc",
        sysusers_dir=tmp_path / "sysusers.d",
    )
    systemd.write(files)
    return tmp_path / "units"


def verify(unit_dir: Path, *names: str, debug: bool = False) -> subprocess.CompletedProcess[str]:
    assert SYSTEMD_ANALYZE is not None
    env = {**os.environ, "SYSTEMD_LOG_LEVEL": "debug"} if debug else None
    return subprocess.run(
        [SYSTEMD_ANALYZE, "verify", "--man=no", *(names or sorted(p.name for p in unit_dir.iterdir()))],
        cwd=unit_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(autouse=True)
def _code_outside_homes(monkeypatch: pytest.MonkeyPatch) -> None:
    """This checkout may live under /root or /home (the sandbox check is tested on its own)."""
    monkeypatch.setattr(systemd, "CODE", (Path("/opt/nbhosting/code"),))


# --- who runs as whom


def test_the_helper_runs_as_root_the_app_and_caddy_as_their_own_users():
    made = make_units(Settings(app_user="webapp", caddy_user="proxy"))
    helper, app, caddy = (service(made[name]) for name in (systemd.HELPER, systemd.APP, systemd.CADDY))
    assert "User" not in helper and "Group" not in helper
    assert (app["User"], app["Group"]) == ("webapp", "webapp")
    assert (caddy["User"], caddy["Group"]) == ("proxy", "proxy")


def test_the_app_has_no_capability_and_can_gain_none():
    app = service(make_units()[systemd.APP])
    assert app["CapabilityBoundingSet"] == "" and app["AmbientCapabilities"] == ""
    assert app["NoNewPrivileges"] == "yes" and app["RestrictSUIDSGID"] == "yes"


def test_caddy_may_bind_low_ports_and_nothing_more():
    caddy = service(make_units()[systemd.CADDY])
    assert caddy["CapabilityBoundingSet"] == caddy["AmbientCapabilities"] == "CAP_NET_BIND_SERVICE"
    assert caddy["NoNewPrivileges"] == "yes"
    assert caddy["LimitNOFILE"] == "1048576"


def test_the_app_and_caddy_run_in_a_read_only_system_without_homes_devices_or_kernel_knobs():
    for name in (systemd.APP, systemd.CADDY):
        unit = service(make_units()[name])
        for key, value in {
            "ProtectSystem": "strict",
            "ProtectHome": "yes",
            "PrivateTmp": "yes",
            "PrivateDevices": "yes",
            "MemoryDenyWriteExecute": "yes",
            "LockPersonality": "yes",
            "RestrictRealtime": "yes",
            "ProtectKernelTunables": "yes",
            "ProtectKernelModules": "yes",
            "ProtectControlGroups": "yes",
            "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
            "Restart": "on-failure",
        }.items():
            assert unit[key] == value, (name, key)
        assert directives(make_units()[name])["Service"]["SystemCallFilter"][0] == "@system-service"


# --- the helper


def test_stopping_or_restarting_the_helper_leaves_students_servers_running():
    helper = service(make_units()[systemd.HELPER])
    assert helper["KillMode"] == "process"
    assert helper["Restart"] == "on-failure"


def test_the_helper_may_run_setuid_newuidmap_and_reach_netlink():
    helper = service(make_units()[systemd.HELPER])
    assert "NoNewPrivileges" not in helper and "CapabilityBoundingSet" not in helper
    assert helper["RestrictAddressFamilies"] == "AF_UNIX AF_NETLINK AF_INET AF_INET6"


def test_the_helper_has_no_mount_namespace_of_its_own_so_its_mounts_are_seen_by_caddy():
    helper = service(make_units()[systemd.HELPER])
    assert not MOUNT_NAMESPACING & helper.keys()


def test_the_helper_counts_as_started_once_its_socket_exists_and_the_others_start_after_it(tmp_path):
    settings = Settings(run_dir=tmp_path)
    made = make_units(settings)
    wait = words(service(made[systemd.HELPER])["ExecStartPost"])
    assert wait[-1] == str(settings.helper_socket)
    with pytest.raises(subprocess.TimeoutExpired):
        subprocess.run(wait, timeout=1)  # no socket yet: it waits
    settings.helper_socket.parent.mkdir()
    with socket.socket(socket.AF_UNIX) as listening:
        listening.bind(str(settings.helper_socket))
        assert subprocess.run(wait, timeout=5).returncode == 0
    app, caddy = directives(made[systemd.APP])["Unit"], directives(made[systemd.CADDY])["Unit"]
    assert app["Requires"] == [systemd.HELPER] and systemd.HELPER in app["After"][0].split()
    assert systemd.APP in caddy["After"][0].split()


# --- what each may write


def writable(text: str) -> set[Path]:
    unit = service(text)
    paths = {Path(p) for p in unit.get("ReadWritePaths", "").split()}
    paths |= {Path("/var/lib") / p for p in unit.get("StateDirectory", "").split()}
    paths |= {Path("/run") / p for p in unit.get("RuntimeDirectory", "").split()}
    return paths


@pytest.mark.parametrize("data_root, run_dir", [("/var/lib/nbhosting", "/run/nbhosting"), ("/srv/nbh", "/srv/run")])
def test_the_app_writes_its_lti_key_activity_and_tickets_and_caddy_its_certificates_nothing_else(data_root, run_dir):
    settings = Settings(data_root=Path(data_root), run_dir=Path(run_dir))
    made = make_units(settings)
    assert writable(made[systemd.APP]) == {
        settings.lti_dir,
        settings.activity_dir,
        settings.tickets_dir,
        settings.metrics_dir,
    }
    assert writable(made[systemd.CADDY]) == {settings.data_root / "caddy"}
    assert settings.secret_file not in writable(made[systemd.APP])


def test_folders_systemd_makes_are_private_and_survive_a_stop():
    app = service(make_units()[systemd.APP])
    assert app["StateDirectory"] == "nbhosting/lti" and app["StateDirectoryMode"] == "0700"
    assert app["RuntimeDirectory"] == "nbhosting/activity nbhosting/tickets nbhosting/metrics"
    assert app["RuntimeDirectoryMode"] == "0700" and app["RuntimeDirectoryPreserve"] == "yes"


# --- commands and environment


def test_each_command_line_reads_back_as_the_argv_nbh_serve_runs():
    settings = Settings(app_port=9123)
    made = make_units(settings, workers=5, python="/opt/my venv/bin/python")
    assert words(service(made[systemd.APP])["ExecStart"]) == app_argv(settings, 5, "/opt/my venv/bin/python")
    assert words(service(made[systemd.CADDY])["ExecStart"]) == caddy_argv(CADDY)
    assert words(service(made[systemd.HELPER])["ExecStart"]) == [NBH, "helper"]


ODD = [
    "a b",
    'say "hi"',
    "$HOME",
    "${HOME}",
    "$$",
    "100%",
    "%n",
    "back\\slash",
    "",
    ";",
    "tab\there",
    "two\nlines",
    "é",
]


def test_odd_arguments_stay_one_word_each_unexpanded():
    assert words(systemd.exec_line(["/usr/bin/true", *ODD])) == ["/usr/bin/true", *ODD]


def test_a_program_must_be_an_absolute_path_systemd_takes_as_it_is():
    for program in ("caddy", "/opt/$venv/bin/python", '/opt/"venv"/bin/python', "/opt/a\\b/python", "/opt/a\nb"):
        with pytest.raises(InvalidConfig):
            systemd.exec_line([program, "run"])


def test_no_setting_is_written_into_a_unit_only_into_the_environment_files():
    marker = "https://marker-7f3a.example.org"
    settings = Settings(public_url=marker)
    made = make_units(settings)
    for name, text in made.items():
        assert "NBH_" not in text and marker not in text, name
        assert "Environment" not in directives(text).get("Service", {}), name
    assert service(made[systemd.APP])["EnvironmentFile"] == str(systemd.ENV_DIR / systemd.APP_ENV)
    assert service(made[systemd.HELPER])["EnvironmentFile"] == str(systemd.ENV_DIR / systemd.APP_ENV)
    assert service(made[systemd.CADDY])["EnvironmentFile"] == str(systemd.ENV_DIR / systemd.CADDY_ENV)
    assert marker in systemd.environment_files(settings)[systemd.APP_ENV]


def test_the_environment_files_read_back_as_the_settings_as_systemd_and_sh_read_them(tmp_path, monkeypatch):
    odd_url = 'https://x.example.org/a"b$c`d\\e f'
    settings = Settings(public_url=odd_url, egress_allow=["10.1.2.0/24"])
    files = systemd.environment_files(settings)
    expected = {systemd.APP_ENV: settings_environment(settings), systemd.CADDY_ENV: caddy_environment(settings)}
    for name, env in expected.items():
        assert env_file(files[name]) == env
        (tmp_path / name).write_text(files[name])
        done = subprocess.run(
            ["env", "-i", "sh", "-c", 'set -a; . "$1"; exec env -0', "sh", str(tmp_path / name)],
            capture_output=True,
            text=True,
            check=True,
        )
        seen = dict(item.split("=", 1) for item in done.stdout.split("\0") if item)
        assert {k: seen[k] for k in env} == env
    for name, value in env_file(files[systemd.APP_ENV]).items():
        monkeypatch.setenv(name, value)
    assert Settings() == settings  # what the helper and the app read


# --- paths the sandbox would hide


def test_paths_the_sandbox_hides_are_refused_before_anything_is_written():
    opt = [Path("/opt/nbhosting/code")]
    systemd.check_paths(Settings(), python=PYTHON, caddy=CADDY, code=opt)
    for settings, python, code in (
        (Settings(), "/root/venv/bin/python", opt),
        (Settings(), PYTHON, [Path("/home/admin/nbhosting/nbhosting_core")]),
        (Settings(data_root=Path("/home/nbhosting")), PYTHON, opt),
        (Settings(tls_cert=Path("/root/cert.pem"), tls_key=Path("/etc/key.pem")), PYTHON, opt),
    ):
        with pytest.raises(InvalidConfig, match="ProtectHome"):
            systemd.check_paths(settings, python=python, caddy=CADDY, code=code)
    with pytest.raises(InvalidConfig, match="absolute"):
        systemd.check_paths(Settings(run_dir=Path("run")), python=PYTHON, caddy=CADDY, code=opt)


# --- systemd's own checks


@needs_systemd_analyze
def test_systemd_analyze_verify_accepts_every_unit_without_a_warning(tmp_path):
    done = verify(written_units(tmp_path))
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")


@needs_systemd_analyze
def test_systemd_analyze_verify_would_report_an_unknown_or_invalid_option(tmp_path):
    units = written_units(tmp_path)
    app = units / systemd.APP
    app.write_text(
        app.read_text().replace("UMask=0077\n", "UMask=0077\nProtectSystm=strict\nRestrictAddressFamilies=AF_NOPE\n")
    )
    done = verify(units)
    assert "ProtectSystm" in done.stderr and "AF_NOPE" in done.stderr


@needs_systemd_analyze
def test_systemd_reads_each_command_line_back_as_its_argv(tmp_path):
    odd_python = tmp_path / "odd dir %n é" / "python"
    odd_python.parent.mkdir()
    odd_python.symlink_to(sys.executable)
    settings = Settings()
    units = written_units(tmp_path, settings, python=str(odd_python))
    (units / "odd.service").write_text(f"[Service]\nExecStart={systemd.exec_line(['/usr/bin/true', *ODD])}\n")
    done = verify(units, systemd.APP, systemd.HELPER, "odd.service", debug=True)
    assert done.returncode == 0, [line for line in done.stderr.splitlines() if "nbhosting" in line or "odd" in line]
    dump = done.stdout.splitlines()  # at debug level, each unit as systemd parsed it
    lines = [line.split("Command Line: ", 1)[1] for line in dump if "Command Line: " in line]
    parsed = [words(line, specifiers=False) for line in lines]
    assert app_argv(settings, 2, str(odd_python)) in parsed
    assert [str(tmp_path / "venv" / "bin" / "nbh"), "helper"] in parsed
    assert ["/usr/bin/true", *ODD] in parsed


@needs_systemd_analyze
def test_systemd_analyze_security_rates_the_app_and_caddy_ok(tmp_path):
    assert SYSTEMD_ANALYZE is not None
    units = written_units(tmp_path)
    for name in (systemd.APP, systemd.CADDY):
        done = subprocess.run(
            [SYSTEMD_ANALYZE, "security", "--offline=yes", "--threshold=20", "--no-pager", str(units / name)],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stdout[-400:]


@pytest.mark.skipif(shutil.which("systemd-sysusers") is None, reason="systemd-sysusers is not installed")
def test_systemd_sysusers_would_make_the_app_and_caddy_users(tmp_path):
    conf = tmp_path / "nbhosting.conf"
    conf.write_text(systemd.sysusers(Settings(app_user="webapp", caddy_user="proxy")))
    done = subprocess.run(
        ["systemd-sysusers", "--dry-run", f"--root={tmp_path / 'root'}", str(conf)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "Creating user 'webapp'" in done.stderr + done.stdout
    assert "Creating user 'proxy'" in done.stderr + done.stdout


# --- writing


def test_write_puts_files_in_place_with_their_modes_and_rewrites_nothing_the_same(tmp_path):
    files = [
        systemd.SystemFile(tmp_path / "units" / "a.service", "[Unit]\n", 0o644),
        systemd.SystemFile(tmp_path / "etc" / "a.env", 'NBH_X="1"\n', 0o640),
    ]
    assert systemd.write(files) == [(f.path, True) for f in files]
    assert [stat.S_IMODE(f.path.stat().st_mode) for f in files] == [0o644, 0o640]
    assert stat.S_IMODE((tmp_path / "etc").stat().st_mode) == 0o750
    assert systemd.write(files) == [(f.path, False) for f in files]
    files[1].path.chmod(0o644)
    changed = [files[0], systemd.SystemFile(files[1].path, 'NBH_X="2"\n', 0o640)]
    assert systemd.write(changed) == [(files[0].path, False), (files[1].path, True)]
    assert files[1].path.read_text() == 'NBH_X="2"\n' and stat.S_IMODE(files[1].path.stat().st_mode) == 0o640
    assert sorted(p.name for p in (tmp_path / "etc").iterdir()) == ["a.env"]  # no temporary file left


def test_nbh_systemd_print_writes_nothing_and_shows_every_file(tmp_path, capsys):
    assert cli.main(["systemd", "--print", "--dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []
    for name in (systemd.HELPER, systemd.APP, systemd.CADDY, systemd.TARGET):
        assert f"# ---- {tmp_path / name} (mode 0644)" in out
    assert f"# ---- {systemd.ENV_DIR / systemd.APP_ENV} (mode 0640)" in out


def test_nbh_systemd_writes_the_files_once_and_says_what_next(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(systemd, "ENV_DIR", tmp_path / "etc")
    monkeypatch.setattr(systemd, "SYSUSERS_DIR", tmp_path / "sysusers.d")
    assert cli.main(["systemd", "--dir", str(tmp_path / "units"), "--workers", "4"]) == 0
    out = capsys.readouterr().out
    assert out.count("wrote ") == 7 and "systemctl enable --now nbhosting-helper nbhosting-app nbhosting-caddy" in out
    app = service((tmp_path / "units" / systemd.APP).read_text())
    assert app["EnvironmentFile"] == str(tmp_path / "etc" / systemd.APP_ENV)
    assert words(app["ExecStart"])[words(app["ExecStart"]).index("--workers") + 1] == "4"
    assert cli.main(["systemd", "--dir", str(tmp_path / "units"), "--workers", "4"]) == 0
    assert capsys.readouterr().out.count("unchanged ") == 7


def test_nbh_systemd_refuses_in_one_line_what_the_sandbox_would_hide(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(systemd, "CODE", (Path("/root/nbhosting/nbhosting_core"),))
    assert cli.main(["systemd", "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("nbh systemd: /root/nbhosting/nbhosting_core is under /root") and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []
