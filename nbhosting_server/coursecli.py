"""`nbh course …`: courses from git, for the admin (as root, on the host).

    nbh course create NAME GIT_URL [--branch B]   clone a repository (or a local one) as a course
    nbh course list [--all]                       the courses (archived ones too with --all)
    nbh course show NAME                          one course: origin, commit, configuration, last pull and its log
                                                  (its end: ok or failed)
    nbh course pull NAME | --all                  fetch and hard-reset the course (students' copies untouched)
    nbh course archive NAME | unarchive NAME      hide it and refuse its launches; put it back
    nbh course delete NAME [--yes] [--students]   a dry run unless --yes; students' work (workspaces, backups, shared
                                                  pages) kept unless --students
    nbh course link NAME STUDENT [--platform P]   a signed link to the course page of a student (a teacher tries it)

Every command takes ``--json``; clone and pull print git's progress to stderr. :func:`add_course_commands`
registers the group on `nbh`'s parser and returns its subparsers, so that more commands can join the group.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
from typing import Any

from nbhosting_core import NotFound, Settings, validate_course
from nbhosting_core.coursepages import signed_course_page_path
from nbhosting_core.courses import Courses, CourseView, PullResult
from nbhosting_core.platforms import PlatformsFile

#: how many of the last lines of git's log a pull's report shows
LOG_LINES = 15


def _courses(settings: Settings) -> Courses:
    return Courses(settings)


def _progress(name: str) -> Any:
    def show(line: str) -> None:
        print(f"[{name}] {line}", file=sys.stderr, flush=True)

    return show


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _when(at: float | None) -> str:
    if at is None:
        return "-"
    return datetime.datetime.fromtimestamp(at, tz=datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _short(commit: str | None) -> str:
    return (commit or "-")[:12]


def _view_json(view: CourseView) -> dict[str, Any]:
    data: dict[str, Any] = view.model_dump(mode="json")
    data["local"] = view.local
    return data


def _last_pull(pull: PullResult | None) -> str:
    if pull is None:
        return "-"
    return f"{'ok' if pull.ok else 'FAILED'} {_when(pull.at)}"


def _table(views: list[CourseView]) -> str:
    rows = [("NAME", "STATE", "COMMIT", "BRANCH", "LAST PULL", "CONFIG", "REMOTE")]
    for v in views:
        c = v.course
        rows.append(
            (
                c.name,
                c.state.value,
                _short(v.commit),
                c.branch or "-",
                _last_pull(c.last_pull),
                "REFUSED" if v.config_error else "ok",
                c.remote or "(local folder)",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def _show(view: CourseView) -> None:
    c, config = view.course, view.config
    print(f"course      {c.name} ({c.state.value})")
    print(f"path        {view.path}")
    print(f"remote      {c.remote or '(local folder: never pulled)'}")
    print(f"branch      {c.branch or '-'}")
    print(f"commit      {view.commit or '-'}")
    print(f"created     {_when(c.created_at)}")
    if view.config_error:
        print(f"config      REFUSED, served with the defaults: {view.config_error}")
    else:
        readonly = ", ".join(str(p) for p in config.readonly_folders(view.path)) or "none"
        image = config.image or "(its own if it has a Containerfile, else default)"
        print(f"config      image {image}; ui {config.ui or '(the host default)'}; read-only {readonly}")
        print(f"            pythonpath {config.pythonpath or 'none'}; tracks {len(config.tracks) or '(from folders)'}")
    if c.last_pull is not None:
        _pull_report(c.last_pull, "last pull", with_log=True)


def _pull_report(pull: PullResult, title: str, *, with_log: bool = False) -> None:
    """A pull's outcome; git's log too (its last :data:`LOG_LINES` lines) if it failed or ``with_log``."""
    state = "ok" if pull.ok else "FAILED (the course keeps serving its checkout)"
    print(f"{title:<11} {state}, {_when(pull.at)}, {pull.seconds:.1f} s, commit {_short(pull.commit)}")
    if pull.config_error:
        print(f"            configuration refused: {pull.config_error}")
    if not pull.ok or with_log:
        lines = pull.log.splitlines()
        if len(lines) > LOG_LINES:
            print(f"  | ... ({len(lines) - LOG_LINES} lines before; all of it: nbh course show {pull.course} --json)")
        for line in lines[-LOG_LINES:]:
            print(f"  | {line}")


def cmd_create(settings: Settings, args: argparse.Namespace) -> int:
    """`nbh course create NAME GIT_URL [--branch B]`."""
    view = _courses(settings).create(args.name, args.remote, branch=args.branch, progress=_progress(args.name))
    if args.json:
        _print_json(_view_json(view))
    else:
        print(f"created {view.course.name} from {view.course.remote} ({view.course.branch}, {_short(view.commit)})")
        if view.config_error:
            print(f"its configuration is refused (served with the defaults): {view.config_error}")
    return 0


def cmd_list(settings: Settings, args: argparse.Namespace) -> int:
    """`nbh course list [--all]`."""
    views = _courses(settings).list_courses(archived=args.all)
    if args.json:
        _print_json([_view_json(v) for v in views])
    elif views:
        print(_table(views))
    else:
        print("no course" + ("" if args.all else " (archived ones: --all)"))
    return 0


def cmd_show(settings: Settings, args: argparse.Namespace) -> int:
    """`nbh course show NAME`."""
    view = _courses(settings).show(args.name)
    if args.json:
        _print_json(_view_json(view))
    else:
        _show(view)
    return 0


def cmd_pull(settings: Settings, args: argparse.Namespace) -> int:
    """`nbh course pull NAME | --all`: 1 if a pull failed."""
    courses = _courses(settings)
    if args.all == (args.name is not None):
        print("nbh course pull: name one course, or --all", file=sys.stderr)
        return 2
    if args.all:
        results = courses.pull_all(progress=_progress("pull"))
    else:
        results = [courses.pull(args.name, progress=_progress(args.name))]
    if args.json:
        _print_json([r.model_dump(mode="json") for r in results])
    else:
        for result in results:
            _pull_report(result, result.course)
        if not results:
            print("no active course with a remote")
    return 0 if all(r.ok for r in results) else 1


def cmd_archive(settings: Settings, args: argparse.Namespace) -> int:
    """`nbh course archive NAME`."""
    view = _courses(settings).archive(args.name)
    if args.json:
        _print_json(_view_json(view))
    else:
        print(f"archived {args.name}: hidden, never pulled, its launches refused (files and students' work kept)")
    return 0


def cmd_unarchive(settings: Settings, args: argparse.Namespace) -> int:
    """`nbh course unarchive NAME`."""
    view = _courses(settings).unarchive(args.name)
    if args.json:
        _print_json(_view_json(view))
    else:
        print(f"{args.name} is active again")
    return 0


def cmd_delete(settings: Settings, args: argparse.Namespace) -> int:
    """`nbh course delete NAME [--yes] [--students]`: a dry run unless --yes; 1 if servers of the course exist."""
    plan = _courses(settings).delete(args.name, yes=args.yes, students=args.students)
    if args.json:
        _print_json(plan.model_dump(mode="json"))
        return 1 if args.yes and not plan.done else 0
    verb = "removed" if plan.done else "would remove"
    for path in plan.removes:
        print(f"{verb:<12} {path}")
    for path in plan.keeps:
        print(f"{'keeps':<12} {path}")
    if plan.servers:
        print(f"servers of {args.name} exist: remove them first (nbh rm NAME): {', '.join(plan.servers)}")
        return 1 if args.yes else 0
    if not plan.done:
        also = "" if args.students else "; --students also removes students' workspaces, backups and shared pages"
        print(f"(a dry run: `nbh course delete {args.name} --yes` does it{also})")
    return 0


def cmd_link(settings: Settings, args: argparse.Namespace) -> int:
    """`nbh course link NAME STUDENT`: a course page link signed for a platform, as its own code would make it."""
    found = PlatformsFile(settings.effective_platforms_file).check().get(args.platform)
    if found is None or not found.uses("signed") or found.secret is None:
        raise NotFound(f"No platform {args.platform!r} that signs links in {settings.effective_platforms_file}.")
    expires = int(time.time()) + min(args.ttl, settings.signed_launch_max_ttl)
    url = settings.public_url.rstrip("/") + signed_course_page_path(
        found, validate_course(args.name), args.student, expires
    )
    if args.json:
        _print_json({"url": url, "expires": expires})
    else:
        print(url)
    return 0


def add_course_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    """Register `nbh course …` on the subparsers of `nbh`; return the course group's own subparsers (to add more)."""
    group = sub.add_parser("course", help="courses from git: create, list, show, pull, archive, delete")
    commands = group.add_subparsers(dest="course_command", required=True)

    def add(name: str, func: Any, help_text: str) -> argparse.ArgumentParser:
        command = commands.add_parser(name, help=help_text, description=help_text)
        command.set_defaults(func=func)
        command.add_argument("--json", action="store_true", help="print JSON")
        return command

    c = add("create", cmd_create, "clone a git repository (or a local one) as a new course")
    c.add_argument("name")
    c.add_argument(
        "remote", metavar="GIT_URL", help="https://, ssh:// (or git@host:path), file://, or an absolute path"
    )
    c.add_argument("--branch", help="the branch to follow (default: the repository's own)")
    add("list", cmd_list, "list the courses").add_argument("--all", action="store_true", help="archived ones too")
    add("show", cmd_show, "one course: origin, commit, configuration, last pull").add_argument("name")
    c = add("pull", cmd_pull, "fetch and hard-reset a course (students' copies are never touched)")
    c.add_argument("name", nargs="?")
    c.add_argument("--all", action="store_true", help="every active course that has a remote")
    add("archive", cmd_archive, "hide a course, never pull it, refuse its launches").add_argument("name")
    add("unarchive", cmd_unarchive, "put an archived course back in service").add_argument("name")
    c = add("delete", cmd_delete, "delete a course (a dry run unless --yes)")
    c.add_argument("name")
    c.add_argument("--yes", action="store_true", help="do it")
    c.add_argument(
        "--students",
        action="store_true",
        help="also remove students' work of the course: workspaces, backups, shared pages",
    )
    c = add("link", cmd_link, "print a signed link to a student's course page (its tracks, what they opened)")
    c.add_argument("name")
    c.add_argument("student")
    c.add_argument("--platform", default="demo", help="the platform that signs (default: demo)")
    c.add_argument("--ttl", type=int, default=3600, help="seconds the link works (default 3600)")
    return commands
