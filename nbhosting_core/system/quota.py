"""How much a student may keep in their workspaces: a hard cap where the host allows it, else measured.

* ``loop`` (a hard cap, any Linux with loop devices): each student's home (all their workspaces) is an ext4
  filesystem of ``workspace_quota`` bytes, in a sparse image ``DATA_ROOT/quota/<user>.ext4`` that takes on
  the host only what the student stores (``discard`` gives deleted files back). A write past the cap fails
  with "No space left on device" inside the student's own filesystem; nobody else notices. It is mounted on
  the student's home when they launch, and unmounted once none of their servers runs.
* ``measured`` (hosts without loop devices): usage is measured (``du``, run as the student); a student over
  quota is told so at launch, and the culler stops their running servers.
* ``off``: nothing is capped.

Filesystem quotas (ext4/XFS project quotas) would be the natural hard cap, but need kernel quota support,
which many hosts (this project's test machines included) do not have; a loop image needs nothing of the kind.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ..errors import CommandFailed, OverQuota, StartFailed
from ..models import Account
from .mounts import ensure_shared, is_mount_point
from .runner import CommandRunner
from .tree import DIR_FLAGS, ensure_dir

if TYPE_CHECKING:
    from ..settings import Settings

log = logging.getLogger(__name__)
#: the journal takes 1/64 of the filesystem, between ext4's 4 MiB minimum and 64 MiB
JOURNAL_FRACTION, JOURNAL_MIN_MIB, JOURNAL_MAX_MIB = 64, 4, 64


class Quota(Protocol):
    """Keeps each student within ``workspace_quota``."""

    #: what ``nbh doctor`` says of it
    description: str
    #: True if a write past the cap fails by itself (nothing to measure)
    hard: bool

    def prepare(self, account: Account) -> None:
        """Make the student's home ready to be written to (call under the student's lock, before copying)."""
        ...

    def check(self, account: Account) -> None:
        """Raise :class:`~nbhosting_core.errors.OverQuota` if the student may not start a server now."""
        ...

    def usage(self, user: str) -> tuple[int | None, int]:
        """(bytes used or None if unknown, bytes allowed) of student ``user``."""
        ...

    def release(self, user: str) -> bool:
        """The student has no running server any more (call under the student's lock); True if released."""
        ...

    def held(self) -> list[str]:
        """Users whose storage is held (e.g. mounted) now."""
        ...


class NoQuota:
    """Nothing is capped (``quota_mode = "off"``)."""

    description = "off: students' workspaces are not capped"
    hard = False

    def __init__(self, settings: Settings) -> None:
        self._limit = settings.workspace_quota

    def prepare(self, account: Account) -> None:
        """Nothing to prepare."""

    def check(self, account: Account) -> None:
        """Never over quota."""

    def usage(self, user: str) -> tuple[int | None, int]:
        """Unknown."""
        return None, self._limit

    def release(self, user: str) -> bool:
        """Nothing held."""
        return False

    def held(self) -> list[str]:
        """Nothing held."""
        return []


class MeasuredQuota(NoQuota):
    """Usage measured with ``du`` as the student; over quota, no server starts (the culler stops running ones)."""

    description = "measured: a student over quota is told at launch and stopped by the culler (no hard cap)"

    def __init__(self, settings: Settings, runner: CommandRunner) -> None:
        super().__init__(settings)
        self._homes = settings.students_dir
        self._runner = runner

    def check(self, account: Account) -> None:
        """Raise OverQuota when the student's home holds more than the quota."""
        used, limit = self.usage(account.user)
        if used is not None and used > limit:
            raise OverQuota(_over_message(used, limit), log_detail=f"{account.user} uses {used} bytes of {limit}")

    def usage(self, user: str) -> tuple[int | None, int]:
        """``du`` of the student's home, run as the student (root never walks their files)."""
        home = self._homes / user
        try:
            info = os.stat(home, follow_symlinks=False)
        except FileNotFoundError:
            return 0, self._limit
        argv = [
            "setpriv",
            f"--reuid={info.st_uid}",
            f"--regid={info.st_gid}",
            "--clear-groups",
            "--",
            "du",
            "-s",
            "-B1",
            "--one-file-system",
            str(home),
        ]
        try:
            out = self._runner.run(argv, timeout=120)
        except CommandFailed as exc:
            log.warning("quota: cannot measure %s: %s", user, exc)
            return None, self._limit
        head = out.split()[0] if out.split() else ""
        return (int(head) if head.isdigit() else None), self._limit


class LoopQuota(NoQuota):
    """Each student's home is their own ext4 filesystem of ``workspace_quota`` bytes (a hard cap)."""

    description = "hard cap: each student's files on their own loop-mounted ext4 image"
    hard = True

    def __init__(self, settings: Settings, runner: CommandRunner) -> None:
        super().__init__(settings)
        self._settings = settings
        self._runner = runner
        self._images = settings.quota_dir
        self._homes = settings.students_dir

    def image(self, user: str) -> Path:
        """The sparse image of student ``user``."""
        return self._images / f"{user}.ext4"

    def prepare(self, account: Account) -> None:
        """Mount the student's filesystem on their home (made, or grown to the quota, first)."""
        home = account.home
        if is_mount_point(home):
            return
        image = self.image(account.user)
        if not image.exists():
            if any(os.scandir(home)):
                # files from before quotas (or another mode): never hide them under a new filesystem
                log.warning("quota: %s has files outside any image; their home is not capped", account.user)
                return
            self._make(image, account)
        elif image.stat().st_size < self._limit:
            self._grow(image)
        if not self._detached(image):
            raise StartFailed(
                "Your workspace is busy; please retry in a minute.",
                log_detail=f"{image} is attached to a loop device but not mounted on {home}",
            )
        self._runner.run(
            ["mount", "-t", "ext4", "-o", "loop,nosuid,nodev,discard,noinit_itable", str(image), str(home)]
        )
        fd = os.open(home, DIR_FLAGS)  # the new filesystem's root: the student's, private, like any home
        try:
            os.fchown(fd, account.uid, account.gid)
            os.fchmod(fd, 0o700)
        finally:
            os.close(fd)
        log.info("quota: mounted the workspace of user=%s (%d MiB)", account.user, self._limit // 2**20)

    def _make(self, image: Path, account: Account) -> None:
        ensure_dir(self._images, 0, 0, 0o700)
        tmp = image.with_name(f".{image.name}.{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            os.ftruncate(fd, self._limit)  # sparse: the host stores only what is written
        finally:
            os.close(fd)
        self._runner.run(
            [
                "mkfs.ext4",
                "-q",
                "-F",
                "-m",
                "0",
                "-J",
                f"size={journal_mib(self._limit)}",
                "-L",
                "nbhosting",
                "-E",
                f"root_owner={account.uid}:{account.gid},lazy_itable_init=1,lazy_journal_init=1",
                str(tmp),
            ]
        )
        os.replace(tmp, image)

    def _grow(self, image: Path) -> None:
        size = image.stat().st_size
        self._runner.run(["e2fsck", "-f", "-p", str(image)], timeout=600)
        os.truncate(image, self._limit)
        self._runner.run(["resize2fs", str(image)], timeout=600)
        log.info("quota: grew %s from %d to %d MiB", image.name, size // 2**20, self._limit // 2**20)

    def _detached(self, image: Path, wait: float = 5.0) -> bool:
        """True once no loop device holds ``image`` (a loop device lets go of it shortly after an unmount)."""
        deadline = time.monotonic() + wait
        while self._runner.run(["losetup", "--associated", str(image)]).strip():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def usage(self, user: str) -> tuple[int | None, int]:
        """Bytes used in the student's filesystem while it is mounted (else what the image holds on disk)."""
        home = self._homes / user
        if is_mount_point(home):
            stats = os.statvfs(home)
            return (stats.f_blocks - stats.f_bfree) * stats.f_frsize, self._limit
        try:
            return os.stat(self.image(user)).st_blocks * 512, self._limit
        except FileNotFoundError:
            return 0, self._limit

    def release(self, user: str) -> bool:
        """Unmount the student's filesystem (never lazily: a busy one stays mounted, and is never mounted twice)."""
        home = self._homes / user
        if not is_mount_point(home):
            return False
        try:
            self._runner.run(["umount", str(home)])
        except CommandFailed as exc:
            log.warning("quota: the workspace of user=%s is busy, left mounted: %s", user, exc)
            return False
        if not self._detached(self.image(user)):
            log.warning("quota: the image of user=%s is still attached after its unmount", user)
        log.info("quota: unmounted the workspace of user=%s", user)
        return True

    def held(self) -> list[str]:
        """Students whose filesystem is mounted."""
        from .mounts import mounts

        return sorted(m.target.name for m in mounts() if m.target.parent == self._homes)


def journal_mib(size: int) -> int:
    """The journal of a student's filesystem of ``size`` bytes, in MiB (pure)."""
    return max(JOURNAL_MIN_MIB, min(JOURNAL_MAX_MIB, size // 2**20 // JOURNAL_FRACTION))


def _over_message(used: int, limit: int) -> str:
    return (
        f"Your files take {used / 2**20:.0f} MiB, more than the {limit / 2**20:.0f} MiB you may keep. Ask your "
        "course staff to help you remove some (your work is kept)."
    )


def loop_available() -> bool:
    """True if this host can mount loop images (root, /dev/loop-control, mkfs.ext4)."""
    return os.geteuid() == 0 and Path("/dev/loop-control").exists() and shutil.which("mkfs.ext4") is not None


def quota_for(settings: Settings, runner: CommandRunner) -> Quota:
    """The quota ``settings.quota_mode`` asks for (``auto``: loop where available, else measured)."""
    mode = settings.quota_mode
    if mode == "auto":
        mode = "loop" if loop_available() else "measured"
    if mode == "loop":
        return LoopQuota(settings, runner)
    if mode == "measured":
        return MeasuredQuota(settings, runner)
    return NoQuota(settings)


def prepare_host(settings: Settings, runner: CommandRunner) -> None:
    """What the quota needs of the host before any student's podman starts (loop: a shared students folder)."""
    if isinstance(quota_for(settings, runner), LoopQuota):
        ensure_shared(settings.students_dir, runner)
