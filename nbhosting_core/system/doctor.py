"""What this host gives nbhosting: required tools, and the features that depend on the host."""

from __future__ import annotations

import os
import re
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from ..containers import SHM_SIZE, TMPFS
from ..egress import BLOCKED_V4, BLOCKED_V6
from ..errors import CommandFailed, InvalidConfig
from ..origins import frame_ancestors, site_origin
from ..platforms import PlatformsFile
from ..settings import Settings, is_local_host
from ..throttle import ThrottlePolicy
from .cgroupfs import meminfo
from .cgroups import limiter_for
from .mounts import containing_mount, mounts
from .nftables import egress_filter_installed, nft, refused_packets
from .quota import quota_for
from .runner import CommandRunner, SubprocessRunner

#: the image's wrapper that makes kernels and terminals the OOM killer's first choice (containerfiles/default)
EXPENDABLE = "/usr/local/bin/nbhosting-expendable"


@dataclass(frozen=True)
class Check:
    """One finding: ``required`` checks that fail stop nbhosting from working."""

    name: str
    ok: bool
    detail: str
    required: bool = True


def _version(runner: CommandRunner, argv: list[str]) -> str | None:
    try:
        out = runner.run(argv, timeout=20)
    except CommandFailed:
        return None
    match = re.search(r"v?(\d+\.\d+(\.\d+)?)", out)
    return match.group(1) if match else None


def subid_overlaps(entries: list[tuple[str, int, int]], first: int, last: int, prefix: str) -> list[str]:
    """Names of /etc/subuid entries, other than nbhosting's own (``prefix``), overlapping [first, last]."""
    return [
        name
        for name, start, count in entries
        if not name.startswith(prefix) and start <= last and start + count - 1 >= first
    ]


def parse_subids(text: str) -> list[tuple[str, int, int]]:
    """The (owner, first, count) entries of an /etc/subuid or /etc/subgid text (pure)."""
    entries = []
    for line in text.splitlines():
        parts = line.split(":")
        if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
            entries.append((parts[0], int(parts[1]), int(parts[2])))
    return entries


def _subid_entries(path: Path) -> list[tuple[str, int, int]]:
    try:
        return parse_subids(path.read_text())
    except OSError:
        return []


def limit_checks(settings: Settings) -> list[Check]:
    """What one student's server may use on this host, limit by limit, and what is NOT enforced."""
    limiter = limiter_for(settings)
    checks = [Check("limits", "not enforced" not in limiter.description, limiter.description, required=False)]
    checks += [Check(item.name, item.enforced, item.detail, required=False) for item in limiter.enforcement()]
    rootfs = settings.image_rootfs
    expendable = rootfs is not None and (rootfs / EXPENDABLE.lstrip("/")).exists()
    checks.append(
        Check(
            "oom order",
            expendable,
            "a full server loses a kernel (or a terminal's process), not its Jupyter server: the image starts "
            "them through nbhosting-expendable"
            if expendable
            else f"the image has no {EXPENDABLE}: a full server may lose its Jupyter server before a kernel",
            required=False,
        )
    )
    memory = ", ".join(f"{path} {size // 2**20} MiB" for path, (size, _) in TMPFS.items())
    checks.append(
        Check(
            "container tmp",
            True,
            f"{memory}, /dev/shm {SHM_SIZE // 2**20} MiB: memory, within the server's limit; also writable: "
            f"/nbhosting/run ({settings.socket_dir_size // 1024} KiB), /dev/mqueue (RLIMIT_MSGQUEUE), "
            "/home/student (the workspace); /, /run (the container's root's) and the rest are read-only",
            required=False,
        )
    )
    checks.append(
        Check(
            "container log",
            True,
            f"{settings.log_size_max // 1024} KiB per server (conmon empties the log when it is full: "
            "older lines are lost)",
            required=False,
        )
    )
    return checks


def door_checks(settings: Settings, *, mem_total: int | None = None) -> list[Check]:
    """What the door lets launches make: the creation rates, and the cap of running servers (and where it
    comes from)."""
    s = settings
    memory = meminfo("MemTotal") if mem_total is None else mem_total
    policy = ThrottlePolicy.from_settings(s, mem_total=memory)
    if s.max_running is None:
        source = (
            f"{s.students_memory_fraction:g} x {memory / 2**30:.1f} GiB of memory / "
            f"{s.server_memory_estimate / 2**20:.0f} MiB a server typically uses; NBH_MAX_RUNNING to choose"
        )
    else:
        source = "NBH_MAX_RUNNING"
    return [
        Check(
            "creation rate",
            True,
            f"launches that create an account or a container: per platform {policy.platform.burst} at once, then "
            f"{policy.platform.per_minute:g}/min; per client address (IPv6: per /64) {policy.client.burst} at once, "
            f"then {policy.client.per_minute:g}/min; beyond: 503 + Retry-After, the page retries by itself",
            required=False,
        ),
        Check(
            "running cap",
            True,
            f"at most {policy.max_running} servers run at once ({source}); beyond: 503, retry after "
            f"{s.busy_retry_after} s; counters in {s.throttle_dir}",
            required=False,
        ),
    ]


