"""`nbh` commands of courses' images: build, list versions, restart old servers, prune.

    nbh course build NAME [--json]        build the course's .nbhosting/Containerfile; a new version (log streamed;
                                          to stderr with --json, stdout then carries one JSON object)
    nbh course images NAME [--json]       its versions (newest last) with their build logs, and its last builds
    nbh course build-log NAME [--version N] [--json]   the end of the log of its last build (or of a version's)
    nbh course restart-old [NAME] [--json] stop the servers on an old image (files kept; the next click gets the new)
    nbh image prune [--dry-run] [--json]  remove image versions no server uses, with their podman tags

:func:`register_course` adds the first four to the ``course`` group's subparsers, :func:`register_image` adds
``prune`` to ``nbh image``. :func:`image_label` is what ``nbh ls`` shows of a server's image.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nbhosting_core import Hub, Server, Settings, ensure_layout
from nbhosting_core import imageversions as versions
from nbhosting_core.serveradmin import MAX_LOG_BYTES
from nbhosting_core.system.courseimages import Built, CourseImages, Pruned

Command = Callable[[Settings, argparse.Namespace], int]
HubFactory = Callable[[Settings], Hub]


def image_label(image: str, current: str | None) -> str:
    """A server's image as ``nbh ls`` shows it: ``<course> v<n>`` or ``default <hash6>``, and ``(old)`` when new
    servers of its course get another image (``current``)."""
    return versions.image_label(image) + (" (old)" if current is not None and image != current else "")


def pruned_text(pruned: Pruned) -> str:
    """What a prune did (or would do), for people."""
    verb = "would remove" if pruned.dry_run else "removed"
    if not pruned.removed:
        return "no unused image version"
    lines = [f"{verb} {name}" for name in pruned.removed]
    lines.append(f"{verb} {len(pruned.removed)} image version(s): {pruned.freed_bytes / 2**20:.0f} MiB")
    return "\n".join(lines)


def built_json(course: str, built: Built, log_file: Path, pruned: Pruned | None) -> dict[str, Any]:
    """What ``nbh course build --json`` prints: the version in service, whether this build made it, its logs, and
    what the prune after it removed (None: nothing built, or ``--no-prune``)."""
    return {
        "course": course,
        "version": built.version.number,
        "image": built.version.name,
        "digest": built.version.digest,
        "rootfs": str(built.rootfs),
        "built": built.built,
        "seconds": round(built.seconds, 3),
        "log": str(log_file),
        "version_log": str(built.log) if built.log is not None else None,
        "pruned": None if pruned is None else pruned_json(pruned),
    }


def pruned_json(pruned: Pruned) -> dict[str, Any]:
    """A prune's outcome, as ``--json`` prints it: its fields."""
    return dataclasses.asdict(pruned)


