"""An app with a database and staff, for tests of the admin surface (pages, API, statistics, metrics).

Use the ``admin_app`` fixture (tests/conftest.py), or :func:`make_admin_app` directly::

    def test_a_teacher_sees_their_course_only(admin_app):
        tom = admin_app.session("tom")                        # a TestClient logged in through /admin/login
        assert tom.get("/api/v1/courses/demo/servers").status_code == 200
        assert tom.post("/api/v1/servers/x/stop", headers=tom.write_headers).status_code == 403
        ada = admin_app.bearer("ada")                         # a TestClient sending "Authorization: Bearer nbh_…"
        nobody = admin_app.client                             # no principal at all

What it holds: an in-memory hub (FakeBackend, FakeAccounts) with the course ``demo`` (notebook ``a.ipynb``) and the
test platform of tests/server/platform.py; a SQLite database (migrated) in ``tmp_path``; a
:class:`~nbhosting_core.staff.StaffStore` with tiny argon2 parameters (:data:`FAST_PASSWORDS`) on a
:class:`FakeClock` shared with the hub; and three staff members, every password :data:`PASSWORD`:

* ``ada``: admin;
* ``tom``: teacher of ``demo`` (student id ``staff:tom``);
* ``ned``: teacher of ``other`` (not ``demo``).

The site is ``https://testserver`` (the session cookie is ``__Host-nbh-staff``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.testclient import TestClient

from nbhosting_core import FakeAccounts, FakeBackend, Hub, Settings
from nbhosting_core.db import open_database
from nbhosting_core.db.engine import sqlite_url
from nbhosting_core.roles import Role
from nbhosting_core.staff import StaffStore
from nbhosting_server import create_app
from nbhosting_server.admin.auth import SECURE_COOKIE
from nbhosting_server.admin.csrf import csrf_for
from tests.support import FAST_PASSWORDS, FakeClock

#: every test staff member's password
PASSWORD = "correct horse battery"
#: the site the test clients talk to
SITE = "https://testserver"


class StaffClient(TestClient):
    """A TestClient acting as a staff member; ``write_headers`` make a write through its session pass the CSRF and
    origin checks (a bearer client needs none: they are harmless there)."""

    csrf: str = ""

    @property
    def write_headers(self) -> dict[str, str]:
        """``X-CSRF-Token`` and ``Origin`` of a page of this site."""
        return {"X-CSRF-Token": self.csrf, "Origin": SITE}


@dataclass
class AdminApp:
    """The app, its database and staff store, the shared clock, and clients for each way in."""

    app: Starlette
    store: StaffStore
    engine: Engine
    clock: FakeClock
    hub: Hub
    settings: Settings
    client: TestClient = field(init=False)  # nobody: no cookie, no token

    def __post_init__(self) -> None:
        self.client = TestClient(self.app, base_url=SITE, follow_redirects=False)

    def session(self, username: str, password: str = PASSWORD) -> StaffClient:
        """A new client logged in as ``username`` through the login form (its cookie jar holds the session)."""
        client = StaffClient(self.app, base_url=SITE, follow_redirects=False)
        response = client.post(
            "/admin/login", data={"username": username, "password": password}, headers={"Origin": SITE}
        )
        assert response.status_code == 303, response.text
        client.csrf = csrf_for(self.hub.secret, client.cookies[SECURE_COOKIE])
        return client

    def bearer(self, username: str, role: Role | None = None, **kwargs: Any) -> StaffClient:
        """A new client sending a fresh API token of ``username`` (``role``: at most theirs)."""
        _, token = self.store.create_token(username, f"test-{len(self.store.tokens())}", role=role, **kwargs)
        client = StaffClient(self.app, base_url=SITE, follow_redirects=False)
        client.headers["Authorization"] = f"Bearer {token}"
        return client


def make_admin_app(tmp_path: Path) -> AdminApp:
    """An :class:`AdminApp` in ``tmp_path`` (see the module's docstring)."""
    from tests.server.platform import demo_settings

    settings = demo_settings(tmp_path)
    clock = FakeClock()
    hub = Hub(
        settings,
        backend=FakeBackend(ready_after=1.0, clock=clock),
        accounts=FakeAccounts(settings.students_dir),
        clock=clock,
    )
    engine = open_database(sqlite_url(tmp_path / "nbhosting.sqlite"))
    store = StaffStore(engine, clock=clock, passwords=FAST_PASSWORDS)
    store.add("ada", Role.ADMIN, password=PASSWORD)
    store.add("tom", Role.TEACHER, password=PASSWORD, courses=["demo"], student_id="staff:tom")
    store.add("ned", Role.TEACHER, password=PASSWORD, courses=["other"])
    app = create_app(hub=hub, staff=store)
    return AdminApp(app=app, store=store, engine=engine, clock=clock, hub=hub, settings=settings)
