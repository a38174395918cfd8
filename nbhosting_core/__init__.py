"""nbhosting_core: per-student Jupyter notebooks in rootless Podman containers, as a library.

The main entry point is :class:`Hub`::

    from nbhosting_core import Hub, Settings

    hub = Hub(Settings(image_rootfs="/var/lib/nbhosting/images/default-.../rootfs"))
    launch = hub.open_notebook("python3-s2", "w1/intro.ipynb", "a1b2c3")
    print(launch.user, launch.container, launch.url)

No web framework is imported here; ``nbhosting_server`` wraps this library in a Starlette app.
"""

from .access import AccessDecision
from .errors import (
    CommandFailed,
    InvalidInput,
    InvalidNotebook,
    NbhostingError,
    NotFound,
    RuntimeUnavailable,
    StartFailed,
    StartTimeout,
)
from .hub import Hub
from .models import Account, ContainerRecord, ContainerStatus, Launch, LaunchState
from .naming import container_name, user_name, validate_course, validate_notebook_path, validate_student_id
from .settings import Settings

__version__ = "0.1.0"

__all__ = [
    "AccessDecision",
    "Account",
    "CommandFailed",
    "ContainerRecord",
    "ContainerStatus",
    "Hub",
    "InvalidInput",
    "InvalidNotebook",
    "Launch",
    "LaunchState",
    "NbhostingError",
    "NotFound",
    "RuntimeUnavailable",
    "Settings",
    "StartFailed",
    "StartTimeout",
    "container_name",
    "user_name",
    "validate_course",
    "validate_notebook_path",
    "validate_student_id",
]
