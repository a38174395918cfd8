"""`nbh staff ...` and `nbh token ...`: staff accounts and API tokens, in the app's database (as root, on the host).

nbh staff add USER --role admin|teacher [--course C ...] [--student-id ID] [--password-stdin | --no-password]
nbh staff passwd USER [--password-stdin]       set a password (their sessions end)
nbh staff ls [--json]                          every staff member
nbh staff rm USER                              remove them, their sessions and tokens
nbh staff courses USER [C ...]                 the courses they teach (replaced; none: nothing)
nbh staff disable USER | nbh staff enable USER no login, no session, no token works while disabled
nbh token create USER NAME [--role R] [--expires-days N]   prints the token, once
nbh token ls [--json]                          every token (never the token itself)
nbh token revoke ID

A password is typed at a prompt (twice), or read from standard input's first line with ``--password-stdin``: never
an argument (it would sit in the shell's history and in ``ps``). These commands only touch the database: the
process first becomes the app's user (:func:`~nbhosting_server.appdb.become_app_user`).
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from nbhosting_core import Settings
from nbhosting_core.errors import InvalidInput
from nbhosting_core.roles import Role
from nbhosting_core.staff import StaffMember, StaffStore, TokenInfo

from .appdb import app_database, become_app_user, prepare_database_dir

StoreFactory = Callable[[Settings], StaffStore]


def open_store(settings: Settings) -> StaffStore:
    """The staff store of the app's database, as the app's user."""
    prepare_database_dir(settings)
    become_app_user(settings)
    return StaffStore(app_database(settings))


def register(commands: Any, store_factory: StoreFactory = open_store) -> None:
    """Add ``nbh staff`` and ``nbh token`` to ``commands`` (the ``nbh`` parser's subparsers)."""

    def group(name: str, help_text: str) -> Any:
        parser = commands.add_parser(name, help=help_text, description=help_text)
        return parser.add_subparsers(dest=f"{name}_command", required=True)

    def adder(sub: Any) -> Callable[..., argparse.ArgumentParser]:
        def add(
            name: str, func: Callable[[StaffStore, argparse.Namespace], int], help_text: str, *, as_json: bool = False
        ) -> argparse.ArgumentParser:
            command: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=help_text)
            command.set_defaults(func=lambda settings, ns: func(store_factory(settings), ns))
            if as_json:
                command.add_argument("--json", action="store_true", help="print JSON")
            return command

        return add

    add = adder(group("staff", "staff accounts: admins and teachers of the admin pages and the API"))
    c = add("add", _add, "add a staff member (a password is asked for)", as_json=True)
    c.add_argument("user")
    c.add_argument("--role", required=True, choices=[r.value for r in Role])
    c.add_argument("--course", action="append", default=[], help="a course they teach (again for more)")
    c.add_argument("--student-id", help="the student id they try notebooks as")
    _password_options(c, allow_none=True)
    c = add("passwd", _passwd, "set a staff member's password (their sessions end)")
    c.add_argument("user")
    _password_options(c, allow_none=False)
    add("ls", _ls, "list staff members", as_json=True)
    add("rm", _rm, "remove a staff member, their sessions and tokens").add_argument("user")
    c = add("courses", _courses, "set the courses a staff member teaches (replacing theirs)", as_json=True)
    c.add_argument("user")
    c.add_argument("courses", nargs="*", metavar="COURSE")
    add("disable", _disable, "disable a staff member: no login, session or token works").add_argument("user")
    add("enable", _enable, "enable a disabled staff member").add_argument("user")

    add = adder(group("token", "API tokens of staff members (stored hashed: shown once)"))
    c = add("create", _token_create, "create an API token; prints it once", as_json=True)
    c.add_argument("user")
    c.add_argument("name", help="what it is for (e.g. prometheus, a script's name)")
    c.add_argument("--role", choices=[r.value for r in Role], help="at most the staff member's (default theirs)")
    c.add_argument("--expires-days", type=float, help="days it works (default: until revoked)")
    add("ls", _token_ls, "list API tokens (never the tokens themselves)", as_json=True)
    add("revoke", _token_revoke, "revoke an API token", as_json=True).add_argument("id", type=int)


def _password_options(command: argparse.ArgumentParser, *, allow_none: bool) -> None:
    how = command.add_mutually_exclusive_group()
    how.add_argument("--password-stdin", action="store_true", help="read the password from stdin's first line")
    if allow_none:
        how.add_argument("--no-password", action="store_true", help="no password: API tokens only")


