"""nbhosting_core: per-student Jupyter notebooks in rootless Podman containers, as a library.

The main entry point is :class:`Hub`::

    from nbhosting_core import Hub, Settings, ensure_default_rootfs, ensure_layout

    settings = Settings()
    ensure_layout(settings)                                   # folders, once per host (root)
    settings = settings.model_copy(update={"image_rootfs": ensure_default_rootfs(settings)})
    hub = Hub(settings)
    launch = hub.wait_ready(hub.open_notebook("python3-s2", "w1/intro.ipynb", "a1b2c3"))
    print(launch.user, launch.container, launch.url)

    for view in hub.list_servers():                           # the host: list, stop, cull, reconcile
        print(view.server.name, view.server.state.value, view.idle_seconds)

What runs the servers is a :class:`NotebookBackend`: :class:`PodmanBackend` (rootless podman, the default) or
:class:`FakeBackend` (in memory, for tests and embedding). No web framework is imported here;
``nbhosting_server`` wraps this library in a Starlette app.

The hub acts on the host and needs root. Who reaches which server (cookies, tickets, Caddy's forward-auth) is a
:class:`Gate`'s, which needs no privilege. In production the two live in different processes: the hub in the
privileged helper (:func:`run_helper`, ``nbh helper``), the gate in the unprivileged web app, which opens notebooks
through a :class:`HelperClient`. Both the hub and the client are a :class:`Launcher`, and a :class:`ServerAdmin`
(students' servers as admins see them: list, show, stop, restart, logs).
"""

from .access import AccessDecision
from .accounts import Accounts, AccountStore
from .backend import NotebookBackend
from .courses import Courses
from .culling import Culler, CullPolicy, should_cull
from .errors import (
    AccountUnavailable,
    Busy,
    CommandFailed,
    CourseArchived,
    EgressUnfiltered,
    ImageBuildError,
    InvalidConfig,
    InvalidInput,
    InvalidNotebook,
    LaunchRefused,
    LimitsNotApplied,
    NbhostingError,
    NotFound,
    OverQuota,
    PlatformUnavailable,
    RuntimeUnavailable,
    StartFailed,
    StartTimeout,
)
from .fake import FakeAccounts, FakeBackend
from .gate import Gate
from .helper import HelperClient, HelperServer, run_helper
from .hub import Hub
from .launcher import Launcher
from .launches import Admission, admit, signed_launch_path
from .models import (
    AccessCookie,
    Account,
    Action,
    CullDecision,
    CullReason,
    Ensured,
    Launch,
    LaunchState,
    ReconcileReport,
    Server,
    ServerActivity,
    ServerState,
    ServerView,
    Usage,
)
from .naming import container_name, user_name, validate_course, validate_notebook_path, validate_student_id
from .platforms import Platform, Platforms, load_platforms
from .serveradmin import ServerAdmin
from .settings import Settings
from .system.images import ensure_default_rootfs
from .system.layout import ensure_layout
from .system.podman import PodmanBackend
from .system.runner import CommandRunner, SubprocessRunner
from .throttle import Requester

__version__ = "0.2.0"

__all__ = [
    "AccessCookie",
    "AccessDecision",
    "Account",
    "AccountStore",
    "AccountUnavailable",
    "Accounts",
    "Action",
    "Admission",
    "Busy",
    "CommandFailed",
    "CommandRunner",
    "CourseArchived",
    "Courses",
    "CullDecision",
    "CullPolicy",
    "CullReason",
    "Culler",
    "EgressUnfiltered",
    "Ensured",
    "FakeAccounts",
    "FakeBackend",
    "Gate",
    "HelperClient",
    "HelperServer",
    "Hub",
    "ImageBuildError",
    "InvalidConfig",
    "InvalidInput",
    "InvalidNotebook",
    "Launch",
    "LaunchRefused",
    "LaunchState",
    "Launcher",
    "LimitsNotApplied",
    "NbhostingError",
    "NotFound",
    "NotebookBackend",
    "OverQuota",
    "Platform",
    "PlatformUnavailable",
    "Platforms",
    "PodmanBackend",
    "ReconcileReport",
    "Requester",
    "RuntimeUnavailable",
    "Server",
    "ServerActivity",
    "ServerAdmin",
    "ServerState",
    "ServerView",
    "Settings",
    "StartFailed",
    "StartTimeout",
    "SubprocessRunner",
    "Usage",
    "admit",
    "container_name",
    "ensure_default_rootfs",
    "ensure_layout",
    "load_platforms",
    "run_helper",
    "should_cull",
    "signed_launch_path",
    "user_name",
    "validate_course",
    "validate_notebook_path",
    "validate_student_id",
]