def stopped_json(server: Server) -> dict[str, Any]:
    """A server ``restart-old`` stopped, as ``--json`` prints it."""
    return {
        "name": server.name,
        "course": server.course,
        "student_id": server.student_id,
        "user": server.user,
        "image": server.image,
        "image_label": versions.image_label(server.image),
    }


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def make_commands(hub_of: HubFactory) -> dict[str, Command]:
    """The commands, given how the CLI makes its hub (it builds the default image if needed)."""

    def build(settings: Settings, args: argparse.Namespace) -> int:
        hub = hub_of(settings)
        log_file = hub.images.new_log(args.name)
        # with --json, stdout carries only the JSON object: podman's lines go to stderr, as they come
        lines = sys.stderr if args.json else sys.stdout
        print(f"build log: {log_file}", file=sys.stderr, flush=True)
        built = hub.images.build(args.name, log=lambda line: print(line, file=lines, flush=True), log_file=log_file)
        pruned = hub.prune_images() if built.built and not args.no_prune else None
        if args.json:
            _print_json(built_json(args.name, built, log_file, pruned))
            return 0
        if built.built:
            print(f"course {args.name}: version {built.version.number} in service ({built.seconds:.1f} s)")
        if pruned is not None:
            print(pruned_text(pruned))
        return 0

    def versions(settings: Settings, args: argparse.Namespace) -> int:
        images = CourseImages(settings)
        found = images.versions(args.name)
        logs = images.build_logs(args.name)[-args.builds :] if args.builds else []
        if args.json:
            _print_json(
                {
                    "versions": [
                        {"number": v.number, "digest": v.digest, "rootfs": images.rootfs(v), "log": images.build_log(v)}
                        for v in found
                    ],
                    "builds": logs,
                }
            )
            return 0
        for v in found:
            print(f"v{v.number:<4} {v.digest}  {images.rootfs(v)}  log {images.build_log(v)}")
        if not found:
            print(f"course {args.name}: no image of its own yet (nbh course build {args.name})")
        for log in logs:
            print(f"build  {log}")
        return 0

    def build_log(settings: Settings, args: argparse.Namespace) -> int:
        found = CourseImages(settings).read_build_log(args.name, version=args.version, max_bytes=MAX_LOG_BYTES)
        if args.json:
            _print_json(None if found is None else found.model_dump(mode="json"))
            return 0
        if found is None:
            print(f"course {args.name}: never built (nbh course build {args.name})")
            return 0
        which = f"version {found.version}'s build" if found.version is not None else "last build"
        cut = f" (its last {MAX_LOG_BYTES // 1024} KiB)" if found.truncated else ""
        print(f"# course {args.name}, {which}: {found.outcome}; {found.path}{cut}", file=sys.stderr)
        print(found.log, end="" if found.log.endswith("\n") else "\n")
        return 0

    def restart_old(settings: Settings, args: argparse.Namespace) -> int:
        stopped = hub_of(settings).restart_old(args.name)
        if args.json:
            _print_json({"stopped": [stopped_json(server) for server in stopped]})
            return 0
        for server in stopped:
            print(f"stopped {server.name} (files kept; the student's next click gets the new image)")
        if not stopped:
            print("no running server on an old image")
        return 0

    def prune(settings: Settings, args: argparse.Namespace) -> int:
        ensure_layout(settings)
        pruned = hub_of(settings).prune_images(dry_run=args.dry_run)
        if args.json:
            _print_json(pruned_json(pruned))
        else:
            print(pruned_text(pruned))
        return 0

    return {"build": build, "images": versions, "build-log": build_log, "restart-old": restart_old, "prune": prune}


def register_course(sub: argparse._SubParsersAction[argparse.ArgumentParser], hub_of: HubFactory) -> None:
    """Add ``build``, ``images``, ``build-log`` and ``restart-old`` to the ``nbh course`` group's subparsers ``sub``."""
    commands = make_commands(hub_of)
    c = sub.add_parser("build", help="build the course's own image (.nbhosting/Containerfile): a new version")
    c.add_argument("name")
    c.add_argument("--no-prune", action="store_true", help="keep unused image versions")
    c.add_argument("--json", action="store_true", help="print JSON (podman's output then goes to stderr)")
    c.set_defaults(func=commands["build"])
    c = sub.add_parser("images", help="the versions of the course's image and its builds' logs")
    c.add_argument("name")
    c.add_argument("--builds", type=int, default=3, help="how many of the last builds' logs to list (default 3)")
    c.add_argument("--json", action="store_true", help="print JSON")
    c.set_defaults(func=commands["images"])
    c = sub.add_parser("build-log", help="the log of the course's last build (or of a version's), its end")
    c.add_argument("name")
    c.add_argument("--version", type=int, help="the build that published this version (default: the last build)")
    c.add_argument("--json", action="store_true", help="print JSON")
    c.set_defaults(func=commands["build-log"])
    c = sub.add_parser("restart-old", help="stop the servers on an old image (files kept)")
    c.add_argument("name", nargs="?", help="only this course's servers")
    c.add_argument("--json", action="store_true", help="print JSON: the servers stopped")
    c.set_defaults(func=commands["restart-old"])


def register_image(image: argparse.ArgumentParser, hub_of: HubFactory) -> None:
    """Add ``prune`` under ``nbh image`` (which still builds the default image when given no subcommand)."""
    sub = image.add_subparsers(dest="image_command", required=False)
    c = sub.add_parser("prune", help="remove image versions no server uses, with their podman tags")
    c.add_argument("--dry-run", action="store_true", help="only say what would be removed")
    c.add_argument("--json", action="store_true", help="print JSON")
    c.set_defaults(func=make_commands(hub_of)["prune"])


def current_images(hub: Hub, servers: list[Server]) -> dict[str, str | None]:
    """The image new servers of each course of ``servers`` get (for :func:`image_label`)."""
    return {course: hub.image_for(course) for course in {s.course for s in servers}}
