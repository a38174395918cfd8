"""`nbh student ...`: what a student can do with their notebooks, done by an admin for them (as root, on the host).

nbh student reset COURSE NOTEBOOK STUDENT            the course's version; theirs kept as a backup
nbh student backups COURSE STUDENT [--notebook P]    their backups (--json)
nbh student restore COURSE NOTEBOOK STUDENT BACKUP   a backup made current (the current one backed up first)
nbh student download COURSE NOTEBOOK STUDENT -o F    their copy of a notebook
nbh student download-workspace COURSE STUDENT -o F   their workspace of a course, as a zip
nbh student share COURSE NOTEBOOK STUDENT            render it in their running server and print the link
nbh student unshare COURSE NOTEBOOK STUDENT          revoke the link
nbh student shares COURSE STUDENT                    their shares (--json)
nbh student show STUDENT [--course C] [--events N]   their workspaces, servers and latest events (--json)

``show`` reads the student's workspaces and servers through the hub first, as root, then becomes the app's user for
good to read their events from the app's database (as ``nbh events`` does: see :mod:`.appdb`): root never opens the
app's files, and nothing needs to go back to root after.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nbhosting_core import Hub, Settings
from nbhosting_core.eventstore import StoredEvent, events
from nbhosting_core.origins import site_origin
from nbhosting_core.shares import Share, share_url
from nbhosting_core.studentwork import Download

from .statscli import events_table, open_events, table, utc_moment

HubFactory = Callable[[Settings], Hub]


def register(commands: Any, hub_factory: HubFactory) -> None:
    """Add ``nbh student`` and its subcommands to ``commands`` (the ``nbh`` parser's subparsers)."""
    student = commands.add_parser("student", help="what a student can do with their notebooks, done for them")
    sub = student.add_subparsers(dest="student_command", required=True)

    def add(name: str, func: Callable[[Hub, argparse.Namespace], int], help_text: str, *args: str) -> Any:
        command = sub.add_parser(name, help=help_text, description=help_text)
        for arg in args:
            command.add_argument(arg)
        command.set_defaults(func=lambda settings, ns: func(hub_factory(settings), ns))
        return command

    add("reset", _reset, "reset a notebook to the course's version (theirs kept as a backup)", *_NB)
    c = add("backups", _backups, "list a student's backups", "course", "student")
    c.add_argument("--notebook", help="of this notebook only")
    c.add_argument("--json", action="store_true", help="print JSON")
    add("restore", _restore, "make a backup current again (the current copy is backed up first)", *_NB, "backup")
    c = add("download", _download, "write a student's copy of a notebook to a file", *_NB)
    c.add_argument("-o", "--output", type=Path, required=True, help="the file to write ('-': standard output)")
    c = add("download-workspace", _download_workspace, "write a student's workspace as a zip", "course", "student")
    c.add_argument("-o", "--output", type=Path, required=True, help="the file to write ('-': standard output)")
    add("share", _share, "share a static copy of a notebook (their server must run); prints the link", *_NB)
    add("unshare", _unshare, "revoke the link of a shared notebook", *_NB)
    c = add("shares", _shares, "list a student's shares (with their links)", "course", "student")
    c.add_argument("--json", action="store_true", help="print JSON")
    help_text = "a student's workspaces, servers and latest events"
    c = sub.add_parser("show", help=help_text, description=help_text)
    c.add_argument("student")
    c.add_argument("--course", help="in this course only")
    c.add_argument("--events", type=int, default=20, help="how many of their latest events (default 20, 0: none)")
    c.add_argument("--json", action="store_true", help="print JSON")
    c.set_defaults(func=lambda settings, ns: _show(settings, ns, hub_factory))


_NB = ("course", "notebook", "student")


def _reset(hub: Hub, args: argparse.Namespace) -> int:
    reset = hub.work.reset(args.course, args.notebook, args.student)
    kept = f"their version is backup {reset.backup.id}" if reset.backup else "they had no copy"
    print(f"{args.notebook}: the course's version is theirs now; {kept}")
    return 0


def _backups(hub: Hub, args: argparse.Namespace) -> int:
    backups = hub.work.backups(args.course, args.notebook, args.student)
    if args.json:
        print(json.dumps([b.model_dump() for b in backups], indent=2))
    else:
        for b in backups:
            print(f"{b.notebook}  {b.id}  {b.size} bytes")
    return 0


def _restore(hub: Hub, args: argparse.Namespace) -> int:
    restored = hub.work.restore(args.course, args.notebook, args.student, args.backup)
    kept = f"; their previous copy is backup {restored.backup.id}" if restored.backup else ""
    print(f"{args.notebook}: backup {args.backup} is their copy again{kept}")
    return 0


def _write(download: Download, output: Path) -> int:
    with download.stream as source:
        if str(output) == "-":
            shutil.copyfileobj(source, sys.stdout.buffer)
        else:
            with output.open("wb") as out:
                shutil.copyfileobj(source, out)
            print(f"wrote {output} ({download.size} bytes)", file=sys.stderr)
    return 0


def _download(hub: Hub, args: argparse.Namespace) -> int:
    return _write(hub.work.download_notebook(args.course, args.notebook, args.student), args.output)


def _download_workspace(hub: Hub, args: argparse.Namespace) -> int:
    return _write(hub.work.download_workspace(args.course, args.student), args.output)


def _link(hub: Hub, share: Share) -> str:
    return share_url(site_origin(hub.settings), share.token)


def _share(hub: Hub, args: argparse.Namespace) -> int:
    print(_link(hub, hub.work.share(args.course, args.notebook, args.student)))
    return 0


def _unshare(hub: Hub, args: argparse.Namespace) -> int:
    gone = hub.work.unshare(args.course, args.notebook, args.student)
    print(f"{args.notebook}: {'link revoked' if gone is not None else 'it was not shared'}")
    return 0


def _shares(hub: Hub, args: argparse.Namespace) -> int:
    shares = hub.work.shares(args.course, args.student)
    if args.json:
        print(json.dumps([{**s.model_dump(), "url": _link(hub, s)} for s in shares], indent=2))
    else:
        for s in shares:
            print(f"{s.notebook}  {_link(hub, s)}")
    return 0


def _show(settings: Settings, args: argparse.Namespace, hub_factory: HubFactory) -> int:
    view = hub_factory(settings).student_view(args.student, course=args.course)  # as root: homes, podman
    found: list[StoredEvent] = []
    if args.events > 0:
        engine = open_events(settings)  # from here on, the app's user (for good)
        found = events(engine, student_id=view.student_id, course=args.course, limit=min(args.events, 1000)).events
    if args.json:
        print(
            json.dumps({**view.model_dump(mode="json"), "events": [e.model_dump(mode="json") for e in found]}, indent=2)
        )
        return 0
    print(f"student {view.student_id}: " + (f"user {view.user}" if view.user else "no account on this host"))
    if view.workspaces:
        rows: list[tuple[str, ...]] = [("WORKSPACE", "NOTEBOOKS", "FILES", "SIZE", "MODIFIED (UTC)")]
        for w in view.workspaces:
            size = f"{w.bytes / 2**20:.1f}M" + ("+" if w.truncated else "")
            rows.append(
                (w.course, str(w.notebook_count), str(w.files), size, utc_moment(w.modified) if w.modified else "-")
            )
        print("\n" + table(rows))
    if view.servers:
        rows = [("SERVER", "COURSE", "STATE", "IDLE", "AGE", "IMAGE")]
        for v in view.servers:
            s = v.server
            rows.append(
                (s.name, s.course, s.state.value, _ago(v.idle_seconds), _ago(v.age_seconds), v.image_label or s.image)
            )
        print("\n" + table(rows))
    if found:
        print("\n" + events_table(found))
    return 0


def _ago(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds / 60:.0f}m" if seconds < 3600 else f"{seconds / 3600:.1f}h"
