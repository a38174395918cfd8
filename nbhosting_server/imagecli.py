"""`nbh` commands of courses' images: build, list versions, restart old servers, prune.

    nbh course build NAME                 build the course's .nbhosting/Containerfile; a new version (log streamed)
    nbh course images NAME [--json]       its versions (newest last) with their build logs, and its last builds
    nbh course restart-old [NAME]         stop the servers on an old image (files kept; the next click gets the new)
    nbh image prune [--dry-run] [--json]  remove image versions no server uses, with their podman tags

:func:`register_course` adds the first three to the ``course`` group's subparsers, :func:`register_image` adds
``prune`` to ``nbh image``. :func:`image_label` is what ``nbh ls`` shows of a server's image.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from nbhosting_core import Hub, Server, Settings, ensure_layout
from nbhosting_core import imageversions as versions
from nbhosting_core.system.courseimages import CourseImages, Pruned

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


def prune_images(hub: Hub, *, dry_run: bool) -> Pruned:
    """Prune the image versions no server of ``hub`` uses (every server's record counts, stopped ones too)."""
    in_use = [server.image for server in hub.backend.list_servers()]
    service = [hub.settings.image_rootfs] if hub.settings.image_rootfs is not None else []
    return hub.images.prune(in_use=in_use, in_service=service, dry_run=dry_run)


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def make_commands(hub_of: HubFactory) -> dict[str, Command]:
    """The commands, given how the CLI makes its hub (it builds the default image if needed)."""

    def build(settings: Settings, args: argparse.Namespace) -> int:
        hub = hub_of(settings)
        log_file = hub.images.new_log(args.name)
        print(f"build log: {log_file}", file=sys.stderr, flush=True)
        built = hub.images.build(args.name, log=lambda line: print(line, flush=True), log_file=log_file)
        if built.built:
            print(f"course {args.name}: version {built.version.number} in service ({built.seconds:.1f} s)")
            if not args.no_prune:
                print(pruned_text(prune_images(hub, dry_run=False)))
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

    def restart_old(settings: Settings, args: argparse.Namespace) -> int:
        stopped = hub_of(settings).restart_old(args.name)
        for server in stopped:
            print(f"stopped {server.name} (files kept; the student's next click gets the new image)")
        if not stopped:
            print("no running server on an old image")
        return 0

    def prune(settings: Settings, args: argparse.Namespace) -> int:
        ensure_layout(settings)
        pruned = prune_images(hub_of(settings), dry_run=args.dry_run)
        if args.json:
            _print_json({"removed": pruned.removed, "tags": pruned.tags, "freed_bytes": pruned.freed_bytes})
        else:
            print(pruned_text(pruned))
        return 0

    return {"build": build, "images": versions, "restart-old": restart_old, "prune": prune}


def register_course(sub: argparse._SubParsersAction[argparse.ArgumentParser], hub_of: HubFactory) -> None:
    """Add ``build``, ``images`` and ``restart-old`` to the ``nbh course`` group's subparsers ``sub``."""
    commands = make_commands(hub_of)
    c = sub.add_parser("build", help="build the course's own image (.nbhosting/Containerfile): a new version")
    c.add_argument("name")
    c.add_argument("--no-prune", action="store_true", help="keep unused image versions")
    c.set_defaults(func=commands["build"])
    c = sub.add_parser("images", help="the versions of the course's image and its builds' logs")
    c.add_argument("name")
    c.add_argument("--builds", type=int, default=3, help="how many of the last builds' logs to list (default 3)")
    c.add_argument("--json", action="store_true", help="print JSON")
    c.set_defaults(func=commands["images"])
    c = sub.add_parser("restart-old", help="stop the servers on an old image (files kept)")
    c.add_argument("name", nargs="?", help="only this course's servers")
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
