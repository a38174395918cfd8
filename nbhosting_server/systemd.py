"""`nbh systemd`: the units that run nbhosting on a production host (systemd, cgroups v2), each sandboxed.

Three processes, as under `nbh serve`, each in a unit of its own::

    nbhosting-helper.service   root                  `nbh helper`: accounts, workspaces, mounts, students' podman
    nbhosting-app.service      settings.app_user     the web app (uvicorn)
    nbhosting-caddy.service    settings.caddy_user   TLS, and the proxy to students' Jupyter sockets
    nbhosting.target           the three together    `systemctl restart nbhosting.target`

The settings go into environment files (:func:`environment_files`, mode 0640), never into the units; the app's
and Caddy's system users into a sysusers.d file. Everything here is pure text made from the settings, except
:func:`write`, which puts the files in place (idempotent: the same settings write the same bytes).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import nbhosting_core
from nbhosting_core import InvalidConfig, Settings

from .serve import CADDYFILE, app_argv, caddy_argv, caddy_environment, settings_environment

UNIT_DIR = Path("/etc/systemd/system")
ENV_DIR = Path("/etc/nbhosting")
SYSUSERS_DIR = Path("/etc/sysusers.d")

HELPER = "nbhosting-helper.service"
APP = "nbhosting-app.service"
CADDY = "nbhosting-caddy.service"
TARGET = "nbhosting.target"
#: the helper's and the app's settings; Caddy's (the NBH_* its Caddyfile reads, where it keeps certificates)
APP_ENV = "nbhosting.env"
CADDY_ENV = "caddy.env"
SYSUSERS = "nbhosting.conf"

#: nbhosting's code and Caddyfile, which the app and Caddy read
CODE = (Path(nbhosting_core.__file__).parent, Path(__file__).parent, CADDYFILE)
#: what ProtectHome=yes hides from the app and Caddy
HOME_DIRS = (PurePosixPath("/home"), PurePosixPath("/root"), PurePosixPath("/run/user"))
#: where systemd makes a unit's folders itself (StateDirectory=, RuntimeDirectory=)
STATE_ROOT = PurePosixPath("/var/lib")
RUNTIME_ROOT = PurePosixPath("/run")

_PLAIN = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")
_C_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _word(text: str, *, env: bool) -> str:
    """``text`` as one word of a unit's setting: specifiers (%) escaped, quoted and C-escaped where needed.

    ``env``: the setting expands ``$VAR`` (command lines do, at exec time): ``$`` is written ``$$``.
    """
    escaped = text.replace("%", "%%")
    if env:
        escaped = escaped.replace("$", "$$")
    if text and _PLAIN.fullmatch(text):
        return escaped
    quoted = "".join(_C_ESCAPES.get(c, c if c.isprintable() else f"\\x{ord(c):02x}") for c in escaped)
    return f'"{quoted}"'


def exec_line(argv: Sequence[str]) -> str:
    """``argv`` as a unit's command line (ExecStart=): each element one word, whatever it holds.

    Raises:
        InvalidConfig: the program is not an absolute path, or holds what systemd refuses in it (quotes,
            backslashes, control characters) or would not read back as it is (``$``: systemd takes the program's
            path literally, but expands its argv[0]).
    """
    program, *args = argv
    if not program.startswith("/") or any(c in "$\"'\\" or not c.isprintable() for c in program):
        raise InvalidConfig(f"A unit's program must be an absolute path without $, quotes or backslashes: {program!r}.")
    return " ".join([_word(program, env=False), *(_word(arg, env=True) for arg in args)])


def environment_line(name: str, value: str) -> str:
    """``NAME="value"`` as systemd's EnvironmentFile= reads it (and as sh does: ``\\ " ` $`` escaped)."""
    escaped = "".join("\\" + c if c in '\\"`$' else c for c in value)
    return f'{name}="{escaped}"'


