"""Who may do what: every role x permission x (own course, another course, the whole host), as a table."""

import pytest

from nbhosting_core.roles import (
    Permission,
    Principal,
    Role,
    allowed,
    allowed_anywhere,
    capped,
    role_within,
    visible_courses,
)

P = Permission
ADMIN = Principal(staff_id=1, username="ada", role=Role.ADMIN, via="session")
TEACHER = Principal(staff_id=2, username="tom", role=Role.TEACHER, courses=frozenset({"python101"}), via="session")
NO_COURSE_TEACHER = Principal(staff_id=3, username="ned", role=Role.TEACHER, via="token")

# permission: (teacher on their course, teacher on another course, teacher host-wide)
TEACHER_TABLE = {
    P.VIEW_COURSES: (True, False, False),
    P.VIEW_SERVERS: (True, False, False),
    P.ACT_ON_SERVERS: (True, False, False),
    P.VIEW_LOGS: (True, False, False),
    P.VIEW_STUDENTS: (True, False, False),
    P.VIEW_EVENTS: (True, False, False),
    P.VIEW_STATISTICS: (True, False, False),
    P.TRY_NOTEBOOK: (True, False, False),
    P.MANAGE_HOST: (False, False, False),
}


def test_the_table_covers_every_permission():
    assert set(TEACHER_TABLE) == set(Permission)


@pytest.mark.parametrize("permission", list(Permission))
@pytest.mark.parametrize("course", ["python101", "other", None])
def test_an_admin_may_do_everything_everywhere(permission, course):
    assert allowed(ADMIN, permission, course)


@pytest.mark.parametrize("permission", list(Permission))
def test_a_teacher_may_act_on_their_own_course_only_and_on_nothing_host_wide(permission):
    own, other, host = TEACHER_TABLE[permission]
    assert allowed(TEACHER, permission, "python101") is own
    assert allowed(TEACHER, permission, "other") is other
    assert allowed(TEACHER, permission, None) is host


@pytest.mark.parametrize("permission", list(Permission))
@pytest.mark.parametrize("course", ["python101", None])
def test_nobody_may_do_anything(permission, course):
    assert not allowed(None, permission, course)


def test_a_teacher_without_courses_may_do_nothing():
    assert not any(allowed_anywhere(NO_COURSE_TEACHER, p) for p in Permission)


def test_a_listing_shows_a_teacher_their_courses_and_an_admin_all():
    courses = ["a", "python101", "z"]
    assert visible_courses(TEACHER, P.VIEW_SERVERS, courses) == ["python101"]
    assert visible_courses(ADMIN, P.VIEW_SERVERS, courses) == courses
    assert visible_courses(None, P.VIEW_SERVERS, courses) == []
    assert allowed_anywhere(TEACHER, P.VIEW_SERVERS) and not allowed_anywhere(TEACHER, P.MANAGE_HOST)
    assert allowed_anywhere(ADMIN, P.MANAGE_HOST) and not allowed_anywhere(None, P.VIEW_COURSES)


def test_a_tokens_role_is_at_most_its_staff_members():
    assert role_within(Role.TEACHER, Role.ADMIN) and role_within(Role.ADMIN, Role.ADMIN)
    assert not role_within(Role.ADMIN, Role.TEACHER)
    assert capped(Role.ADMIN, Role.TEACHER) is Role.TEACHER
    assert capped(Role.TEACHER, Role.ADMIN) is Role.TEACHER


def test_a_principal_is_frozen():
    with pytest.raises(ValueError):
        TEACHER.role = Role.ADMIN  # type: ignore[misc]
