"""What the web app asks of the host for students: open a notebook, and follow its start. (What admins ask of it is
:class:`~nbhosting_core.serveradmin.ServerAdmin`; what students do with their files,
:class:`~nbhosting_core.studentwork.StudentActions`.)

Two implementations: :class:`~nbhosting_core.hub.Hub` itself, in one process (scripts, the CLI, tests), and
:class:`~nbhosting_core.helper.client.HelperClient`, which asks the privileged helper over its Unix socket (the
app, unprivileged, under ``nbh serve`` or systemd). Both raise the same :class:`~nbhosting_core.errors.NbhostingError`
subclasses.
"""

from __future__ import annotations

from typing import Protocol

from .models import Launch
from .throttle import Requester


class Launcher(Protocol):
    """Opens notebooks for students: the one privileged service the web app needs."""

    def open_notebook(
        self, course: str, notebook: str, student_id: str, *, requester: Requester | None = None
    ) -> Launch:
        """See :meth:`nbhosting_core.hub.Hub.open_notebook`."""
        ...

    def launch_status(self, course: str, notebook: str, student_id: str) -> Launch:
        """See :meth:`nbhosting_core.hub.Hub.launch_status`."""
        ...