def _writable(paths: Iterable[Path]) -> list[str]:
    """The settings that make ``paths`` (folders) writable under ProtectSystem=strict, owned by the unit's user.

    Under /var/lib and /run, systemd makes them itself at each start, owned by the unit's user, and keeps them when
    it stops (StateDirectory=, RuntimeDirectory=): they exist even on the first start after a reboot (/run is
    empty), whatever the helper has made yet. Elsewhere they must exist already (ReadWritePaths=).
    """
    state, runtime, other = [], [], []
    for path in paths:
        pure = PurePosixPath(os.path.normpath(path))
        if pure.is_relative_to(STATE_ROOT) and pure != STATE_ROOT:
            state.append(_word(str(pure.relative_to(STATE_ROOT)), env=False))
        elif pure.is_relative_to(RUNTIME_ROOT) and pure != RUNTIME_ROOT:
            runtime.append(_word(str(pure.relative_to(RUNTIME_ROOT)), env=False))
        else:
            other.append(_word(str(pure), env=False))
    lines = []
    if state:
        lines += [f"StateDirectory={' '.join(state)}", "StateDirectoryMode=0700"]
    if runtime:
        lines += [f"RuntimeDirectory={' '.join(runtime)}", "RuntimeDirectoryMode=0700", "RuntimeDirectoryPreserve=yes"]
    if other:
        lines.append(f"ReadWritePaths={' '.join(other)}")
    return lines


def app_writable(settings: Settings) -> list[Path]:
    """The app's state, all it may write: the LTI tool's key and nonces, servers' activity, tickets spent, its
    workers' request counts."""
    return [settings.lti_dir, settings.activity_dir, settings.tickets_dir, settings.metrics_dir]


def caddy_writable(settings: Settings) -> list[Path]:
    """Caddy's state, all it may write: its certificates and autosaved configuration (XDG_DATA/CONFIG_HOME)."""
    return [settings.data_root / "caddy"]


def check_paths(settings: Settings, *, python: str, caddy: str, code: Sequence[Path] | None = None) -> None:
    """Refuse paths the units cannot name, or that the app's and Caddy's sandbox hides (ProtectHome=yes).

    ``code``: where nbhosting's code and Caddyfile are (default: where they are installed, :data:`CODE`).

    Raises:
        InvalidConfig: data_root or run_dir is relative, or a path the app or Caddy reads or runs (their
            programs, nbhosting's code, the settings' folders and files) lies under /home, /root or /run/user.
    """
    for name, path in (("data_root", settings.data_root), ("run_dir", settings.run_dir)):
        if not path.is_absolute():
            raise InvalidConfig(f"nbh systemd needs an absolute {name}, not {str(path)!r}.")
    needed = [Path(python), Path(caddy), *(CODE if code is None else code), settings.data_root, settings.run_dir]
    needed.append(settings.effective_platforms_file)
    tls = (settings.tls_cert, settings.tls_key, settings.servers_tls_cert, settings.servers_tls_key)
    needed += [path for path in tls if path is not None]
    for path in needed:
        pure = PurePosixPath(os.path.abspath(path))
        for home in HOME_DIRS:
            if pure.is_relative_to(home):
                raise InvalidConfig(
                    f"{pure} is under {home}, which the app's and Caddy's sandbox hides (ProtectHome=yes): "
                    "install nbhosting (its venv) and its files elsewhere, e.g. /opt/nbhosting."
                )


def _comment(paragraphs: Sequence[str]) -> str:
    """``paragraphs`` as a comment, wrapped; "" is an empty comment line, "- " starts a bullet."""
    lines = []
    for text in paragraphs:
        indent = "  " if text.startswith("- ") else ""
        wrapped = textwrap.wrap(text, 110, subsequent_indent=indent, break_on_hyphens=False, break_long_words=False)
        lines += wrapped or [""]
    return "".join(f"# {line}".rstrip() + "\n" for line in lines)


def _unit(header: Sequence[str], unit: list[str], service: list[str]) -> str:
    return (
        _comment(header)
        + "\n[Unit]\n"
        + "\n".join(unit)
        + "\n\n[Service]\n"
        + "\n".join(service)
        + "\n\n[Install]\nWantedBy=multi-user.target\n"
    )


