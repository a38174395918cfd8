"""Staff accounts, their logins, sessions and API tokens, in the app's database (see :mod:`nbhosting_core.db`).

* **Accounts**: a user name, a role (:class:`~nbhosting_core.roles.Role`), the courses a teacher teaches, the
  student id they try notebooks as, an argon2id password (:mod:`nbhosting_core.passwords`), and a disabled flag.
* **Logins** (:meth:`StaffStore.authenticate`) are rate-limited in the database, so that every app worker counts
  the same failures: at most :data:`USER_FAILURES` per user name and :data:`ADDRESS_FAILURES` per client address
  within :data:`FAILURE_WINDOW`. An unknown user costs the same hash check as a known one.
* **Sessions**: the browser holds 32 random bytes; the database only their SHA-256. A session ends after
  :data:`SESSION_IDLE` without use or :data:`SESSION_MAX` after the login, and every session of a staff member
  ends when their password changes, they are disabled or removed.
* **API tokens**: ``nbh_`` + 32 random bytes, shown once; the database keeps their SHA-256 (they are high-entropy:
  no slow hash needed) and their first characters to tell them apart. A token's role is at most its staff
  member's, now and later.

Every decision is logged (who, what, how long it took), never a password, a session or a token.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, Engine, and_, delete, func, insert, or_, select, update

from .clock import Clock
from .db.schema import api_tokens, login_failures, sessions, staff, staff_courses
from .errors import InvalidInput, LoginThrottled, NotFound
from .naming import validate_course, validate_staff_name, validate_student_id
from .passwords import Passwords
from .roles import Principal, Role, capped, role_within

log = logging.getLogger(__name__)

#: failed logins counted over this many seconds
FAILURE_WINDOW = 15 * 60.0
#: failed logins per user name within the window before logins as that name are refused
USER_FAILURES = 5
#: failed logins per client address within the window before logins from it are refused
ADDRESS_FAILURES = 20
#: a session unused this long ends (seconds)
SESSION_IDLE = 8 * 3600.0
#: a session ends this long after its login, whatever its use (seconds)
SESSION_MAX = 24 * 3600.0
#: a session's or a token's last use is written at most this often (seconds): a request is not a write
TOUCH_EVERY = 60.0
#: what every API token starts with (recognisable in a leaked file, a log, a secret scanner's rules)
TOKEN_PREFIX = "nbh_"  # noqa: S105 - a prefix, not a secret
#: characters of a token kept in clear to tell tokens apart (the prefix + 8)
SHOWN_CHARS = len(TOKEN_PREFIX) + 8


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class StaffMember(BaseModel):
    """A staff account as listed (never its password hash)."""

    model_config = ConfigDict(frozen=True)

    id: int
    username: str
    role: Role
    courses: tuple[str, ...]
    student_id: str | None
    disabled: bool
    has_password: bool
    created: float


class TokenInfo(BaseModel):
    """An API token as listed: its first characters (``shown``), never the token."""

    model_config = ConfigDict(frozen=True)

    id: int
    username: str
    name: str
    shown: str
    role: Role
    created: float
    expires: float | None
    last_used: float | None
    revoked: float | None


class StaffStore:
    """Staff accounts, logins, sessions and API tokens on ``engine`` (the app's database, migrated).

    Args:
        engine: the app's database (:func:`nbhosting_core.db.open_database`).
        clock: epoch seconds (a fake in tests).
        passwords: the password hasher (tests pass tiny argon2 parameters).
    """

    def __init__(self, engine: Engine, *, clock: Clock = time.time, passwords: Passwords | None = None) -> None:
        self.engine = engine
        self.clock = clock
        self.passwords = passwords or Passwords()

    # ------------------------------------------------------------------------------------------------ accounts

    def add(
        self,
        username: str,
        role: Role,
        *,
        password: str | None = None,
        courses: Iterable[str] = (),
        student_id: str | None = None,
    ) -> StaffMember:
        """Add a staff member. Raises InvalidInput (a bad name, course, student id or password; the name taken)."""
        validate_staff_name(username)
        course_list = sorted({validate_course(c) for c in courses})
        if student_id is not None:
            validate_student_id(student_id)
        password_hash = self.passwords.hash(password) if password is not None else None
        with self.engine.begin() as c:
            if c.execute(select(staff.c.id).where(staff.c.username == username)).first() is not None:
                raise InvalidInput(f"There is already a staff member {username!r}.")
            staff_id = c.execute(
                insert(staff)
                .values(
                    username=username,
                    password_hash=password_hash,
                    role=Role(role).value,
                    student_id=student_id,
                    disabled=False,
                    created=self.clock(),
                )
                .returning(staff.c.id)
            ).scalar_one()
            if course_list:
                c.execute(insert(staff_courses), [{"staff_id": staff_id, "course": x} for x in course_list])
        log.info("staff %s added (%s, courses %s)", username, Role(role).value, ",".join(course_list) or "-")
        return self.get(username)

    def get(self, username: str) -> StaffMember:
        """One staff member. Raises NotFound."""
        found = [m for m in self.members() if m.username == username]
        if not found:
            raise NotFound(f"There is no staff member {username[:80]!r}.")
        return found[0]

    def members(self) -> list[StaffMember]:
        """Every staff member, by user name."""
        with self.engine.connect() as c:
            courses: dict[int, list[str]] = {}
            for staff_id, course in c.execute(select(staff_courses.c.staff_id, staff_courses.c.course)):
                courses.setdefault(staff_id, []).append(course)
            rows = c.execute(select(staff).order_by(staff.c.username)).mappings().all()
        return [
            StaffMember(
                id=r["id"],
                username=r["username"],
                role=Role(r["role"]),
                courses=tuple(sorted(courses.get(r["id"], []))),
                student_id=r["student_id"],
                disabled=r["disabled"],
                has_password=r["password_hash"] is not None,
                created=r["created"],
            )
            for r in rows
        ]

    def update(self, username: str, *, role: Role | None = None, student_id: str | None = None) -> StaffMember:
        """Change a staff member's role or student id. Raises NotFound, InvalidInput."""
        values: dict[str, Any] = {}
        if role is not None:
            values["role"] = Role(role).value
        if student_id is not None:
            values["student_id"] = validate_student_id(student_id)
        if values:
            self._update(username, values)
            log.info("staff %s updated: %s", username, ", ".join(f"{k}={v}" for k, v in values.items()))
        return self.get(username)

    def set_courses(self, username: str, courses: Iterable[str]) -> StaffMember:
        """Make ``courses`` the courses ``username`` teaches (replacing theirs). Raises NotFound, InvalidInput."""
        course_list = sorted({validate_course(c) for c in courses})
        with self.engine.begin() as c:
            staff_id = self._id(c, username)
            c.execute(delete(staff_courses).where(staff_courses.c.staff_id == staff_id))
            if course_list:
                c.execute(insert(staff_courses), [{"staff_id": staff_id, "course": x} for x in course_list])
        log.info("staff %s now teaches %s", username, ",".join(course_list) or "nothing")
        return self.get(username)

    def set_password(self, username: str, password: str) -> None:
        """Set ``username``'s password; every session of theirs ends. Raises NotFound, InvalidInput."""
        self._update(username, {"password_hash": self.passwords.hash(password)}, end_sessions=True)
        log.info("staff %s: password changed, their sessions ended", username)

    def set_disabled(self, username: str, disabled: bool) -> None:
        """Disable (no login, no session, no token works) or enable ``username``. Raises NotFound."""
        self._update(username, {"disabled": disabled}, end_sessions=disabled)
        log.info("staff %s %s", username, "disabled, their sessions ended" if disabled else "enabled")

    def remove(self, username: str) -> None:
        """Remove ``username``, their courses, sessions and tokens. Raises NotFound."""
        with self.engine.begin() as c:
            staff_id = self._id(c, username)
            for table in (sessions, api_tokens, staff_courses):  # not only by cascade: SQLite may run without it
                c.execute(delete(table).where(table.c.staff_id == staff_id))
            c.execute(delete(staff).where(staff.c.id == staff_id))
        log.info("staff %s removed, with their sessions and tokens", username)

    def _id(self, c: Connection, username: str) -> int:
        staff_id = c.execute(select(staff.c.id).where(staff.c.username == username)).scalar()
        if staff_id is None:
            raise NotFound(f"There is no staff member {username[:80]!r}.")
        return int(staff_id)

    def _update(self, username: str, values: dict[str, Any], *, end_sessions: bool = False) -> None:
        with self.engine.begin() as c:
            staff_id = self._id(c, username)
            c.execute(update(staff).where(staff.c.id == staff_id).values(**values))
            if end_sessions:
                c.execute(delete(sessions).where(sessions.c.staff_id == staff_id))

    # -------------------------------------------------------------------------------------------------- logins

    def authenticate(self, username: str, password: str, client_address: str) -> Principal | None:
        """The principal of a right user name and password (``via="session"``); None for a wrong pair, an unknown
        or disabled user, or one without a password (the same answer: no user enumeration).

        A password hash made with other parameters is replaced. Raises LoginThrottled (nothing checked) when
        the user name or the address failed too often lately; every failure counts for both.
        """
        started = time.monotonic()
        now = self.clock()
        user_key, address_key = f"user:{username[:64]}", f"addr:{client_address[:128]}"
        with self.engine.connect() as c:
            self._throttle(c, user_key, USER_FAILURES, now, "user")
            self._throttle(c, address_key, ADDRESS_FAILURES, now, "address")
            row = c.execute(select(staff).where(staff.c.username == username)).mappings().first()
        ok = self.passwords.verify(row["password_hash"] if row is not None else None, password)
        if row is None or not ok or row["disabled"]:
            with self.engine.begin() as c:
                c.execute(delete(login_failures).where(login_failures.c.time < now - FAILURE_WINDOW))
                c.execute(insert(login_failures), [{"key": user_key, "time": now}, {"key": address_key, "time": now}])
            why = "unknown user" if row is None else "disabled" if ok else "wrong password"
            log.info(
                "login refused: %r from %s (%s) in %.3fs",
                username[:64],
                client_address,
                why,
                time.monotonic() - started,
            )
            return None
        if self.passwords.needs_rehash(row["password_hash"]):
            with self.engine.begin() as c:
                c.execute(
                    update(staff).where(staff.c.id == row["id"]).values(password_hash=self.passwords.hash(password))
                )
            log.info("staff %s: password hash remade with the current parameters", username)
        with self.engine.begin() as c:
            c.execute(delete(login_failures).where(login_failures.c.key == user_key))
        log.info("login of %s from %s in %.3fs", username, client_address, time.monotonic() - started)
        return self._principal(row["id"], "session")

    def _throttle(self, c: Connection, key: str, limit: int, now: float, why: str) -> None:
        times = c.execute(
            select(func.count(), func.min(login_failures.c.time)).where(
                login_failures.c.key == key, login_failures.c.time >= now - FAILURE_WINDOW
            )
        ).one()
        if times[0] >= limit:
            retry_after = max(1.0, times[1] + FAILURE_WINDOW - now)
            log.warning("login refused unchecked: %s failed %d times within %.0fs", key, times[0], FAILURE_WINDOW)
            raise LoginThrottled(
                "Too many failed logins: try again later.", retry_after=retry_after, why=f"{why}:{key}"
            )

    def _principal(self, staff_id: int, via: str, role: Role | None = None) -> Principal | None:
        with self.engine.connect() as c:
            row = c.execute(select(staff).where(staff.c.id == staff_id)).mappings().first()
            courses = c.execute(select(staff_courses.c.course).where(staff_courses.c.staff_id == staff_id)).scalars()
            course_set = frozenset(courses)
        if row is None or row["disabled"]:
            return None
        own = Role(row["role"])
        return Principal(
            staff_id=staff_id,
            username=row["username"],
            role=capped(role, own) if role is not None else own,
            courses=course_set,
            via="session" if via == "session" else "token",
            student_id=row["student_id"],
        )

    # ------------------------------------------------------------------------------------------------ sessions

    def create_session(self, staff_id: int) -> str:
        """A new session of ``staff_id``: its token (for the cookie; only its SHA-256 is stored)."""
        token = secrets.token_urlsafe(32)
        now = self.clock()
        with self.engine.begin() as c:
            c.execute(delete(sessions).where(or_(sessions.c.expires < now, sessions.c.last_seen < now - SESSION_IDLE)))
            c.execute(
                insert(sessions).values(
                    id_hash=_digest(token), staff_id=staff_id, created=now, expires=now + SESSION_MAX, last_seen=now
                )
            )
        log.info("session started for staff id %d", staff_id)
        return token

    def session_principal(self, token: str) -> Principal | None:
        """The principal of a live session (``via="session"``); None for an unknown, expired or ended session, or a
        disabled staff member. A use is noted (at most every :data:`TOUCH_EVERY` seconds)."""
        if not token or len(token) > 128:
            return None
        started = time.monotonic()
        now = self.clock()
        id_hash = _digest(token)
        with self.engine.connect() as c:
            row = c.execute(select(sessions).where(sessions.c.id_hash == id_hash)).mappings().first()
        if row is None:
            log.info("session refused: unknown")
            return None
        if row["expires"] <= now or row["last_seen"] + SESSION_IDLE <= now:
            self._end(id_hash)
            log.info("session of staff id %d refused: expired", row["staff_id"])
            return None
        principal = self._principal(row["staff_id"], "session")
        if principal is None:
            log.info("session of staff id %d refused: staff disabled or removed", row["staff_id"])
            return None
        if now - row["last_seen"] >= TOUCH_EVERY:
            with self.engine.begin() as c:
                c.execute(update(sessions).where(sessions.c.id_hash == id_hash).values(last_seen=now))
        log.debug("session of %s accepted in %.3fs", principal.username, time.monotonic() - started)
        return principal

    def end_session(self, token: str) -> None:
        """End the session of ``token`` (a logout); nothing if there is none."""
        self._end(_digest(token))
        log.info("session ended (logout)")

    def _end(self, id_hash: str) -> None:
        with self.engine.begin() as c:
            c.execute(delete(sessions).where(sessions.c.id_hash == id_hash))

    # ---------------------------------------------------------------------------------------------- API tokens

    def create_token(
        self, username: str, name: str, *, role: Role | None = None, expires: float | None = None
    ) -> tuple[TokenInfo, str]:
        """A new API token of ``username`` named ``name``, with ``role`` (default theirs; at most theirs) until
        ``expires`` (epoch s; None: until revoked). Returns its listing and the token itself, to show once.

        Raises NotFound, InvalidInput (a role above theirs, an empty or long name, an expiry in the past).
        """
        if not name or len(name) > 128 or not name.isprintable():
            raise InvalidInput("A token's name is 1 to 128 printable characters.")
        member = self.get(username)
        role = Role(role) if role is not None else member.role
        if not role_within(role, member.role):
            raise InvalidInput(f"A token of {username} has at most their role ({member.role.value}).")
        now = self.clock()
        if expires is not None and expires <= now:
            raise InvalidInput("A token's expiry is in the future.")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with self.engine.begin() as c:
            token_id = c.execute(
                insert(api_tokens)
                .values(
                    staff_id=member.id,
                    name=name,
                    token_hash=_digest(token),
                    prefix=token[:SHOWN_CHARS],
                    role=role.value,
                    created=now,
                    expires=expires,
                )
                .returning(api_tokens.c.id)
            ).scalar_one()
        log.info("token %d (%s) created for %s as %s, expires %s", token_id, name, username, role.value, expires)
        return self._token_info(int(token_id)), token

    def tokens(self, username: str | None = None) -> list[TokenInfo]:
        """Every API token (of ``username`` only, if given), revoked and expired ones too, oldest first."""
        query = select(api_tokens, staff.c.username).join(staff, staff.c.id == api_tokens.c.staff_id)
        if username is not None:
            query = query.where(staff.c.username == username)
        with self.engine.connect() as c:
            rows = c.execute(query.order_by(api_tokens.c.id)).mappings().all()
        return [
            TokenInfo(
                id=r["id"],
                username=r["username"],
                name=r["name"],
                shown=r["prefix"],
                role=Role(r["role"]),
                created=r["created"],
                expires=r["expires"],
                last_used=r["last_used"],
                revoked=r["revoked"],
            )
            for r in rows
        ]

    def _token_info(self, token_id: int) -> TokenInfo:
        found = [t for t in self.tokens() if t.id == token_id]
        if not found:
            raise NotFound(f"There is no API token {token_id}.")
        return found[0]

    def revoke_token(self, token_id: int) -> TokenInfo:
        """Revoke token ``token_id`` (it works no more; kept listed). Idempotent. Raises NotFound."""
        with self.engine.begin() as c:
            c.execute(
                update(api_tokens)
                .where(and_(api_tokens.c.id == token_id, api_tokens.c.revoked.is_(None)))
                .values(revoked=self.clock())
            )
        info = self._token_info(token_id)
        log.info("token %d (%s of %s) revoked", token_id, info.name, info.username)
        return info

    def token_principal(self, token: str) -> Principal | None:
        """The principal of a live API token (``via="token"``, its role capped at its staff member's); None for
        an unknown, revoked or expired token, or a disabled staff member. A use is noted (at most every
        :data:`TOUCH_EVERY` seconds)."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > 128:
            log.info("token refused: not an nbhosting token")
            return None
        started = time.monotonic()
        now = self.clock()
        with self.engine.connect() as c:
            row = c.execute(select(api_tokens).where(api_tokens.c.token_hash == _digest(token))).mappings().first()
        if row is None:
            log.info("token refused: unknown")
            return None
        if row["revoked"] is not None or (row["expires"] is not None and row["expires"] <= now):
            log.info("token %d refused: %s", row["id"], "revoked" if row["revoked"] is not None else "expired")
            return None
        principal = self._principal(row["staff_id"], "token", Role(row["role"]))
        if principal is None:
            log.info("token %d refused: staff disabled or removed", row["id"])
            return None
        if row["last_used"] is None or now - row["last_used"] >= TOUCH_EVERY:
            with self.engine.begin() as c:
                c.execute(update(api_tokens).where(api_tokens.c.id == row["id"]).values(last_used=now))
        log.debug(
            "token %d of %s accepted as %s in %.3fs",
            row["id"],
            principal.username,
            principal.role.value,
            time.monotonic() - started,
        )
        return principal
