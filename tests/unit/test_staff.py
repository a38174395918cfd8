"""Staff accounts: argon2id passwords, logins rate-limited in the database, sessions, API tokens hashed at rest."""

import pytest
from sqlalchemy import select

from nbhosting_core.db import open_database
from nbhosting_core.db.engine import sqlite_url
from nbhosting_core.db.schema import api_tokens, login_failures, sessions, staff
from nbhosting_core.errors import InvalidInput, LoginThrottled, NotFound
from nbhosting_core.passwords import Passwords
from nbhosting_core.roles import Role
from nbhosting_core.staff import (
    ADDRESS_FAILURES,
    FAILURE_WINDOW,
    SESSION_IDLE,
    SESSION_MAX,
    TOKEN_PREFIX,
    USER_FAILURES,
    StaffStore,
)
from tests.support import FAST_PASSWORDS, FakeClock

PASSWORD = "correct horse battery"


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def store(tmp_path, clock):
    store = StaffStore(open_database(sqlite_url(tmp_path / "db.sqlite")), clock=clock, passwords=FAST_PASSWORDS)
    store.add("ada", Role.ADMIN, password=PASSWORD)
    store.add("tom", Role.TEACHER, password=PASSWORD, courses=["python101", "data"], student_id="staff:tom")
    return store


def column(store, table, name):
    with store.engine.connect() as c:
        return list(c.execute(select(table.c[name])).scalars())


# ------------------------------------------------------------------------------------------------ accounts


def test_staff_are_listed_with_their_role_and_courses_never_their_hash(store):
    ada, tom = store.members()
    assert (ada.username, ada.role, ada.courses) == ("ada", Role.ADMIN, ())
    assert (tom.role, tom.courses, tom.student_id, tom.has_password) == (
        Role.TEACHER,
        ("data", "python101"),
        "staff:tom",
        True,
    )
    assert "password" not in tom.model_dump() and "hash" not in str(tom.model_dump())


def test_a_name_is_taken_once_and_bad_input_is_refused(store):
    with pytest.raises(InvalidInput, match="already"):
        store.add("ada", Role.TEACHER)
    with pytest.raises(InvalidInput, match="Invalid user name"):
        store.add("../x", Role.TEACHER)
    with pytest.raises(InvalidInput, match="course"):
        store.add("bob", Role.TEACHER, courses=["bad..course"])
    with pytest.raises(InvalidInput, match="at least"):
        store.add("bob", Role.TEACHER, password="short")
    with pytest.raises(NotFound):
        store.set_password("nobody", PASSWORD)
    assert [m.username for m in store.members()] == ["ada", "tom"]


def test_passwords_are_stored_as_argon2id_and_remade_when_the_parameters_change(store, tmp_path, clock):
    (ada_hash, *_) = column(store, staff, "password_hash")
    assert ada_hash.startswith("$argon2id$") and PASSWORD not in ada_hash
    stronger = StaffStore(store.engine, clock=clock, passwords=Passwords(time_cost=2, memory_cost=16, parallelism=1))
    assert stronger.authenticate("ada", PASSWORD, "10.0.0.1") is not None
    (remade, *_) = column(store, staff, "password_hash")
    assert remade != ada_hash and "t=2" in remade
    assert stronger.authenticate("ada", PASSWORD, "10.0.0.1") is not None


def test_courses_are_replaced_and_a_role_changed(store):
    assert store.set_courses("tom", ["physics"]).courses == ("physics",)
    assert store.update("tom", role=Role.ADMIN).role is Role.ADMIN


# -------------------------------------------------------------------------------------------------- logins


def test_a_right_password_gives_a_session_principal_and_a_wrong_one_nothing(store):
    principal = store.authenticate("tom", PASSWORD, "10.0.0.1")
    assert principal is not None
    assert (principal.username, principal.role, principal.via) == ("tom", Role.TEACHER, "session")
    assert principal.courses == {"python101", "data"} and principal.student_id == "staff:tom"
    assert store.authenticate("tom", "wrong password!", "10.0.0.1") is None
    assert store.authenticate("nobody", PASSWORD, "10.0.0.1") is None


def test_a_disabled_or_passwordless_staff_member_cannot_log_in(store):
    store.set_disabled("tom", True)
    assert store.authenticate("tom", PASSWORD, "10.0.0.1") is None
    store.set_disabled("tom", False)
    assert store.authenticate("tom", PASSWORD, "10.0.0.1") is not None
    store.add("nopass", Role.TEACHER)
    assert store.authenticate("nopass", "", "10.0.0.1") is None


def test_failures_per_user_name_are_limited_then_forgotten_after_the_window(store, clock):
    for _ in range(USER_FAILURES):
        assert store.authenticate("tom", "wrong password!", f"10.0.0.{_}") is None
    with pytest.raises(LoginThrottled) as refused:
        store.authenticate("tom", PASSWORD, "10.9.9.9")  # even the right password: not checked
    assert 0 < refused.value.retry_after <= FAILURE_WINDOW and refused.value.why.startswith("user")
    assert store.authenticate("ada", PASSWORD, "10.9.9.9") is not None  # another user is not held back
    clock.now += FAILURE_WINDOW + 1
    assert store.authenticate("tom", PASSWORD, "10.9.9.9") is not None


def test_failures_per_address_are_limited_whatever_the_user_names(store, clock):
    for i in range(ADDRESS_FAILURES):
        store.authenticate(f"guess{i}", "wrong password!", "10.6.6.6")
    with pytest.raises(LoginThrottled) as refused:
        store.authenticate("ada", PASSWORD, "10.6.6.6")
    assert refused.value.why.startswith("address")
    assert store.authenticate("ada", PASSWORD, "10.0.0.2") is not None


