"""The data nbhosting passes around: plain, immutable pydantic models."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

from pydantic import BaseModel, ConfigDict


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class Account(_Frozen):
    """A student's Linux account."""

    student_id: str
    user: str
    uid: int
    gid: int
    home: Path


class ServerState(str, Enum):
    """What the backend says of a notebook server, folded into what nbhosting acts on."""

    RUNNING = "running"  # its processes run (Jupyter may still be starting: see NotebookBackend.is_ready)
    STOPPED = "stopped"  # created, exited, stopped: it can be started again, same key
    BROKEN = "broken"  # anything else: it is replaced at the next launch


class Server(_Frozen):
    """One notebook server: the one of a (course, student), as the backend reports it.

    ``key`` names it in URLs (``/<prefix>/<key>/``) and never changes while the server exists; ``image``
    is what it runs (for podman: the root filesystem); ``started_at`` is when it last started (while it runs,
    always; once stopped, when the backend still knows).
    """

    name: str
    course: str
    student_id: str
    user: str
    uid: int
    key: str
    image: str
    state: ServerState
    started_at: float | None = None


class Action(str, Enum):
    """What ``NotebookBackend.ensure_running`` did to get a running server."""

    REUSE = "reuse"
    START = "start"
    CREATE = "create"
    REPLACE = "replace"


class Ensured(_Frozen):
    """The answer of ``NotebookBackend.ensure_running``: the server, and what was done to it."""

    server: Server
    action: Action


class ServerActivity(_Frozen):
    """What a running Jupyter says of its own use (``/api/status`` and ``/api/kernels``)."""

    last_activity: float | None  # epoch seconds: the last kernel message or API request Jupyter saw
    kernels: int = 0
    busy_kernels: int = 0  # executing right now: a long computation is not idle
    connections: int = 0


class Usage(_Frozen):
    """Resources a server uses, and its limits; ``None`` where the host cannot tell."""

    memory_bytes: int | None = None
    memory_limit: int | None = None
    oom_kills: int | None = None  # processes the OOM killer took in the server's memory group since it was made
    pids: int | None = None
    pids_limit: int | None = None
    cpu_seconds: float | None = None
    cpu_limit: float | None = None  # cores; None: no cap (or unknown)
    disk_bytes: int | None = None
    disk_limit: int | None = None


class ServerView(_Frozen):
    """A server as an admin sees it: the server, when its student was last seen, and what it uses."""

    server: Server
    last_seen: float | None  # the latest of: proxied request, Jupyter activity, start
    idle_seconds: float | None
    age_seconds: float | None
    activity: ServerActivity | None = None
    usage: Usage | None = None
    #: its image as people read it: ``<course> v<n>`` or ``default <hash6>`` (see imageversions.image_label)
    image_label: str | None = None
    #: True when new servers of its course get another image (a restart moves it there); None: unknown
    old_image: bool | None = None


class WorkspaceSummary(_Frozen):
    """A student's workspace of one course, as an admin sees it: its notebooks (the first
    :data:`~nbhosting_core.studentfiles.SUMMARY_NOTEBOOKS`, by path), and how many files and bytes it holds."""

    course: str
    notebooks: list[str]
    notebook_count: int
    files: int
    bytes: int
    modified: float | None = None  # the newest file's mtime
    truncated: bool = False  # more entries than a summary reads: the figures are a lower bound


class StudentView(_Frozen):
    """A student as an admin sees them: their account (None: they have none here), their workspaces (one per
    course, summarized) and their servers."""

    student_id: str
    user: str | None = None
    workspaces: list[WorkspaceSummary]
    servers: list[ServerView]


class CullReason(str, Enum):
    """Why the culler stops a server (or keeps it)."""

    IDLE = "idle"  # no request and no kernel activity for idle_timeout
    MAX_AGE = "max-age"  # older than max_age, restarted at an idle moment
    OVER_QUOTA = "over-quota"  # uses more disk than workspace_quota (where usage is measured, not capped)
    BUSY = "busy"  # a kernel is executing: kept
    ACTIVE = "active"  # seen recently: kept
    NOT_RUNNING = "not-running"  # nothing to stop


class CullDecision(_Frozen):
    """The culler's decision on one server, with the figures it rests on."""

    name: str
    cull: bool
    reason: CullReason
    idle_seconds: float | None = None
    age_seconds: float | None = None


class ReconcileReport(_Frozen):
    """What reconciling the backend with the truth (the engine's labels, the disk) found and did."""

    adopted: list[str] = []  # running servers whose runtime records were missing: recorded again
    removed: list[str] = []  # half-made or vanished servers: removed, or their records dropped
    cleared: list[str] = []  # stale socket folders, links, locks and records: cleared
    checked: int = 0


class LaunchState(str, Enum):
    """Where a launch stands."""

    READY = "ready"
    STARTING = "starting"


class Launch(_Frozen):
    """The answer to "open this notebook for this student": who, which server, where to go."""

    course: str
    notebook: str
    student_id: str
    user: str
    uid: int
    container: str
    key: str
    url: str
    state: LaunchState
    action: Action = Action.REUSE
    copied: bool = False
    started_at: float | None = None

    @property
    def created(self) -> bool:
        """True if this launch created a new server (a first launch, or a replacement)."""
        return self.action in (Action.CREATE, Action.REPLACE)


class AccessCookie(_Frozen):
    """The cookie that lets one browser reach one notebook server (set by the server's origin, no Domain)."""

    name: str
    value: str
    key: str  # the server it opens
    path: str
    max_age: int
