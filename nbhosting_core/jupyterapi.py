"""What nbhosting asks a Jupyter server, and how it reads the answers (pure).

The backends only carry the bytes (over a Unix socket, a pod's address...); the paths and the parsing live
here, the same for all of them. ``no_track_activity`` keeps nbhosting's own probes from counting as the
student's activity (``/api/status`` never counts).
"""

from __future__ import annotations

import json
from typing import Any

from .clock import parse_time
from .models import ServerActivity

STATUS_PATH = "api/status"
KERNELS_PATH = "api/kernels?no_track_activity=1"
SESSIONS_PATH = "api/sessions"
#: kernel states that mean "working on something": such a server is not idle. Not "starting": Jupyter learns a
#: kernel's state from its messages, and a kernel no client has talked to yet (the one the hub starts for a launch,
#: see KernelStarts.prestart) stays "starting" for as long as it lives; a kernel that really starts is recent activity.
BUSY_STATES = frozenset({"busy"})


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


def parse_activity(status_body: bytes, kernels_body: bytes | None) -> ServerActivity | None:
    """A :class:`ServerActivity` from the bodies of ``/api/status`` and ``/api/kernels``; None if unreadable.

    Jupyter's ``last_activity`` already covers its kernels and API requests; the kernels' list adds which
    ones are executing right now (a long silent computation sends no message, yet is not idle).
    """
    status = _json(status_body)
    if not isinstance(status, dict):
        return None
    kernels = _json(kernels_body) if kernels_body is not None else None
    kernel_list = [k for k in kernels if isinstance(k, dict)] if isinstance(kernels, list) else []
    times = [parse_time(status.get("last_activity"))] + [parse_time(k.get("last_activity")) for k in kernel_list]
    known = [t for t in times if t is not None]
    count = status.get("kernels")
    connections = status.get("connections")
    return ServerActivity(
        last_activity=max(known) if known else None,
        kernels=count if isinstance(count, int) else len(kernel_list),
        busy_kernels=sum(1 for k in kernel_list if k.get("execution_state") in BUSY_STATES),
        connections=connections if isinstance(connections, int) else 0,
    )


def kernel_name(notebook: bytes) -> str | None:
    """The kernel a notebook asks for (``metadata.kernelspec.name``); None if it names none (pure)."""
    data = _json(notebook)
    metadata = data.get("metadata") if isinstance(data, dict) else None
    spec = metadata.get("kernelspec") if isinstance(metadata, dict) else None
    name = spec.get("name") if isinstance(spec, dict) else None
    return name if isinstance(name, str) and name else None


def has_session(sessions_body: bytes, path: str) -> bool | None:
    """True if the body of ``GET /api/sessions`` lists a session for ``path``; None if unreadable (pure)."""
    sessions = _json(sessions_body)
    if not isinstance(sessions, list):
        return None
    return any(isinstance(s, dict) and s.get("path") == path for s in sessions)


def new_session(path: str, kernel: str | None) -> bytes:
    """The body of ``POST /api/sessions`` that starts a kernel for the notebook ``path``, as the UIs ask (pure).

    ``kernel`` None: Jupyter's default kernel.
    """
    body: dict[str, Any] = {
        "path": path,
        "name": path.rsplit("/", 1)[-1],
        "type": "notebook",
        "kernel": {"name": kernel} if kernel else {},
    }
    return json.dumps(body).encode()
