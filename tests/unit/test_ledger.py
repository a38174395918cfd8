"""The ledger of students' accounts: which uid comes next, and which users may already have lines."""

import os

import pytest

from nbhosting_core.system.ledger import Ledger, next_uid, seen_in
from nbhosting_core.system.userdb import UserDb

RANGE = {"uid_min": 1000, "uid_max": 1999}


def test_the_next_uid_is_the_mark_when_nothing_at_or_above_it_is_taken():
    assert next_uid(1005, None) == 1005
    assert next_uid(1005, 1004) == 1005


def test_ids_taken_by_others_at_or_above_the_mark_are_skipped():
    assert next_uid(1005, 1005) == 1006
    assert next_uid(1005, 1042) == 1043


def test_a_uid_below_the_mark_is_never_given_again_even_once_free():
    # 1000..1004 were given; their students were deleted since: the highest id seen is below the mark
    assert next_uid(1005, 1001) == 1005


def test_only_ids_of_the_range_and_users_of_the_prefix_are_seen():
    text = (
        b"root:x:0:0::/root:/bin/sh\n"
        b"nbh-aa:x:1003:1003::/h:/bin/sh\n"
        b"other:x:1017:1017::/h:/bin/sh\n"  # someone else's user in the range: its uid is taken
        b"nbh-bb:x:5000:5000::/h:/bin/sh\n"  # of the prefix, outside the range
        b"broken line\n"
    )
    seen = seen_in(text, prefix="nbh-", **RANGE)
    assert seen.top == 1017
    assert seen.users == {"nbh-aa": 1003, "nbh-bb": 5000}


@pytest.fixture
def env(tmp_path):
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (etc / "group").write_text("root:x:0:\n")
    with Ledger(tmp_path / "ledger.sqlite", prefix="nbh-", **RANGE) as ledger:
        yield UserDb(etc), ledger


def reopened(ledger: Ledger) -> Ledger:
    return Ledger(ledger.path, prefix="nbh-", **RANGE)


def test_a_fresh_ledger_starts_above_whatever_the_databases_hold_in_the_range(env):
    db, ledger = env
    db.append("passwd", "old:x:1010:1010::/h:/bin/sh")
    assert ledger.catch_up(db) == 1011


def test_users_of_the_prefix_made_elsewhere_are_entered_and_their_ids_skipped(env):
    db, ledger = env
    assert ledger.catch_up(db) == 1000
    ledger.enter("nbh-mine", 1000)
    db.append("passwd", "nbh-mine:x:1000:1000::/h:/bin/sh")
    ledger.commit(db, 1001)
    # another installation (or useradd) adds its users meanwhile
    db.append("group", "nbh-theirs:x:1001:")
    db.append("passwd", "nbh-theirs:x:1001:1001::/h:/bin/sh")
    assert not ledger.knows("nbh-theirs")
    with reopened(ledger) as again:
        assert again.catch_up(db) == 1002
        assert again.knows("nbh-theirs") and again.knows("nbh-mine") and not again.knows("nbh-new")


def test_the_mark_survives_the_students_deletion(env):
    db, ledger = env
    ledger.catch_up(db)
    db.append("passwd", "nbh-gone:x:1000:1000::/h:/bin/sh")
    ledger.commit(db, 1001)
    db.path("passwd").write_text("root:x:0:0::/root:/bin/sh\n")  # userdel nbh-gone
    with reopened(ledger) as again:
        assert again.catch_up(db) == 1001


def test_a_lost_ledger_is_rebuilt_from_the_databases(env, tmp_path):
    db, ledger = env
    ledger.catch_up(db)
    db.append("passwd", "nbh-a:x:1000:1000::/h:/bin/sh")
    ledger.commit(db, 1001)
    with Ledger(tmp_path / "new.sqlite", prefix="nbh-", **RANGE) as fresh:
        assert fresh.catch_up(db) == 1001 and fresh.knows("nbh-a")


def test_the_ledger_is_root_only(env):
    _, ledger = env
    assert os.stat(ledger.path).st_mode & 0o777 == 0o600
