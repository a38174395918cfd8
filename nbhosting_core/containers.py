"""Students' notebook containers, as pure decisions: what to do with one, and how to create it.

:func:`plan` decides (reuse, start, create, replace); :func:`container_spec` is the podman SpecGenerator of a
new container; :func:`server_from_inspect` reads a container back. Podman labels (:data:`LABELS`) carry
everything needed to find a server again after a crash or a restart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .clock import parse_time
from .courseconfig import CourseMounts
from .models import Account, Action, Server, ServerState
from .naming import container_name, is_key
from .settings import Settings

WORKDIR = "/home/student"
SOCKET_MOUNT = "/nbhosting/run"
SOCKET_NAME = "jupyter.sock"
#: Jupyter's configuration written by nbhosting before each start (see :func:`jupyter_config`), in the socket folder
CONFIG_DIR = "config"
CONFIG_NAME = "jupyter_server_config.json"
#: the student's notary secret and the signatures of the course's notebooks, in the same folder (see
#: :mod:`nbhosting_core.trust`; the image's ``nbhosting_trust.py`` reads them)
NOTARY_SECRET = "notary-secret"  # noqa: S105 - a file name
TRUSTED_DIGESTS = "trusted-digests"
#: where Jupyter answers the reports of its Content-Security-Policy (under its base_url): its own default
CSP_REPORT_PATH = "api/security/csp-report"
ENTRYPOINT = ["tini", "-g", "--", "/usr/local/bin/nbhosting-jupyter"]
#: what each label holds: the same keys are written at creation and read back by the backend.
LABELS = {
    "course": "nbhosting.course",
    "student_id": "nbhosting.student",
    "user": "nbhosting.user",
    "key": "nbhosting.key",
    "image": "nbhosting.rootfs",
}
#: the label every nbhosting container has (how the backend lists them)
MARKER = LABELS["key"]
#: in-memory folders of every container (the rootfs is read-only): path -> (bytes, mode). Their files are
#: memory: they count in the server's memory limit. /run is the container's root's (the student cannot write).
TMPFS = {"/tmp": (256 * 2**20, "1777"), "/var/tmp": (64 * 2**20, "1777"), "/run": (16 * 2**20, "755")}
#: /dev/shm (POSIX shared memory), also in memory: podman's default size, made explicit
SHM_SIZE = 64 * 2**20


def plan(server: Server | None, image: str) -> Action:
    """Decide what to do with the existing server of a (course, student) to get it running (pure).

    A running server is always reused, even on an older image: never cut a student's session. A stopped
    one is started unless its image changed or its labels are unusable; anything else is replaced.
    """
    if server is None:
        return Action.CREATE
    if server.state is ServerState.RUNNING and is_key(server.key):
        return Action.REUSE
    if server.state is ServerState.STOPPED and is_key(server.key) and server.image == image:
        return Action.START
    return Action.REPLACE


def keep_id_mappings(uid: int, gid: int, subids: int) -> dict[str, Any]:
    """What ``--userns=keep-id`` maps, for a student with ``subids`` subordinate ids (pure).

    The student's uid and gid are the same inside the container as on the host; the container's ids below them
    go to the student's subordinate range (ids 1.. of their rootless namespace). Podman's keep-id computes the
    same (podman 4.3, ``GetKeepIDMapping``) but looks the student up in /etc/passwd, /etc/subuid and /etc/subgid at
    every create: 250 ms at 100,000 accounts, against 45 ms with the mapping given.
    """

    def mapping(own: int) -> list[dict[str, int]]:
        maps = [
            {"container_id": 0, "host_id": 1, "size": min(own, subids)},
            {"container_id": own, "host_id": 0, "size": 1},
        ]
        if subids > own:  # a small id: the rest of the subordinate range goes above it
            maps.append({"container_id": own + 1, "host_id": own + 1, "size": subids - own})
        return maps

    return {"UIDMap": mapping(uid), "GIDMap": mapping(gid)}


def jupyter_options(settings: Settings, key: str) -> list[str]:
    """The options nbhosting passes to Jupyter in every server (pure)."""
    options = [
        f"--ServerApp.sock={SOCKET_MOUNT}/{SOCKET_NAME}",
        "--ServerApp.sock_mode=0660",  # its group: Caddy's, set by root (see system.sockets)
        f"--ServerApp.base_url=/{settings.url_prefix}/{key}/",
        "--ServerApp.allow_remote_access=True",
        f"--ServerApp.root_dir={WORKDIR}",
    ]
    if settings.kernel_idle_timeout:
        # Jupyter's own culling reclaims kernels nobody uses, inside a server that is otherwise in use
        options += [
            f"--MappingKernelManager.cull_idle_timeout={settings.kernel_idle_timeout}",
            f"--MappingKernelManager.cull_interval={min(300, max(10, settings.kernel_idle_timeout // 4))}",
            "--MappingKernelManager.cull_connected=True",
            "--MappingKernelManager.cull_busy=False",
        ]
    return options


def jupyter_csp(settings: Settings, key: str, frame_ancestors: str) -> str:
    """Jupyter's own Content-Security-Policy for the server ``key``, with ``frame_ancestors`` (pure).

    Jupyter's default is ``frame-ancestors 'self'; report-uri <base_url>api/security/csp-report``; a policy in its
    ``headers`` setting replaces that default, and Jupyter still adds to it where it must (``; sandbox
    allow-scripts`` on /files/ and other served files, ``; default-src 'none'`` on its API).
    """
    return f"frame-ancestors {frame_ancestors}; report-uri /{settings.url_prefix}/{key}/{CSP_REPORT_PATH}"


#: JupyterLab's (and Notebook 7's) settings overrides, written next to nbhosting's configuration (see lab_overrides)
OVERRIDES_NAME = "overrides.json"
#: the app's pages of what students can do (see nbhosting_server.student), on each server's origin
STUDENT_PATH = "/_nbh/student"


def student_base(settings: Settings, key: str) -> str:
    """Where the students' pages of the server ``key`` are, on its origin (pure)."""
    return STUDENT_PATH if settings.origin_mode == "subdomain" else f"/{settings.url_prefix}/{key}{STUDENT_PATH}"