def _generated(name: str) -> str:
    return (
        f"{name}: written by `nbh systemd` (nbhosting {nbhosting_core.__version__}); run it again rather than edit it."
    )


#: kernel and system-call hardening shared by the app and Caddy: nothing either of them needs
_HARDENED = [
    "ProtectSystem=strict",
    "ProtectHome=yes",
    "PrivateTmp=yes",
    "PrivateDevices=yes",
    "NoNewPrivileges=yes",
    "RestrictSUIDSGID=yes",
    "RestrictNamespaces=yes",
    "RestrictRealtime=yes",
    "LockPersonality=yes",
    "MemoryDenyWriteExecute=yes",
    "ProtectKernelTunables=yes",
    "ProtectKernelModules=yes",
    "ProtectKernelLogs=yes",
    "ProtectControlGroups=yes",
    "ProtectClock=yes",
    "ProtectHostname=yes",
    "PrivateMounts=yes",
    "RemoveIPC=yes",
    "SystemCallArchitectures=native",
    "SystemCallFilter=@system-service",
    "SystemCallFilter=~@privileged @resources",
    "SystemCallErrorNumber=EPERM",
]


def units(
    settings: Settings, *, nbh: str, python: str, caddy: str, workers: int, env_dir: Path = ENV_DIR
) -> dict[str, str]:
    """The units that run nbhosting, by file name: the helper's, the app's, Caddy's, and the target of all three.

    Args:
        settings: nbhosting's settings (paths, users, ports).
        nbh: the `nbh` command (absolute path), which runs the helper.
        python: the Python of nbhosting's venv (absolute path, symlinks kept: the venv is found through it).
        caddy: the caddy binary (absolute path).
        workers: uvicorn worker processes of the app.
        env_dir: where the units read their environment files (see :func:`environment_files`).

    Raises:
        InvalidConfig: a program is not an absolute path (see :func:`check_paths` for the rest).
    """
    app_env = _word(str(env_dir / APP_ENV), env=False)
    socket = str(settings.helper_socket)
    wait_for_socket = ["/bin/sh", "-c", 'until [ -S "$1" ]; do sleep 0.2; done', "nbhosting-helper", socket]
    helper = _unit(
        [
            _generated(HELPER),
            "",
            "The privileged helper, as root: it makes students' Linux users, workspaces and mounts, and runs their "
            f"rootless podman (through runuser/setpriv). The app asks it for all of that over {socket}; nothing "
            "else runs as root. What it is not given, and why:",
            "- no file-system sandbox (ProtectSystem=, ProtectHome=, PrivateTmp=, ReadOnlyPaths=...): each gives the "
            "helper a mount namespace of its own, and the mounts it makes (each server's socket folder, a tmpfs; "
            "workspace images) would be seen by no one else: not Caddy, not the next helper after a restart. /etc "
            "stays writable for useradd.",
            "- no NoNewPrivileges=: students' rootless podman needs the setuid newuidmap and newgidmap.",
            "- no Delegate=: each server's limits are in a cgroup of nbhosting's own, "
            f"/sys/fs/cgroup/{settings.cgroup_parent}/, that root writes from outside this unit's cgroup (a student "
            "cannot leave it): a subtree delegated inside this unit's cgroup would add nothing.",
        ],
        [
            "Description=nbhosting privileged helper (students' accounts, workspaces and containers)",
            "After=network.target",
            f"PartOf={TARGET}",
        ],
        [
            "Type=simple",
            f"EnvironmentFile={app_env}",
            f"ExecStart={exec_line([nbh, 'helper'])}",
            "# started once it answers (its socket exists): the app and Caddy, ordered after it, find the host",
            "# prepared and the secret made; a first start may build the notebook image (minutes)",
            f"ExecStartPost={exec_line(wait_for_socket)}",
            "TimeoutStartSec=15min",
            "# students' servers (conmon, slirp4netns, their podman) are the helper's children: a stop or a restart",
            "# ends the helper alone, and they keep running (the next helper finds them again)",
            "KillMode=process",
            "Restart=on-failure",
            "RestartSec=2s",
            "# every student's podman processes are in this unit's cgroup: nbhosting's own limits cap them",
            "# (pids_limit, students_pids_fraction), not systemd's default share of pid_max",
            "TasksMax=infinity",
            "# Unix (the app, podman), netlink (nftables, podman's network set-up), IP (slirp4netns); a seccomp",
            "# filter, inherited by all the helper starts, students' kernels included",
            "RestrictAddressFamilies=AF_UNIX AF_NETLINK AF_INET AF_INET6",
        ],
    )
    app = _unit(
        [
            _generated(APP),
            "",
            f"The web app (uvicorn, {workers} workers): launch URLs, LTI, tickets, Caddy's forward-auth. As the "
            f"unprivileged user {settings.app_user}, it holds the signing secret ({settings.secret_file}, read-only "
            "here: the helper makes it) and reaches the host only through the helper's socket. So: no capability "
            "and none to gain, a read-only system with its own state writable and nothing else, no device, no home, "
            "the system calls of an ordinary service, no executable memory it could write.",
        ],
        [
            "Description=nbhosting web app",
            f"Requires={HELPER}",
            f"After=network.target {HELPER}",
            f"PartOf={TARGET}",
        ],
        [
            "Type=simple",
            f"User={settings.app_user}",
            f"Group={settings.app_user}",
            f"EnvironmentFile={app_env}",
            f"ExecStart={exec_line(app_argv(settings, workers, python))}",
            "Restart=on-failure",
            "RestartSec=2s",
            "UMask=0077",
            "# its state, owned by it (0700): the LTI tool's key and nonces, servers' activity, tickets spent",
            *_writable(app_writable(settings)),
            "CapabilityBoundingSet=",
            "AmbientCapabilities=",
            "# Unix (the helper), IP (its port; platforms' LTI 1.3 key sets)",
            "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
            *_HARDENED,
        ],
    )
    caddy_unit = _unit(
        [
            _generated(CADDY),
            "",
            "Caddy: TLS, and the one route to each student's Jupyter socket, after the app's forward-auth. As the "
            f"unprivileged user {settings.caddy_user}, whose group may dial the students' sockets; "
            "CAP_NET_BIND_SERVICE (ports below 1024) is its only capability, it writes nothing but its "
            "certificates, and its environment holds what its Caddyfile reads, no other setting.",
        ],
        [
            "Description=nbhosting Caddy (TLS, and the proxy to students' notebook servers)",
            "Wants=network-online.target",
            f"After=network-online.target {APP}",
            f"PartOf={TARGET}",
        ],
        [
            "Type=notify",
            f"User={settings.caddy_user}",
            f"Group={settings.caddy_user}",
            f"EnvironmentFile={_word(str(env_dir / CADDY_ENV), env=False)}",
            f"ExecStart={exec_line(caddy_argv(caddy))}",
            "Restart=on-failure",
            "RestartSec=2s",
            "LimitNOFILE=1048576",
            "UMask=0077",
            "# its certificates and autosaved configuration, owned by it (0700)",
            *_writable(caddy_writable(settings)),
            "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
            "AmbientCapabilities=CAP_NET_BIND_SERVICE",
            "# Unix (students' Jupyter sockets), IP (clients, the app, ACME)",
            "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6",
            "# it reads no other process (the app does: whether a server's processes are alive)",
            "ProtectProc=invisible",
            *_HARDENED,
        ],
    )
    target = (
        _comment(
            [_generated(TARGET), f"The helper, the app and Caddy: `systemctl restart {TARGET}` restarts the three."]
        )
        + f"\n[Unit]\nDescription=nbhosting\nWants={HELPER} {APP} {CADDY}\n\n[Install]\nWantedBy=multi-user.target\n"
    )
    return {HELPER: helper, APP: app, CADDY: caddy_unit, TARGET: target}


