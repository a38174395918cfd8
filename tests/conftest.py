import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _no_leftover_test_students():
    """Remove test students left by an interrupted earlier run, and those of this run at the end."""
    if os.geteuid() == 0:
        from tests.support import remove_test_users

        remove_test_users()
    yield
    if os.geteuid() == 0:
        from tests.support import remove_test_users

        remove_test_users()
