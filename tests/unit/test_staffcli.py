"""`nbh staff` and `nbh token`: passwords never in arguments, tokens shown once, tables and JSON."""

import argparse
import io
import json

import pytest

from nbhosting_core import NbhostingError, Settings
from nbhosting_core.db import open_database
from nbhosting_core.db.engine import sqlite_url
from nbhosting_core.staff import StaffStore
from nbhosting_server import cli, staffcli
from tests.support import FAST_PASSWORDS

PASSWORD = "correct horse battery"


@pytest.fixture
def nbh(tmp_path, monkeypatch, capsys):
    """Run `nbh staff|token ...` on a database in tmp_path; returns (exit status, stdout, stderr)."""
    store = StaffStore(open_database(sqlite_url(tmp_path / "db.sqlite")), passwords=FAST_PASSWORDS)
    parser = argparse.ArgumentParser(prog="nbh")
    staffcli.register(parser.add_subparsers(dest="command", required=True), lambda settings: store)
    settings = Settings(data_root=tmp_path / "data", run_dir=tmp_path / "run")

    def run(*argv, stdin=""):
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        args = parser.parse_args(argv)
        try:
            code = args.func(settings, args)
        except NbhostingError as exc:
            code = f"error: {exc.message}"
        out, err = capsys.readouterr()
        return code, out, err

    run.store = store
    return run


def test_the_first_admin_is_added_with_a_password_from_stdin_and_can_log_in(nbh):
    code, out, _ = nbh("staff", "add", "ada", "--role", "admin", "--password-stdin", "--json", stdin=PASSWORD + "\n")
    assert code == 0 and json.loads(out)["role"] == "admin"
    assert nbh.store.authenticate("ada", PASSWORD, "cli") is not None


def test_no_password_argument_exists():
    parser = cli.parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["staff", "add", "ada", "--role", "admin", "--password", PASSWORD])


def test_without_a_terminal_a_password_must_come_from_stdin(nbh):
    code, _, _ = nbh("staff", "add", "ada", "--role", "admin")
    assert code == "error: No terminal to type a password in: use --password-stdin."


def test_a_teacher_with_courses_is_listed_in_a_table_and_in_json(nbh):
    nbh("staff", "add", "tom", "--role", "teacher", "--course", "demo", "--course", "data", "--no-password")
    nbh("staff", "courses", "tom", "demo", "physics")
    code, out, _ = nbh("staff", "ls")
    assert code == 0 and out.splitlines()[0].split() == [
        "USER",
        "ROLE",
        "COURSES",
        "STUDENT",
        "ID",
        "PASSWORD",
        "STATE",
        "CREATED",
    ]
    assert "tom" in out and "demo,physics" in out and "none" in out
    _, out, _ = nbh("staff", "ls", "--json")
    assert json.loads(out)[0]["courses"] == ["demo", "physics"]
    assert "password_hash" not in out


def test_passwd_disable_enable_rm(nbh):
    nbh("staff", "add", "tom", "--role", "teacher", "--no-password")
    assert nbh("staff", "passwd", "tom", "--password-stdin", stdin=PASSWORD)[0] == 0
    assert nbh("staff", "disable", "tom")[0] == 0
    assert nbh.store.authenticate("tom", PASSWORD, "cli") is None
    nbh("staff", "enable", "tom")
    assert nbh.store.authenticate("tom", PASSWORD, "cli") is not None
    assert nbh("staff", "rm", "tom")[0] == 0
    assert nbh("staff", "rm", "tom")[0] == "error: There is no staff member 'tom'."


def test_a_token_is_printed_once_and_listed_without_it(nbh):
    nbh("staff", "add", "ada", "--role", "admin", "--no-password")
    code, out, err = nbh("token", "create", "ada", "prometheus", "--role", "teacher", "--expires-days", "30")
    token = out.strip()
    assert code == 0 and token.startswith("nbh_") and "shown once" in err
    assert nbh.store.token_principal(token).username == "ada"
    _, listing, _ = nbh("token", "ls")
    assert token not in listing and token[:12] in listing and "prometheus" in listing and "active" in listing
    _, out, _ = nbh("token", "revoke", "1", "--json")
    assert json.loads(out)["revoked"] is not None
    _, listing, _ = nbh("token", "ls", "--json")
    assert json.loads(listing)[0]["shown"] == token[:12] and "token" not in json.loads(listing)[0]
    assert nbh.store.token_principal(token) is None


def test_a_token_above_the_staff_members_role_is_refused(nbh):
    nbh("staff", "add", "tom", "--role", "teacher", "--no-password")
    code, _, _ = nbh("token", "create", "tom", "x", "--role", "admin")
    assert code.startswith("error: A token of tom has at most their role")