def environment_files(settings: Settings, env_dir: Path = ENV_DIR) -> dict[str, str]:
    """The units' environment files, by file name: the helper's and the app's settings; Caddy's environment."""
    settings_file = env_dir / APP_ENV
    texts = {}
    for name, env, what in (
        (APP_ENV, settings_environment(settings), "nbhosting's settings, for the helper and the app"),
        (CADDY_ENV, caddy_environment(settings), f"Caddy's environment (what its Caddyfile reads), from {APP_ENV}"),
    ):
        header = _comment(
            [
                f"{env_dir / name}: {what}. Written by `nbh systemd` from the NBH_* variables it ran with, as "
                "systemd's EnvironmentFile= and sh read it.",
                f"The units depend on the settings too (paths, users, ports): to change one, edit {settings_file}, "
                f"then `set -a; . {settings_file}; set +a; nbh systemd; systemctl daemon-reload; "
                f"systemctl restart {TARGET}`.",
            ]
        )
        texts[name] = header + "".join(environment_line(k, v) + "\n" for k, v in sorted(env.items()))
    return texts


def sysusers(settings: Settings) -> str:
    """sysusers.d lines for the app's and Caddy's system users (each with its own group; no home, no shell)."""
    return (
        "# Written by `nbh systemd`: the users nbhosting's app and Caddy run as (`systemd-sysusers` makes them).\n"
        f'u {settings.app_user} - "nbhosting web app" - -\n'
        f'u {settings.caddy_user} - "nbhosting Caddy" - -\n'
    )


