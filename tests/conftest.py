import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _no_stale_test_students():
    """Remove test students left by an interrupted earlier run (their folders are gone)."""
    if os.geteuid() == 0:
        from tests.support import remove_test_users

        remove_test_users(None)
