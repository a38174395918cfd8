"""Who may do what on the admin surface: roles, permissions, the principal of a request, and the decision (pure).

Two roles. An **admin** may do everything. A **teacher** may act on their own courses only: see them, their
students, servers, logs, events and statistics, stop or restart those servers, and try a notebook as a student;
nothing host-wide (every course at once, metrics, staff). Anybody else (no principal) may do nothing.

A permission is asked either of one course (``course="python101"``) or of the whole host (``course=None``: every
course at once, or something that belongs to no course). A listing for a teacher is therefore built with
:func:`visible_courses` (the courses of a listing this principal may see), after :func:`allowed_anywhere`.

Nothing here touches a database or a request: :mod:`nbhosting_core.staff` makes principals,
``nbhosting_server.admin.auth`` asks :func:`allowed` on every route.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict


class Role(StrEnum):
    """A staff member's role (stored as its value)."""

    ADMIN = "admin"
    TEACHER = "teacher"


#: how much each role may: a token's role is at most its staff member's (see :func:`role_within`)
_RANK = {Role.TEACHER: 1, Role.ADMIN: 2}


class Permission(StrEnum):
    """What a route may ask of a principal."""

    VIEW_COURSES = "view-courses"  # a course's settings, commit, notebooks
    VIEW_SERVERS = "view-servers"  # its students' servers: state, age, idle time, memory, image
    ACT_ON_SERVERS = "act-on-servers"  # stop, restart
    VIEW_LOGS = "view-logs"  # a server's logs
    VIEW_STUDENTS = "view-students"  # its students, their workspaces
    VIEW_EVENTS = "view-events"  # opens, stops, culls, failures
    VIEW_STATISTICS = "view-statistics"  # the statistics page and its figures
    TRY_NOTEBOOK = "try-notebook"  # open a notebook as a student (the staff member's own student id)
    MANAGE_HOST = "manage-host"  # host-wide: metrics, staff and tokens, the host's own state


#: what a teacher may do, on their own courses only
TEACHER_PERMISSIONS = frozenset(
    {
        Permission.VIEW_COURSES,
        Permission.VIEW_SERVERS,
        Permission.ACT_ON_SERVERS,
        Permission.VIEW_LOGS,
        Permission.VIEW_STUDENTS,
        Permission.VIEW_EVENTS,
        Permission.VIEW_STATISTICS,
        Permission.TRY_NOTEBOOK,
    }
)


class Principal(BaseModel):
    """Who a request acts for: a staff member, through a session (the admin pages) or an API token.

    ``role`` is the session's staff member's role, or a token's (at most its staff member's); ``courses`` are the
    courses the staff member teaches (an admin's may be empty: an admin needs none); ``student_id`` is the id the
    staff member tries notebooks as (None: not set).
    """

    model_config = ConfigDict(frozen=True)

    staff_id: int
    username: str
    role: Role
    courses: frozenset[str] = frozenset()
    via: Literal["session", "token"]
    student_id: str | None = None


def allowed(principal: Principal | None, permission: Permission, course: str | None = None) -> bool:
    """Whether ``principal`` may ``permission`` on ``course`` (None: on the whole host, every course at once).

    Admin: everything. Teacher: :data:`TEACHER_PERMISSIONS` on a course of theirs, nothing host-wide.
    No principal: nothing.
    """
    if principal is None:
        return False
    if principal.role is Role.ADMIN:
        return True
    if principal.role is Role.TEACHER:
        return permission in TEACHER_PERMISSIONS and course is not None and course in principal.courses
    return False


def allowed_anywhere(principal: Principal | None, permission: Permission) -> bool:
    """Whether ``principal`` may ``permission`` on at least one course or the host (may it ask for a listing)."""
    if principal is None:
        return False
    return allowed(principal, permission) or any(allowed(principal, permission, c) for c in principal.courses)


def visible_courses(principal: Principal | None, permission: Permission, courses: Iterable[str]) -> list[str]:
    """The courses of ``courses`` on which ``principal`` may ``permission``, in their order."""
    return [course for course in courses if allowed(principal, permission, course)]


def role_within(role: Role, ceiling: Role) -> bool:
    """Whether ``role`` grants no more than ``ceiling`` (a token's role against its staff member's)."""
    return _RANK[role] <= _RANK[ceiling]


def capped(role: Role, ceiling: Role) -> Role:
    """The lesser of two roles (a token made as an admin's, its staff member since made a teacher)."""
    return role if role_within(role, ceiling) else ceiling
