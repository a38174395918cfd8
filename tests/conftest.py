import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _no_stale_test_students():
    """Remove test students left by an interrupted earlier run (their folders are gone)."""
    if os.geteuid() == 0:
        from tests.support import remove_test_users

        remove_test_users(None)


@pytest.fixture
def admin_app(tmp_path):
    """An app with a database and staff (ada: admin, tom: teacher of demo, ned: teacher of other), and clients
    for each way in: ``admin_app.session("tom")``, ``admin_app.bearer("ada")``, ``admin_app.client`` (nobody).
    See tests/admin_app.py."""
    from tests.admin_app import make_admin_app

    return make_admin_app(tmp_path)