def test_a_success_clears_the_user_names_failures_and_old_ones_are_pruned(store, clock):
    for _ in range(USER_FAILURES - 1):
        store.authenticate("tom", "wrong password!", "10.0.0.1")
    assert store.authenticate("tom", PASSWORD, "10.0.0.1") is not None
    assert not [k for k in column(store, login_failures, "key") if k.startswith("user:tom")]
    clock.now += FAILURE_WINDOW + 1
    store.authenticate("x", "wrong password!", "10.0.0.3")  # a failure prunes what is past the window
    assert sorted(column(store, login_failures, "key")) == ["addr:10.0.0.3", "user:x"]


def test_several_workers_share_the_counts(store, clock):
    other_worker = StaffStore(store.engine, clock=clock, passwords=FAST_PASSWORDS)
    for i in range(USER_FAILURES):
        (store if i % 2 else other_worker).authenticate("tom", "wrong password!", "10.0.0.1")
    with pytest.raises(LoginThrottled):
        other_worker.authenticate("tom", PASSWORD, "10.0.0.1")


# ------------------------------------------------------------------------------------------------ sessions


def login(store, name="tom"):
    principal = store.authenticate(name, PASSWORD, "10.0.0.1")
    return store.create_session(principal.staff_id)


def test_a_session_is_random_and_only_its_hash_is_stored(store):
    token = login(store)
    assert len(token) >= 43 and token not in column(store, sessions, "id_hash")
    assert store.session_principal(token).username == "tom"
    assert store.session_principal("forged") is None and store.session_principal("") is None


def test_a_session_ends_after_idling_or_its_maximum_age(store, clock):
    token = login(store)
    clock.now += SESSION_IDLE - 10
    assert store.session_principal(token) is not None  # used: its idle time starts again
    clock.now += SESSION_IDLE - 10
    assert store.session_principal(token) is not None
    clock.now += SESSION_IDLE + 1
    assert store.session_principal(token) is None
    token = login(store)
    for _ in range(int(SESSION_MAX // 3600)):
        clock.now += 3600
        principal = store.session_principal(token)
    assert principal is None  # used every hour, but a day old


def test_a_logout_a_password_change_or_disabling_end_sessions(store):
    token = login(store)
    store.end_session(token)
    assert store.session_principal(token) is None
    token, other = login(store), login(store, "ada")
    store.set_password("tom", "a new password!")
    assert store.session_principal(token) is None and store.session_principal(other) is not None
    token = store.create_session(store.get("tom").id)
    store.set_disabled("tom", True)
    assert store.session_principal(token) is None


def test_a_session_sees_a_role_or_courses_changed_at_once(store):
    token = login(store)
    store.set_courses("tom", ["physics"])
    assert store.session_principal(token).courses == {"physics"}


# ---------------------------------------------------------------------------------------------- API tokens


def test_a_token_is_shown_once_and_stored_hashed(store):
    info, token = store.create_token("tom", "ci")
    assert token.startswith(TOKEN_PREFIX) and len(token) > 40
    assert info.shown == token[: len(info.shown)] and info.role is Role.TEACHER
    assert token not in column(store, api_tokens, "token_hash") and token not in column(store, api_tokens, "prefix")
    principal = store.token_principal(token)
    assert (principal.username, principal.via, principal.role) == ("tom", "token", Role.TEACHER)
    assert store.token_principal(token[:-1] + "x") is None and store.token_principal("Bearer x") is None


def test_a_tokens_role_is_capped_at_its_staff_members(store):
    with pytest.raises(InvalidInput, match="at most"):
        store.create_token("tom", "escalate", role=Role.ADMIN)
    _, token = store.create_token("ada", "reader", role=Role.TEACHER)
    assert store.token_principal(token).role is Role.TEACHER
    _, admin_token = store.create_token("ada", "admin")
    store.update("ada", role=Role.TEACHER)  # demoted: the token follows
    assert store.token_principal(admin_token).role is Role.TEACHER


def test_revoked_expired_or_disabled_tokens_are_refused(store, clock):
    info, token = store.create_token("tom", "ci")
    store.revoke_token(info.id)
    assert store.token_principal(token) is None
    assert store.tokens()[0].revoked is not None
    _, token = store.create_token("tom", "short", expires=clock.now + 60)
    assert store.token_principal(token) is not None
    clock.now += 61
    assert store.token_principal(token) is None
    _, token = store.create_token("tom", "third")
    store.set_disabled("tom", True)
    assert store.token_principal(token) is None
    with pytest.raises(NotFound):
        store.revoke_token(999)
    with pytest.raises(InvalidInput):
        store.create_token("ada", "past", expires=clock.now - 1)


def test_a_tokens_use_is_noted_at_most_once_a_minute(store, clock):
    info, token = store.create_token("tom", "ci")
    store.token_principal(token)
    first = store.tokens()[0].last_used
    clock.now += 30
    store.token_principal(token)
    assert store.tokens()[0].last_used == first
    clock.now += 31
    store.token_principal(token)
    assert store.tokens()[0].last_used == clock.now


def test_removing_a_staff_member_removes_their_sessions_and_tokens(store):
    session = login(store)
    _, token = store.create_token("tom", "ci")
    store.remove("tom")
    assert store.session_principal(session) is None and store.token_principal(token) is None
    assert store.tokens() == []


def test_no_secret_is_logged(store, caplog):
    caplog.set_level("DEBUG")
    session = login(store)
    _, token = store.create_token("tom", "ci")
    store.token_principal(token)
    store.session_principal(session)
    store.authenticate("tom", "a wrong password", "10.0.0.1")
    for secret in (PASSWORD, session, token, "a wrong password"):
        assert secret not in caplog.text