def lab_overrides(settings: Settings, key: str) -> dict[str, Any]:
    """A "My work" menu in Notebook 7 and JupyterLab, opening the students' pages of the server ``key`` (pure).

    No extension is needed: the menu is a setting of the main menu, and its items run ``help:open``, which both UIs
    have (it opens a URL of the same origin in a new tab).
    """
    base = student_base(settings, key)

    def item(text: str, path: str) -> dict[str, Any]:
        return {"command": "help:open", "args": {"text": text, "url": base + path, "newBrowserTab": True}}

    menu = {
        "id": "jp-mainmenu-nbhosting",
        "label": "My work",
        "rank": 1000,
        "items": [
            item("Reset, backups, sharing…", "/"),
            item("Download my workspace (zip)", "/download-workspace"),
        ],
    }
    return {"@jupyterlab/mainmenu-extension:plugin": {"menus": [menu]}}


def jupyter_config(settings: Settings, key: str, frame_ancestors: str) -> dict[str, Any]:
    """The Jupyter configuration nbhosting writes before each start of the server ``key`` (pure).

    Written at each start rather than passed as options at creation, so that a change of who may frame the
    notebooks (the platforms' origins) reaches each server at its next start. It only adds to the image's own
    configuration (Jupyter merges every file of its config path).
    """
    csp = jupyter_csp(settings, key, frame_ancestors)
    return {
        "ServerApp": {"tornado_settings": {"headers": {"Content-Security-Policy": csp}}},
        # the UIs' settings overrides (lab_overrides) are read from nbhosting's configuration folder: the image has
        # none of its own (a per-course image that ships an overrides.json would see it replaced)
        "LabServerApp": {"app_settings_dir": f"{SOCKET_MOUNT}/{CONFIG_DIR}"},
    }


