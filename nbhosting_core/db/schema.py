"""The tables (SQLAlchemy Core). Every change here comes with a migration in ``migrations/versions/``."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

#: events read from the host's journal (see nbhosting_core.events); (source, offset) makes reading idempotent
events = Table(
    "events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("source", String(32), nullable=False),  # the journal file
    Column("offset", Integer, nullable=False),  # the line's byte offset in it
    Column("time", Float, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("course", String(64)),
    Column("student_id", String(128)),
    Column("notebook", String(1024)),
    Column("action", String(16)),
    Column("reason", String(64)),
    Column("duration", Float),
    Column("actor", String(128)),
    Column("data", Text),  # JSON: a sample's figures
    UniqueConstraint("source", "offset"),
    Index(None, "course", "time"),
    Index(None, "student_id", "time"),
    Index(None, "kind", "time"),
)

#: how far each journal file was read
journal_cursor = Table(
    "journal_cursor",
    metadata,
    Column("source", String(32), primary_key=True),
    Column("offset", Integer, nullable=False),
)

#: admins and teachers
staff = Table(
    "staff",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("username", String(64), nullable=False, unique=True),
    Column("password_hash", String(256)),  # argon2id (PHC string); None: cannot log in with a password
    Column("role", String(16), nullable=False),  # admin, teacher
    Column("student_id", String(128)),  # the student id this staff member tries notebooks as (excluded from figures)
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created", Float, nullable=False),
)

#: the courses a teacher teaches
staff_courses = Table(
    "staff_courses",
    metadata,
    Column("staff_id", Integer, ForeignKey("staff.id", ondelete="CASCADE"), primary_key=True),
    Column("course", String(64), primary_key=True),
)

#: API tokens: only their SHA-256 is kept (they are long random strings), with a prefix to tell them apart
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("staff_id", Integer, ForeignKey("staff.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(128), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("role", String(16), nullable=False),  # at most the staff member's role
    Column("created", Float, nullable=False),
    Column("expires", Float),
    Column("last_used", Float),
    Column("revoked", Float),
)

#: staff sessions (the cookie holds a random id; only its SHA-256 is kept)
sessions = Table(
    "sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("staff_id", Integer, ForeignKey("staff.id", ondelete="CASCADE"), nullable=False),
    Column("created", Float, nullable=False),
    Column("expires", Float, nullable=False),
    Column("last_seen", Float, nullable=False),
)

#: failed logins, for rate limiting (by user name and by client address)
login_failures = Table(
    "login_failures",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("key", String(160), nullable=False),  # "user:<name>" or "addr:<address>"
    Column("time", Float, nullable=False),
    Index(None, "key", "time"),
)
