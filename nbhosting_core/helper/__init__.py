"""The privileged helper: the one process that acts on the host for the unprivileged web app.

* :mod:`.protocol`: the typed, versioned requests and answers (one JSON line each way);
* :mod:`.server`: :class:`HelperServer`, the hub served on a Unix socket to the app's user alone;
* :mod:`.client`: :class:`HelperClient`, the app's :class:`~nbhosting_core.launcher.Launcher` over that socket;
* :mod:`.service`: :func:`run_helper`, ``nbh helper``'s process (the socket, the culler, signals).
"""

from .client import HelperClient
from .server import HelperServer
from .service import run_helper

__all__ = ["HelperClient", "HelperServer", "run_helper"]
