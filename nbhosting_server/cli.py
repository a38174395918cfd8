"""`nbh`: the admin command line (as root, on the host).

    nbh serve [--demo] [--workers N]     the app and Caddy in the foreground
    nbh open COURSE NOTEBOOK STUDENT     the same flow as a click; prints the launch as JSON
    nbh ls [--details] [--json]          every server: state, idle time, age, image (memory, kernels: --details);
                                         --course C: of one course
    nbh show NAME [--json]               one server
    nbh stop NAME | nbh rm NAME          stop (same key at the next click) or remove (files are kept)
    nbh restart COURSE STUDENT [--json]  stop a student's server and start it again on its course's newest image
    nbh logs COURSE STUDENT [--json]     the last lines a student's server printed (--lines N: 200, at most 2000)
    nbh cull [--dry-run] [--json]        one pass of the idle culler
    nbh reconcile [--json]               repair records after a crash or a reboot
    nbh sign COURSE NOTEBOOK STUDENT     a launch URL signed for a platform (--platform, --ttl)
    nbh platforms [--json]               check the platforms file and list its platforms
    nbh lti [--json] [--public-key]      the URLs (and key) an LMS admin copies to add nbhosting as an LTI tool
    nbh image | nbh demo | nbh doctor    build the image; install the demo course; check the host
    nbh image prune [--dry-run]          remove image versions no server uses
    nbh course create|list|show|pull|archive|unarchive|delete|link   courses from git (coursecli)
    nbh course build|images|restart-old  a course's own image (see nbhosting_server.imagecli)
    nbh systemd [--dir DIR] [--print]    write the systemd units of a production host (helper, app, Caddy)
    nbh student ...                      reset, backups, restore, download, share for a student (studentcli)
    nbh student show STUDENT [--course C] [--json]   their workspaces, servers and latest events
    nbh students [--course C] [--search S] [--json]  the students the events know, most recent first (statscli)
    nbh events [--course C] [--student S] [--kind K] [--since ISO] [--limit N] [--json]   events, newest first
    nbh stats COURSE [--days N] [--json] a course's students, notebooks, launches and failures per day (statscli)
    nbh staff ... | nbh token ...        staff accounts and their API tokens, in the app's database (staffcli)

Every error nbhosting raises is printed as one line (what, and the admin's detail), exit status 1.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from nbhosting_core import Hub, NbhostingError, ServerView, Settings, ensure_default_rootfs, ensure_layout
from nbhosting_core.imageversions import image_label
from nbhosting_core.origins import server_origin
from nbhosting_core.platforms import PlatformsFile
from nbhosting_core.serveradmin import DEFAULT_LOG_LINES, MAX_LOG_LINES
from nbhosting_core.system.doctor import diagnose
from nbhosting_core.system.layout import give_to_app, share_with_app
from nbhosting_core.system.secretfile import secret_owners
from nbhosting_core.system.toolkey import ToolKey

from . import imagecli, staffcli, statscli, studentcli, systemd
from .coursecli import add_course_commands
from .demo import ensure_datascience_course, ensure_demo_course
from .lti import LTI11_ALIASES, LTI11_LAUNCH, LTI13_JWKS, LTI13_LAUNCH, LTI13_LOGIN
from .serve import prepare_helper, serve, signed_url

Command = Callable[[Settings, argparse.Namespace], int]


def _hub(settings: Settings) -> Hub:
    ensure_layout(settings)
    return Hub(settings.model_copy(update={"image_rootfs": ensure_default_rootfs(settings, log=_log_image)}))


def _log_image(line: str) -> None:
    print(f"[image] {line}", file=sys.stderr, flush=True)


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / 2**20:.0f}M"


def _table(views: list[ServerView], current: dict[str, str | None] | None = None) -> str:
    """``current``: the image new servers of each course get; a server on another is marked ``(old)``."""
    current = current or {}
    rows = [("NAME", "COURSE", "STATE", "IDLE", "AGE", "MEMORY", "KERNELS", "IMAGE", "KEY")]
    for v in views:
        kernels = "-" if v.activity is None else f"{v.activity.kernels}/{v.activity.busy_kernels} busy"
        memory = _mib(v.usage.memory_bytes) if v.usage is not None else "-"
        rows.append(
            (
                v.server.name,
                v.server.course,
                v.server.state.value,
                _duration(v.idle_seconds),
                _duration(v.age_seconds),
                memory,
                kernels,
                imagecli.image_label(v.server.image, current.get(v.server.course)),
                v.server.key[:8],
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    """`nbh serve`."""
    return serve(settings, demo=args.demo, workers=args.workers)


def cmd_open(settings: Settings, args: argparse.Namespace) -> int:
    """`nbh open`: a launch, waited for unless --no-wait."""
    hub = _hub(settings)
    launch = hub.open_notebook(args.course, args.notebook, args.student)
    if not args.no_wait:
        launch = hub.wait_ready(launch)
    data = launch.model_dump(mode="json")
    data["created"] = launch.created
    data["url"] = server_origin(hub.settings, launch.key) + launch.url  # a browser needs a launch's cookie there
    _print_json(data)
    return 0


def cmd_ls(settings: Settings, args: argparse.Namespace) -> int:
    """`nbh ls`."""
    hub = _hub(settings)
    views = hub.list_servers(course=args.course, details=args.details)
    current = imagecli.current_images(hub, [v.server for v in views])
    if args.json:
        _print_json([{**v.model_dump(mode="json"), "old_image": _is_old(v, current)} for v in views])
    else:
        print(_table(views, current))
    return 0


def _is_old(view: ServerView, current: dict[str, str | None]) -> bool:
    image = current.get(view.server.course)
    return image is not None and view.server.image != image


def cmd_show(settings: Settings, args: argparse.Namespace) -> int:
    """`nbh show NAME`."""
    view = _hub(settings).server(args.name)
    if args.json:
        _print_json(view.model_dump(mode="json"))
    else:
        print(_table([view]))
        if view.usage is not None:
            u = view.usage
            print(
                f"memory {_mib(u.memory_bytes)} of {_mib(u.memory_limit)}, processes {u.pids}/{u.pids_limit}, "
                f"cpu {u.cpu_seconds if u.cpu_seconds is None else round(u.cpu_seconds, 1)} s, "
                f"disk {_mib(u.disk_bytes)} of {_mib(u.disk_limit)}"
            )
    return 0


def cmd_stop(settings: Settings, args: argparse.Namespace) -> int:
    """`nbh stop NAME`."""
    server = _hub(settings).stop(args.name)
    print(f"stopped {server.name} (the student's next click starts it again)")
    return 0


def cmd_rm(settings: Settings, args: argparse.Namespace) -> int:
    """`nbh rm NAME`."""
    server = _hub(settings).remove(args.name)
    print(f"removed {server.name} (the student's files are kept)")
    return 0


def cmd_restart(settings: Settings, args: argparse.Namespace) -> int:
    """`nbh restart COURSE STUDENT`."""
    server = _hub(settings).restart_server(args.course, args.student)
    if args.json:
        _print_json(server.model_dump(mode="json"))
    else:
        print(f"restarted {server.name} (key {server.key[:8]}, image {image_label(server.image)}; files kept)")
    return 0


def cmd_logs(settings: Settings, args: argparse.Namespace) -> int:
    """`nbh logs COURSE STUDENT`: control characters are replaced (a student's program wrote them)."""
    text = _hub(settings).server_logs(args.course, args.student, lines=args.lines)
    if args.json:
        _print_json({"course": args.course, "student_id": args.student, "lines": args.lines, "logs": text})
    else:
        sys.stdout.write(text)
    return 0


def cmd_cull(settings: Settings, args: argparse.Namespace) -> int:
    """`nbh cull`: one pass of the culler."""
    decisions = _hub(settings).cull(dry_run=args.dry_run)
    if args.json:
        _print_json([d.model_dump(mode="json") for d in decisions])
    else:
        for d in decisions:
            verb = ("would stop" if args.dry_run else "stopped") if d.cull else "kept"
            print(
                f"{verb:<10} {d.name}  ({d.reason.value}, idle {_duration(d.idle_seconds)}, "
                f"age {_duration(d.age_seconds)})"
            )
        if not decisions:
            print("no running server")
    return 0


def cmd_reconcile(settings: Settings, args: argparse.Namespace) -> int:
    """`nbh reconcile`."""
    report = _hub(settings).reconcile()
    if args.json:
        _print_json(report.model_dump(mode="json"))
    else:
        print(
            f"checked {report.checked} servers; adopted {report.adopted or 'none'}; removed "
            f"{report.removed or 'none'}; cleared {len(report.cleared)} stale runtime files"
        )
    return 0


def cmd_sign(settings: Settings, args: argparse.Namespace) -> int:
    """`nbh sign`: a signed launch URL, as the platform would make it."""
    print(signed_url(settings, args.platform, args.course, args.notebook, args.student, args.ttl))
    return 0


def cmd_platforms(settings: Settings, args: argparse.Namespace) -> int:
    """`nbh platforms`: the platforms file, checked (and, as root, shared with the app's group: 0640)."""
    platforms = PlatformsFile(settings.effective_platforms_file).check()
    share_with_app(settings)
    if args.json:
        _print_json([p.model_dump(mode="json") for p in platforms.platform])  # secrets print as "**********"
        return 0
    print(f"{settings.effective_platforms_file}: {len(platforms.platform)} platform(s)")
    for p in platforms.platform:
        print(
            f"  {p.name:<16} methods {', '.join(p.methods)}; courses {', '.join(p.courses)}; "
            f"origins {', '.join(p.origins) or '(none)'}"
        )
    return 0


def cmd_lti(settings: Settings, args: argparse.Namespace) -> int:
    """`nbh lti`: what an LMS admin copies into the platform to add nbhosting as an LTI tool."""
    base = settings.public_url.rstrip("/")
    key = ToolKey(settings.lti_dir / "tool-key.pem", owners=secret_owners(settings.app_user))
    key.private_key()
    give_to_app(settings, settings.lti_dir)  # a key root just made is the app's
    if args.public_key:
        from cryptography.hazmat.primitives import serialization

        public = key.private_key().public_key()
        print(public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode())
        return 0
    info = {
        "lti11_launch_url": base + LTI11_LAUNCH,
        "lti11_launch_url_aliases": [base + path for path in LTI11_ALIASES],
        "lti13_login_url": base + LTI13_LOGIN,
        "lti13_launch_url": base + LTI13_LAUNCH,
        "lti13_redirect_uris": [base + LTI13_LAUNCH],
        "lti13_keyset_url": base + LTI13_JWKS,
        "lti13_key_id": key.jwks()["keys"][0]["kid"],
    }
    if args.json:
        _print_json(info)
        return 0
    aliases = ", ".join(info["lti11_launch_url_aliases"])
    print(f"LTI 1.1  launch URL            {info['lti11_launch_url']}  (also {aliases})")
    print(f"LTI 1.3  login URL (OIDC)      {info['lti13_login_url']}")
    print(f"         launch URL            {info['lti13_launch_url']}  (the redirect URI too)")
    print(f"         keyset URL            {info['lti13_keyset_url']}  (key id {info['lti13_key_id']})")
    print("custom parameters of each link: course=<course>, notebook=<path/to/notebook.ipynb>")
    return 0


def cmd_helper(settings: Settings, args: argparse.Namespace) -> int:
    """`nbh helper`: the privileged helper in the foreground (what `nbh serve` and the systemd unit run)."""
    import logging

    from nbhosting_core.helper import run_helper

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.prepared:
        settings = prepare_helper(settings)
    run_helper(settings, cull=not args.no_cull)
    return 0


def cmd_image(settings: Settings, args: argparse.Namespace) -> int:
    """`nbh image`."""
    ensure_layout(settings)
    print(ensure_default_rootfs(settings, log=_log_image))
    return 0


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    """`nbh demo`."""
    ensure_layout(settings)
    print(ensure_demo_course(settings.courses_dir))
    print(f"{ensure_datascience_course(settings.courses_dir)} (its image: nbh course build datascience)")
    return 0


def cmd_doctor(settings: Settings, args: argparse.Namespace) -> int:
    """`nbh doctor`: every host check; 1 if a required one fails."""
    if settings.image_rootfs is None:
        from nbhosting_core.system.images import DEFAULT_CONTEXT_DIR, rootfs_path

        settings = settings.model_copy(
            update={"image_rootfs": rootfs_path(DEFAULT_CONTEXT_DIR, settings.effective_images_dir)}
        )
    failed = False
    for check in diagnose(settings):
        mark = ("ok  " if check.ok else "FAIL") if check.required else ("info" if check.ok else "warn")
        failed |= check.required and not check.ok
        print(f"{mark}  {check.name:<14} {check.detail}")
    return 1 if failed else 0


def _nbh_command() -> str | None:
    """The `nbh` of this venv (beside its python, symlinks kept), else the one on PATH."""
    beside = Path(sys.executable).absolute().with_name("nbh")
    return str(beside) if beside.is_file() else shutil.which("nbh")


def cmd_systemd(settings: Settings, args: argparse.Namespace) -> int:
    """`nbh systemd`: write (or print) the units, their environment files and the system users."""
    nbh, caddy = _nbh_command(), shutil.which("caddy")
    if nbh is None or caddy is None:
        missing = "the nbh command" if nbh is None else "caddy (apt-get install caddy)"
        print(f"nbh systemd: cannot find {missing}", file=sys.stderr)
        return 2
    files = systemd.plan(
        settings,
        nbh=nbh,
        python=str(Path(sys.executable).absolute()),
        caddy=caddy,
        workers=args.workers,
        unit_dir=args.dir,
        env_dir=systemd.ENV_DIR,
        sysusers_dir=systemd.SYSUSERS_DIR,
    )
    if args.print:
        for f in files:
            print(f"# ---- {f.path} (mode {f.mode:04o})\n{f.text}")
        return 0
    try:
        written = systemd.write(files)
    except OSError as exc:
        print(f"nbh systemd: cannot write {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 1
    for path, changed in written:
        print(f"{'wrote    ' if changed else 'unchanged'} {path}")
    units = " ".join(name.removesuffix(".service") for name in (systemd.HELPER, systemd.APP, systemd.CADDY))
    print(
        "next, as root:\n"
        f"  systemd-sysusers {systemd.SYSUSERS_DIR / systemd.SYSUSERS}\n"
        f"  systemctl daemon-reload && systemctl enable --now {units}"
    )
    return 0


def parser() -> argparse.ArgumentParser:
    """The `nbh` argument parser."""
    p = argparse.ArgumentParser(prog="nbh", description="nbhosting administration (as root, on the host)")
    sub = p.add_subparsers(dest="command", required=True)

    def add(name: str, func: Command, help_text: str, *, as_json: bool = False) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=help_text, description=help_text)
        command.set_defaults(func=func)
        if as_json:
            command.add_argument("--json", action="store_true", help="print JSON")
        return command

    c = add("serve", cmd_serve, "run the app and Caddy in the foreground")
    c.add_argument("--demo", action="store_true", help="install the demo course first")
    c.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    c = add("open", cmd_open, "open a notebook for a student, as a click would; prints JSON")
    c.add_argument("course")
    c.add_argument("notebook")
    c.add_argument("student")
    c.add_argument("--no-wait", action="store_true", help="do not wait for Jupyter to answer")
    c = add("ls", cmd_ls, "list every server", as_json=True)
    c.add_argument("--details", action="store_true", help="ask each running server for its kernels and usage")
    c.add_argument("--course", help="only the servers of this course")
    add("show", cmd_show, "show one server, with its usage", as_json=True).add_argument("name")
    add("stop", cmd_stop, "stop a server (the student's next click starts it again)").add_argument("name")
    add("rm", cmd_rm, "remove a server (the student's files are kept)").add_argument("name")
    c = add("restart", cmd_restart, "stop a student's server, start it again on its course's image", as_json=True)
    c.add_argument("course")
    c.add_argument("student")
    c = add("logs", cmd_logs, "print the last lines a student's server printed", as_json=True)
    c.add_argument("course")
    c.add_argument("student")
    lines = f"how many (default {DEFAULT_LOG_LINES}, 1..{MAX_LOG_LINES})"
    c.add_argument("--lines", type=int, default=DEFAULT_LOG_LINES, help=lines)
    add("cull", cmd_cull, "one pass of the idle culler", as_json=True).add_argument(
        "--dry-run", action="store_true", help="only say what would be stopped"
    )
    add("reconcile", cmd_reconcile, "repair records after a crash or a reboot", as_json=True)
    c = add("sign", cmd_sign, "print a launch URL signed for a platform (what its own code would make)")
    for name in ("course", "notebook", "student"):
        c.add_argument(name)
    c.add_argument("--platform", default="demo", help="the platform that signs (default: demo)")
    c.add_argument("--ttl", type=int, default=3600, help="seconds the URL works (default 3600)")
    add("platforms", cmd_platforms, "check the platforms file and list its platforms", as_json=True)
    c = add("lti", cmd_lti, "print the URLs an LMS admin copies to add nbhosting as an LTI tool", as_json=True)
    c.add_argument("--public-key", action="store_true", help="print the tool's LTI 1.3 public key (PEM) instead")
    c = add("helper", cmd_helper, "run the privileged helper in the foreground (the app reaches the host through it)")
    c.add_argument("--prepared", action="store_true", help="the host is prepared (by `nbh serve`): serve at once")
    c.add_argument("--no-cull", action="store_true", help="do not run the culler")
    imagecli.register_image(
        add("image", cmd_image, "build (or find in cache) the notebook image; prints its rootfs"), _hub
    )
    # `nbh course`: courses from git (coursecli), and a course's own image (imagecli: build, images, restart-old)
    imagecli.register_course(add_course_commands(sub), _hub)
    add("demo", cmd_demo, "install the demo courses")
    add("doctor", cmd_doctor, "check what this host gives nbhosting (exit 1 if something required fails)")
    c = add("systemd", cmd_systemd, "write the systemd units of a production host: the helper, the app, Caddy")
    c.add_argument(
        "--dir", type=Path, default=systemd.UNIT_DIR, help=f"where the units go (default {systemd.UNIT_DIR})"
    )
    c.add_argument("--workers", type=int, default=2, help="uvicorn worker processes of the app")
    c.add_argument("--print", action="store_true", help="write nothing: print every file instead")
    studentcli.register(sub, _hub)
    statscli.register(sub)
    staffcli.register(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `nbh`."""
    args = parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"nbh: invalid settings (NBH_* environment variables):\n{exc}", file=sys.stderr)
        return 2
    try:
        code: int = args.func(settings, args)
    except NbhostingError as exc:
        print(f"nbh {args.command}: {exc.message}", file=sys.stderr)
        if exc.log_detail:
            print(f"  detail ({exc.reason}): {exc.log_detail}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
