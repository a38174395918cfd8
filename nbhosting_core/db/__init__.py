"""nbhosting's database: staff, API tokens, sessions, and the events read from the host's journal.

SQLAlchemy Core (no ORM) on SQLite by default (``DATA_ROOT/db/nbhosting.sqlite``, WAL: several app workers read
and write at once), with alembic migrations from the first table, so that PostgreSQL can take over
(``NBH_DATABASE_URL``) when one host is not enough. The database is the web app's (its user owns the file); a root
shell reaches it through :func:`nbhosting_core.db.engine.open_database` the same way.
"""

from .engine import open_database
from .schema import metadata

__all__ = ["metadata", "open_database"]
