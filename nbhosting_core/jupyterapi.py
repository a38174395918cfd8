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
#: kernel states that mean "working on something": such a server is not idle.
BUSY_STATES = frozenset({"busy", "starting"})


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