@dataclass(frozen=True)
class SystemFile:
    """A file `nbh systemd` puts in place: where, what, and its mode (owner root)."""

    path: Path
    text: str
    mode: int


def plan(
    settings: Settings,
    *,
    nbh: str,
    python: str,
    caddy: str,
    workers: int,
    unit_dir: Path = UNIT_DIR,
    env_dir: Path = ENV_DIR,
    sysusers_dir: Path = SYSUSERS_DIR,
) -> list[SystemFile]:
    """Every file `nbh systemd` writes: the units (0644), the environment files (0640), the sysusers.d file.

    Raises:
        InvalidConfig: see :func:`check_paths` and :func:`units`.
    """
    check_paths(settings, python=python, caddy=caddy)
    made = units(settings, nbh=nbh, python=python, caddy=caddy, workers=workers, env_dir=env_dir)
    files = [SystemFile(unit_dir / name, text, 0o644) for name, text in made.items()]
    files += [SystemFile(env_dir / name, text, 0o640) for name, text in environment_files(settings, env_dir).items()]
    files.append(SystemFile(sysusers_dir / SYSUSERS, sysusers(settings), 0o644))
    return files


def write(files: Iterable[SystemFile]) -> list[tuple[Path, bool]]:
    """Put ``files`` in place (atomically, owner root when run as root); each path, and whether it changed.

    A file that already holds the same text with the same mode is left alone. Missing folders are made (0755;
    the environment files' 0750).

    Raises:
        OSError: a file or folder cannot be written (not root, say).
    """
    done = []
    for f in files:
        data = f.text.encode()
        try:
            same = f.path.read_bytes() == data and (f.path.stat().st_mode & 0o7777) == f.mode
        except FileNotFoundError:
            same = False
        if not same:
            if not f.path.parent.is_dir():
                f.path.parent.mkdir(parents=True, mode=0o750 if f.mode & 0o007 == 0 else 0o755)
            fd, tmp = tempfile.mkstemp(dir=f.path.parent, prefix=f".{f.path.name}.")
            try:
                with open(fd, "wb") as out:
                    os.fchmod(fd, f.mode)
                    if os.geteuid() == 0:
                        os.fchown(fd, 0, 0)
                    out.write(data)
                    out.flush()
                    os.fsync(fd)
                os.replace(tmp, f.path)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
        done.append((f.path, not same))
    return done