def egress_check(settings: Settings, runner: CommandRunner) -> Check:
    """Whether kernels' egress is filtered here, what it refuses and allows."""
    s = settings
    if not s.egress:
        return Check("egress filter", True, "egress is off: kernels have no network at all", required=False)
    if nft() is None:
        return Check(
            "egress filter",
            False,
            "nft is missing: kernels' egress cannot be filtered, so nbh serve refuses to start "
            "(apt-get install nftables, or NBH_EGRESS=false)",
        )
    allowed = ", ".join(str(n) for n in s.egress_allow) or "nothing more"
    what = (
        f"table inet {s.egress_table}, uids {s.uid_min}-{s.uid_max} and their subordinate ids: refused the host's "
        f"own addresses, {', '.join(BLOCKED_V4 + BLOCKED_V6)}; allowed {allowed}, and DNS to the host's resolvers"
    )
    if not egress_filter_installed(s, runner):
        return Check("egress filter", False, f"not installed yet (nbh serve installs it): {what}", required=False)
    refused = refused_packets(s, runner)
    return Check("egress filter", True, f"{what}; {refused or 0} packets refused so far")


def courses_check(settings: Settings) -> Check:
    """The courses: git to clone and pull them, and those whose last pull failed or whose course.toml is refused."""
    from ..courses import Courses  # the registry runs git: imported only when asked

    if shutil.which("git") is None:
        return Check(
            "courses", False, "git is missing (apt-get install git): courses cannot come from git", required=False
        )
    views = Courses(settings).list_courses()
    failed = [v.course.name for v in views if v.course.last_pull is not None and not v.course.last_pull.ok]
    refused = [v.course.name for v in views if v.config_error]
    problems = [f"last pull failed: {', '.join(failed)}"] if failed else []
    problems += [f"course.toml refused: {', '.join(refused)}"] if refused else []
    interval = settings.course_pull_interval
    pulls = f"pulled every {interval:.0f} s" if interval else "pulled by hand (NBH_COURSE_PULL_INTERVAL=0)"
    detail = f"{len(views)} active course(s), {pulls}" + (
        f"; {'; '.join(problems)} (nbh course show)" if problems else ""
    )
    return Check("courses", not problems, detail, required=False)


def _platforms_check(settings: Settings) -> Check:
    try:
        platforms = PlatformsFile(settings.effective_platforms_file).check()
    except InvalidConfig as exc:
        return Check("platforms", False, exc.message)
    if not platforms.platform:
        return Check(
            "platforms", True, f"none in {settings.effective_platforms_file}: no launch from outside", required=False
        )
    detail = ", ".join(f"{p.name} ({'/'.join(p.methods)})" for p in platforms.platform)
    legacy = platforms.legacy()
    if legacy is not None:
        return Check(
            "platforms",
            False,
            f"{detail}; WARNING: {legacy.name} may send unsigned launches (legacy), checked only by their Referer "
            f"({', '.join(legacy.origins)})",
            required=False,
        )
    return Check("platforms", True, detail)


def origins_check(settings: Settings) -> Check:
    """Where students' servers are served from, and what that leaves (a warning in origin mode ``path``)."""
    platforms = PlatformsFile(settings.effective_platforms_file).current()
    framing = f"framed by {frame_ancestors(settings, platforms.origins())}"
    if settings.origin_mode == "path":
        return Check(
            "origins",
            False,
            f"WARNING: origin mode 'path': every server under {site_origin(settings)}/{settings.url_prefix}/<key>/, "
            "one origin shared by all students (a page a student serves is same-origin with every other's Jupyter); "
            f"{framing}",
            required=False,
        )
    domain = settings.effective_servers_domain
    if is_local_host(domain):
        dns = "*.localhost resolves to the loopback by itself"
    else:
        dns = f"needs a wildcard DNS record *.{domain}"
    tls = {
        "internal": "a wildcard certificate from Caddy's internal CA",
        "files": f"the wildcard certificate {settings.servers_tls_cert}",
        "on_demand": "one certificate per server from the ACME CA (each server's host name, its key, goes into "
        "public Certificate Transparency logs; a wildcard certificate does not)",
    }[settings.servers_tls]
    return Check("origins", True, f"each server on its own origin https://<key>.{domain} ({dns}; {tls}); {framing}")