def read_password(args: argparse.Namespace) -> str | None:
    """The password to set: stdin's first line (``--password-stdin``), none (``--no-password``), or typed twice at
    a prompt on a terminal. Raises InvalidInput."""
    if getattr(args, "no_password", False):
        return None
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():
        raise InvalidInput("No terminal to type a password in: use --password-stdin.")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Again: ") != first:
        raise InvalidInput("The two passwords differ.")
    return first


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M")


def _table(rows: Sequence[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _print_member(member: StaffMember, as_json: bool) -> None:
    if as_json:
        _print_json(member.model_dump(mode="json"))
    else:
        print(_members_table([member]))


def _members_table(members: list[StaffMember]) -> str:
    rows = [("USER", "ROLE", "COURSES", "STUDENT ID", "PASSWORD", "STATE", "CREATED")]
    for m in members:
        rows.append(
            (
                m.username,
                m.role.value,
                ",".join(m.courses) or "-",
                m.student_id or "-",
                "set" if m.has_password else "none",
                "disabled" if m.disabled else "active",
                _when(m.created),
            )
        )
    return _table(rows)


def _tokens_table(tokens: list[TokenInfo], now: float) -> str:
    rows = [("ID", "USER", "NAME", "TOKEN", "ROLE", "CREATED", "EXPIRES", "LAST USED", "STATE")]
    for t in tokens:
        state = (
            "revoked"
            if t.revoked is not None
            else "expired"
            if t.expires is not None and t.expires <= now
            else "active"
        )
        rows.append(
            (
                str(t.id),
                t.username,
                t.name,
                f"{t.shown}…",
                t.role.value,
                _when(t.created),
                _when(t.expires),
                _when(t.last_used),
                state,
            )
        )
    return _table(rows)


def _add(store: StaffStore, args: argparse.Namespace) -> int:
    password = read_password(args)
    member = store.add(args.user, Role(args.role), password=password, courses=args.course, student_id=args.student_id)
    _print_member(member, args.json)
    return 0


def _passwd(store: StaffStore, args: argparse.Namespace) -> int:
    store.get(args.user)  # an unknown user before a password is typed
    password = read_password(args)
    if password is None:
        raise InvalidInput("No password given.")
    store.set_password(args.user, password)
    print(f"password of {args.user} set; their sessions ended", file=sys.stderr)
    return 0


def _ls(store: StaffStore, args: argparse.Namespace) -> int:
    members = store.members()
    if args.json:
        _print_json([m.model_dump(mode="json") for m in members])
    else:
        print(_members_table(members))
    return 0


def _rm(store: StaffStore, args: argparse.Namespace) -> int:
    store.remove(args.user)
    print(f"{args.user} removed, with their sessions and tokens", file=sys.stderr)
    return 0


def _courses(store: StaffStore, args: argparse.Namespace) -> int:
    _print_member(store.set_courses(args.user, args.courses), args.json)
    return 0


def _disable(store: StaffStore, args: argparse.Namespace) -> int:
    store.set_disabled(args.user, True)
    print(f"{args.user} disabled; their sessions ended, their tokens refused", file=sys.stderr)
    return 0


def _enable(store: StaffStore, args: argparse.Namespace) -> int:
    store.set_disabled(args.user, False)
    print(f"{args.user} enabled", file=sys.stderr)
    return 0


def _token_create(store: StaffStore, args: argparse.Namespace) -> int:
    expires = time.time() + args.expires_days * 86400 if args.expires_days is not None else None
    role = Role(args.role) if args.role else None
    info, token = store.create_token(args.user, args.name, role=role, expires=expires)
    if args.json:
        _print_json(info.model_dump(mode="json") | {"token": token})
    else:
        print(token)
        print(
            f"token {info.id} ({info.name}) of {info.username} as {info.role.value}: shown once, keep it safe",
            file=sys.stderr,
        )
    return 0


def _token_ls(store: StaffStore, args: argparse.Namespace) -> int:
    tokens = store.tokens()
    if args.json:
        _print_json([t.model_dump(mode="json") for t in tokens])
    else:
        print(_tokens_table(tokens, time.time()))
    return 0


def _token_revoke(store: StaffStore, args: argparse.Namespace) -> int:
    info = store.revoke_token(args.id)
    if args.json:
        _print_json(info.model_dump(mode="json"))
    else:
        print(f"token {info.id} ({info.name} of {info.username}) revoked", file=sys.stderr)
    return 0
