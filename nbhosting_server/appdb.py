"""The app's database, as the app or from a root shell.

The database is the web app's: its user owns the folder and the files (SQLite makes ``-wal`` and ``-shm`` beside
the database as whoever opens it). A root shell (``nbh staff``, ``nbh token``, ``nbh events``, ``nbh stats``) first
becomes the app's user for good (:func:`become_app_user`), so that nothing it makes there is root's and nothing
the app could have planted there is met with root's rights.
"""

from __future__ import annotations

import logging
import os

from sqlalchemy import Engine

from nbhosting_core.db import open_database
from nbhosting_core.errors import NbhostingError
from nbhosting_core.settings import Settings
from nbhosting_core.system.layout import give_to_app
from nbhosting_core.system.services import service_user

log = logging.getLogger(__name__)


def become_app_user(settings: Settings) -> None:
    """As root with the app's user made: become it for the rest of this process (no group, no way back).

    Without the app's user (tests, scripts on a host not set up), or not root: nothing changes.
    """
    app = service_user(settings.app_user)
    if os.geteuid() != 0 or app is None:
        return
    os.setgroups([])
    os.setresgid(app.gid, app.gid, app.gid)
    os.setresuid(app.uid, app.uid, app.uid)
    log.info("running as the app's user %s (uid %d) for its database", app.name, app.uid)


def prepare_database_dir(settings: Settings) -> None:
    """As root, before :func:`become_app_user`: the default SQLite database's folder exists and is the app's (a
    staff member may be added before the host's first ``nbh serve``). Nothing for another database URL.

    Raises:
        NbhostingError: DATA_ROOT does not exist (a host not set up, or a mistyped NBH_DATA_ROOT).
    """
    if settings.database_url is not None or os.geteuid() != 0:
        return
    if not settings.data_root.is_dir():
        raise NbhostingError(
            f"There is no {settings.data_root}: set NBH_DATA_ROOT, or prepare the host first (nbh serve, nbh doctor)."
        )
    settings.db_dir.mkdir(mode=0o700, exist_ok=True)
    give_to_app(settings, settings.db_dir)


def app_database(settings: Settings) -> Engine:
    """The app's database, migrated to the newest (call :func:`become_app_user` first from a root shell)."""
    if settings.database_url is None:
        settings.db_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return open_database(settings.effective_database_url)