def diagnose(settings: Settings, runner: CommandRunner | None = None) -> list[Check]:
    """Every check, in the order an admin would fix them."""
    runner = runner or SubprocessRunner()
    checks = []
    podman = _version(runner, ["podman", "--version"]) if shutil.which("podman") else None
    checks.append(
        Check(
            "podman",
            podman is not None and tuple(map(int, podman.split(".")[:2])) >= (4, 3),
            f"podman {podman}" if podman else "podman is missing (apt-get install podman)",
        )
    )
    for tool, package in (
        ("runc", "runc"),
        ("newuidmap", "uidmap"),
        ("caddy", "caddy"),
        ("useradd", "passwd"),
        ("unshare", "util-linux"),
    ):
        found = shutil.which(tool)
        checks.append(Check(tool, found is not None, found or f"{tool} is missing (apt-get install {package})"))
    unified = Path("/sys/fs/cgroup/cgroup.controllers").exists()
    checks.append(
        Check(
            "cgroups",
            True,
            "v2 (unified)" if unified else "v1/hybrid (rootless podman cannot limit; root does)",
            required=False,
        )
    )
    checks += limit_checks(settings)
    checks.append(
        Check(
            "systemd",
            True,
            "PID 1 is systemd"
            if Path("/run/systemd/system").exists()
            else "no systemd: cgroupfs manager, file events (nbhosting's containers.conf)",
            required=False,
        )
    )
    table = mounts()
    here = containing_mount(settings.jupyter_sockets_dir, table)
    checks.append(
        Check(
            "socket folders",
            here is not None and here.shared,
            f"{settings.jupyter_sockets_dir} is a shared mount: each server's socket folder is a "
            f"{settings.socket_dir_size // 1024} KiB tmpfs"
            if here is not None and here.shared
            else f"{settings.jupyter_sockets_dir} is not a shared mount yet (nbh serve makes it one)",
            required=False,
        )
    )
    quota = quota_for(settings, runner)
    checks.append(
        Check(
            "disk quota",
            quota.hard,
            f"{settings.workspace_quota // 2**20} MiB per student, {quota.description}",
            required=False,
        )
    )
    tun = Path("/dev/net/tun")
    tun_ok = tun.exists() and bool(tun.stat().st_mode & stat.S_IROTH and tun.stat().st_mode & stat.S_IWOTH)
    checks.append(
        Check(
            "egress",
            tun_ok or not settings.egress,
            "kernels can reach the network (slirp4netns)"
            if tun_ok
            else "/dev/net/tun is not usable by students: chmod 0666 /dev/net/tun, or set NBH_EGRESS=false",
            required=settings.egress,
        )
    )
    checks.append(egress_check(settings, runner))
    first = settings.subid_base
    last = first + (settings.uid_max - settings.uid_min + 1) * settings.subid_count - 1
    clash = subid_overlaps(_subid_entries(Path("/etc/subuid")), first, last, settings.user_prefix)
    checks.append(
        Check(
            "subuid space",
            last < 2**32 and not clash,
            f"{settings.uid_max - settings.uid_min + 1} students x {settings.subid_count} ids "
            f"from {first}" + (f"; overlaps {', '.join(clash[:5])}" if clash else ""),
        )
    )
    rootfs = settings.image_rootfs
    checks.append(
        Check(
            "image",
            rootfs is not None and (rootfs / "usr/local/bin/nbhosting-jupyter").exists(),
            str(rootfs) if rootfs else "no image built yet (nbh image)",
        )
    )
    checks.append(
        Check(
            "culling",
            True,
            f"servers idle {settings.idle_timeout / 3600:g} h are stopped, older than "
            f"{settings.max_age / 3600:g} h restarted when idle; kernels idle "
            f"{settings.kernel_idle_timeout / 60:g} min shut down",
            required=False,
        )
    )
    checks.append(_platforms_check(settings))
    checks.append(courses_check(settings))
    checks += door_checks(settings)
    checks.append(origins_check(settings))
    checks.append(
        Check(
            "root",
            os.geteuid() == 0,
            "running as root"
            if os.geteuid() == 0
            else "nbhosting must run as root (it creates users and runs their podman)",
        )
    )
    return checks