def container_spec(
    settings: Settings,
    account: Account,
    course: str,
    key: str,
    token: str,
    workspace: Path,
    socket_dir: Path,
    rootfs: Path,
    resource_limits: dict[str, Any] | None = None,
    course_mounts: CourseMounts | None = None,
) -> dict[str, Any]:
    """The podman SpecGenerator of a student's notebook container (pure).

    ``resource_limits``: podman's ``resource_limits`` where the engine can enforce them itself (cgroups v2
    with delegation); elsewhere root enforces the limits from outside (:mod:`nbhosting_core.system.cgroups`).
    ``course_mounts``: folders of the course's checkout mounted read-only at the same place in the workspace
    (``WORKDIR/data``), and the one put on ``PYTHONPATH`` (see :mod:`nbhosting_core.courseconfig`).
    """
    labels = {
        LABELS["course"]: course,
        LABELS["student_id"]: account.student_id,
        LABELS["user"]: account.user,
        LABELS["key"]: key,
        LABELS["image"]: str(rootfs),
    }
    spec: dict[str, Any] = {
        "name": container_name(account.user, course),
        "rootfs": str(rootfs),
        "read_only_filesystem": True,
        # keep-id, written out (see keep_id_mappings): Jupyter runs as the student's uid inside and outside
        "userns": {"nsmode": "private"},
        "idmappings": keep_id_mappings(account.uid, account.gid, settings.subid_count),
        "user": f"{account.uid}:{account.gid}",
        "netns": {"nsmode": "slirp4netns" if settings.egress else "none"},
        "mounts": [
            {"destination": WORKDIR, "source": str(workspace), "type": "bind", "options": ["rbind", "rw"]},
            {"destination": SOCKET_MOUNT, "source": str(socket_dir), "type": "bind", "options": ["rbind", "rw"]},
            # the rootfs is read-only: HOME=/tmp (Jupyter's runtime files) lives in memory, within the memory limit
            *(
                {
                    "destination": path,
                    "source": "tmpfs",
                    "type": "tmpfs",
                    "options": ["rw", "nosuid", "nodev", f"size={size}", f"mode={mode}"],
                }
                for path, (size, mode) in TMPFS.items()
            ),
        ],
        "shm_size": SHM_SIZE,
        "env": {
            "HOME": "/tmp",
            "USER": account.user,
            "JUPYTER_TOKEN": token,
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            # nbhosting's configuration of this server, written before each start (see jupyter_config)
            "JUPYTER_CONFIG_PATH": f"{SOCKET_MOUNT}/{CONFIG_DIR}",
        },
        "labels": labels,
        "work_dir": WORKDIR,
        "hostname": course[:63],
        "stop_timeout": 5,
        # the container's output is kept on the host: bounded
        "log_configuration": {"driver": "k8s-file", "size": settings.log_size_max},
        "command": [*ENTRYPOINT, *jupyter_options(settings, key)],
    }
    if resource_limits:
        spec["resource_limits"] = resource_limits
    if course_mounts is not None:
        spec["mounts"] += course_bind_mounts(course_mounts)
        if course_mounts.pythonpath is not None:
            spec["env"]["PYTHONPATH"] = f"{WORKDIR}/{course_mounts.pythonpath}"
    return spec


def course_bind_mounts(mounts: CourseMounts) -> list[dict[str, Any]]:
    """Read-only bind mounts of a course's folders over the same paths of the workspace, shallowest first (pure)."""
    folders = sorted({*mounts.readonly, *([mounts.pythonpath] if mounts.pythonpath else [])}, key=lambda p: p.parts)
    return [
        {
            "destination": f"{WORKDIR}/{folder}",
            "source": str(mounts.checkout.joinpath(*folder.parts)),
            "type": "bind",
            "options": ["rbind", "ro", "nosuid", "nodev"],
        }
        for folder in folders
    ]


_RUNNING = ("running",)
_STOPPED = ("created", "configured", "exited", "stopped")


def state_of(status: str) -> ServerState:
    """Podman's container status folded into a :class:`ServerState` (pure)."""
    if status in _RUNNING:
        return ServerState.RUNNING
    if status in _STOPPED:
        return ServerState.STOPPED
    return ServerState.BROKEN


def server_from_inspect(data: dict[str, Any], uid: int) -> Server:
    """A :class:`Server` from ``podman inspect`` of a container of the student ``uid`` (pure)."""
    state = data.get("State") or {}
    labels = (data.get("Config") or {}).get("Labels") or {}
    status = state_of(str(state.get("Status", "")))
    return Server(
        name=str(data.get("Name", "")).lstrip("/"),
        uid=uid,
        state=status,
        started_at=parse_time(state.get("StartedAt")),
        **{field: str(labels.get(label, "")) for field, label in LABELS.items()},
    )
