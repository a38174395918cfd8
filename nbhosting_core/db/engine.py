"""Opening the database: the engine, SQLite's pragmas, and the migrations run to the newest."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def sqlite_url(path: Path) -> str:
    """The URL of the SQLite database file ``path``."""
    return f"sqlite:///{path}"


def open_database(url: str, *, migrate: bool = True) -> Engine:
    """An engine on ``url``, its schema migrated to the newest (alembic), idempotent.

    SQLite gets WAL (readers never block the writer: several app workers), a 5 s busy timeout, and foreign keys.
    """
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    if migrate:
        upgrade(engine)
    return engine


def upgrade(engine: Engine) -> None:
    """Run every migration not yet applied to ``engine``'s database (an SQLite file's migrations one process at a
    time: a lock file beside it)."""
    started = time.monotonic()
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    lock = Path(database + ".migrate.lock") if database and database != ":memory:" else None
    with _migration_lock(lock), engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    log.info(
        "database %s migrated in %.3fs", engine.url.render_as_string(hide_password=True), time.monotonic() - started
    )


@contextlib.contextmanager
def _migration_lock(path: Path | None) -> Iterator[None]:
    if path is None:
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
