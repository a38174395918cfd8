"""Courses' own notebook images: built from the course's Containerfile, published as versioned shared rootfs.

A course ships its image's build context in its folder (``courses_dir/<course>/.nbhosting/``): a
``Containerfile`` whose ``FROM ${BASE_IMAGE}`` is given nbhosting's default image (root's podman tag
``localhost/nbhosting-default:<hash>``), and, if it names packages, a ``requirements.txt`` whose wheels are
downloaded on the host for the image's Python and offered to the build in ``wheels/`` (the build has no
network, as the default image's). ``.nbhosting/course.toml``'s ``image`` says which image the course runs
(:func:`course_image_choice`).

A build publishes a new version ``images_dir/course-<course>-<n>-<hash12>/rootfs`` (see
:mod:`nbhosting_core.imageversions`), atomically: a failed build publishes nothing, and the previous version
stays in service. Each build's output is kept in ``images_dir/logs/course-<course>/<time>.log`` (root's), and a
published version keeps its own as ``build.log`` beside its rootfs. :meth:`CourseImages.prune` removes the
versions no server uses (and their podman tags).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..courseconfig import load_course_config
from ..coursemodels import BuildLog
from ..errors import CommandFailed, InvalidConfig, InvalidInput, NotFound
from ..imageversions import ImageVersion, is_up_to_date, newest, next_version, parse_version, prunable, versions_of
from ..naming import validate_course
from ..serveradmin import log_tail
from . import images
from .locks import file_lock
from .runner import CommandRunner, SubprocessRunner

if TYPE_CHECKING:
    from ..settings import Settings

log = logging.getLogger(__name__)
Log = Callable[[str], None]
#: the build context of a course's image, inside the course's folder
CONTEXT_DIR = Path(".nbhosting")
#: the course's configuration; only its ``image`` field is read here
CONFIG_FILE = CONTEXT_DIR / "course.toml"
#: files of the context folder that are not part of the image (changing them triggers no rebuild)
NOT_BUILT = ("course.toml",)
DEFAULT = "default"
OWN = "course"
LOG_SUFFIX = ".log"
#: ``images_dir/.used/<folder>``: touched when a server starts on that image (see :meth:`CourseImages.mark_used`)
USED_MARKS = ".used"
#: the last line of a build's log that published a version, and of one that found it up to date
PUBLISHED, UP_TO_DATE = "published in", "is up to date"
#: how much of a build's log an admin's page shows (its end)
PAGE_LOG_BYTES = 32 * 1024


def course_image_choice(course_dir: Path) -> str:
    """Which image the course in ``course_dir`` runs: ``"default"``, ``"course"`` (its own) or another course's name.

    Read from the ``image`` field of ``.nbhosting/course.toml`` (:mod:`nbhosting_core.courseconfig`); without it,
    ``"course"`` if the course has a ``.nbhosting/Containerfile``, else ``"default"``.

    Raises:
        InvalidInput: the file is refused (its line and why), e.g. ``image`` is not a course name.
    """
    try:
        chosen = load_course_config(course_dir).image
    except InvalidConfig as exc:
        raise InvalidInput(exc.message, log_detail=exc.log_detail) from exc
    return chosen if chosen is not None else _choice_by_default(course_dir)


def _choice_by_default(course_dir: Path) -> str:
    """The image of a course whose configuration names none: its own if it has a Containerfile, else the default."""
    return OWN if (course_dir / CONTEXT_DIR / "Containerfile").is_file() else DEFAULT


def course_tag(version: ImageVersion) -> str:
    """Root's podman tag of a course image version: ``localhost/nbhosting-course:<course>-<n>-<hash12>``."""
    return f"localhost/nbhosting-course:{version.course}-{version.number}-{version.digest}"


def tag_of(folder: str) -> str:
    """Root's podman tag of the image in ``images_dir/<folder>`` (a course version or the default image)."""
    version = parse_version(folder)
    return course_tag(version) if version is not None else images.image_tag(folder)


@dataclass(frozen=True)
class Built:
    """The outcome of :meth:`CourseImages.build`: the version in service now, and whether this call built it."""

    version: ImageVersion
    rootfs: Path
    built: bool
    log: Path | None
    seconds: float


@dataclass(frozen=True)
class Pruned:
    """The outcome of :meth:`CourseImages.prune`: image folders (and podman tags) removed, bytes freed."""

    removed: list[str]
    tags: list[str]
    freed_bytes: int
    dry_run: bool


class CourseImages:
    """The image versions of every course under ``settings.effective_images_dir``: find, build, prune (as root).

    Args:
        settings: where courses and images live, nbhosting's containers.conf.
        runner: runs podman, tar and pip; default the real one.
    """

    def __init__(self, settings: Settings, *, runner: CommandRunner | None = None) -> None:
        self._settings = settings
        self._runner = runner or SubprocessRunner()
        self.images_dir = settings.effective_images_dir

    # ---------------------------------------------------------------------------------------------- finding

    def folders(self) -> list[str]:
        """The names of the published image folders (each holds a ``rootfs``)."""
        try:
            entries = list(os.scandir(self.images_dir))
        except FileNotFoundError:
            return []
        return sorted(e.name for e in entries if not e.name.startswith(".") and os.path.isdir(f"{e.path}/rootfs"))

    def versions(self, course: str) -> list[ImageVersion]:
        """The published versions of ``course``'s own image, oldest first."""
        return versions_of(self.folders(), course)

    def rootfs(self, version: ImageVersion) -> Path:
        """The root filesystem of ``version``."""
        return self.images_dir / version.name / "rootfs"

    def build_log(self, version: ImageVersion) -> Path:
        """The output of the build that published ``version``."""
        return self.images_dir / version.name / "build.log"

    def image_for(self, course: str) -> Path | None:
        """The rootfs new servers of ``course`` get: the newest version of the image it chose; None for the
        default image (also when the image it chose has no version yet: see :func:`course_image_choice`)."""
        course_dir = self._settings.courses_dir / course
        try:
            choice = course_image_choice(course_dir)
        except InvalidInput as exc:  # a refused course.toml: the course is served with the defaults (nbh course show)
            log.debug("course %s: %s; its image by default", course, exc.message)
            choice = _choice_by_default(course_dir)
        if choice == DEFAULT:
            return None
        last = newest(self.folders(), course if choice == OWN else choice)
        return None if last is None else self.rootfs(last)

    def build_logs(self, course: str) -> list[Path]:
        """Logs of ``course``'s builds, newest last (each build's, published or not)."""
        folder = self._logs_dir(course)
        return sorted(folder.glob(f"*{LOG_SUFFIX}")) if folder.is_dir() else []

    def read_build_log(
        self, course: str, *, version: int | None = None, max_bytes: int = PAGE_LOG_BYTES
    ) -> BuildLog | None:
        """The end of the log of ``course``'s last build (published or not), or of the build that published
        ``version``; None when the course was never built. At most ``max_bytes`` are read (the file's end).

        Raises:
            InvalidInput: not a course's name.
            NotFound: ``version`` is not a published version of the course.
        """
        course = validate_course(course)
        if version is None:
            logs = self.build_logs(course)
            path = logs[-1] if logs else None
        else:
            found = [v for v in self.versions(course) if v.number == version]
            if not found:
                raise NotFound(f"Course {course!r} has no image version {version} (nbh course images {course}).")
            path = self.build_log(found[0])
        if path is None:
            return None
        read = tail_of_file(path, max_bytes)
        if read is None:
            return None
        text, at, truncated = read
        last = text.rstrip("\n").rsplit("\n", 1)[-1]
        outcome = "published" if PUBLISHED in last else "up to date" if UP_TO_DATE in last else "failed or unfinished"
        return BuildLog(
            course=course, path=str(path), at=at, version=version, outcome=outcome, log=text, truncated=truncated
        )

    def new_log(self, course: str) -> Path:
        """Where the next build of ``course`` writes its output (a new file named by the time, UTC)."""
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        return self._logs_dir(course) / f"{stamp}-{os.getpid()}{LOG_SUFFIX}"

    # --------------------------------------------------------------------------------------------- building

    def build(self, course: str, *, log: Log = lambda line: None, log_file: Path | None = None) -> Built:
        """Build ``course``'s own image from ``.nbhosting/Containerfile`` and publish it as its next version.

        Nothing is built when the newest version was built from the same context and base (returns it, with
        ``built`` False). The build's every line goes to ``log`` and to ``log_file`` (default :meth:`new_log`).
        One build per course at a time (a file lock); launches meanwhile get the previous version.

        Raises:
            InvalidInput: the course runs the default image or another course's (build that one).
            NotFound: no such course, or no Containerfile in it.
            ImageBuildError: a step failed; nothing was published, the previous version stays in service.
        """
        course = validate_course(course)
        course_dir = self._settings.courses_dir / course
        if not course_dir.is_dir():
            raise NotFound(f"There is no course {course!r} (no folder {course_dir}).")
        choice = course_image_choice(course_dir)
        if choice != OWN:
            what = "the default image" if choice == DEFAULT else f"the image of course {choice!r} (build that one)"
            raise InvalidInput(f"Course {course!r} runs {what}, not an image of its own.")
        if not (course_dir / CONTEXT_DIR / "Containerfile").is_file():
            raise NotFound(f"Course {course!r} has no {CONTEXT_DIR / 'Containerfile'}.")
        started = time.monotonic()
        self.images_dir.mkdir(parents=True, exist_ok=True)
        self.images_dir.chmod(0o755)
        asked = log_file
        log_file = log_file or self.new_log(course)
        log_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with log_file.open("a") as out:

            def both(line: str) -> None:
                out.write(line + "\n")
                out.flush()
                log(line)

            built = self._build(course, course_dir, both, log_file, started)
        if not built.built and asked is None:
            log_file.unlink()  # nothing was built: no log to keep
        return built

    def _build(self, course: str, course_dir: Path, log: Log, log_file: Path, started: float) -> Built:
        conf = self._settings.containers_conf
        default = images.ensure_default_rootfs(self._settings, runner=self._runner, log=log)
        base = images.ensure_tagged(default, containers_conf=conf, runner=self._runner, log=log)
        with tempfile.TemporaryDirectory(prefix=f".course-{course}.", dir=self.images_dir) as staging:
            context = Path(staging) / "context"
            shutil.copytree(course_dir / CONTEXT_DIR, context, ignore=shutil.ignore_patterns(*NOT_BUILT))
            digest = images.context_hash(context, base)
            with file_lock(self.images_dir / f".course-{course}.lock"):
                folders = self.folders()
                if is_up_to_date(folders, course, digest):
                    last = newest(folders, course)
                    assert last is not None
                    log(f"course {course}: version {last.number} {UP_TO_DATE} ({last.name})")
                    return Built(last, self.rootfs(last), False, self.build_log(last), time.monotonic() - started)
                version = next_version(folders, course, digest)
                log(f"course {course}: building version {version.number} ({version.name}) FROM {base}")
                self._publish(version, context, base, log)
        seconds = time.monotonic() - started
        log(f"course {course}: version {version.number} {PUBLISHED} {seconds:.1f} s: {self.rootfs(version)}")
        shutil.copyfile(log_file, self.build_log(version))
        return Built(version, self.rootfs(version), True, self.build_log(version), seconds)

    def _publish(self, version: ImageVersion, context: Path, base: str, log: Log) -> None:
        env = images.podman_env(self._settings.containers_conf)
        requirements = context / "requirements.txt"
        wheels = (
            images.ensure_wheels(requirements, images_dir=self.images_dir, runner=self._runner, log=log)
            if images.has_requirements(requirements)
            else None
        )
        images.remove_stale_temps(self.images_dir, f".{version.name}.")
        tmp = Path(tempfile.mkdtemp(prefix=f".{version.name}.", dir=self.images_dir))
        tag = course_tag(version)
        try:
            ctx = images.prepare_context(context, wheels, tmp / "context")
            cmd = ["podman", "build", "--network", "none", "--build-arg", f"BASE_IMAGE={base}"]
            cmd += ["--file", str(ctx / "Containerfile"), "--tag", tag, str(ctx)]
            images.run_step(self._runner, cmd, env=env, log=log)
            images.export_image(self._runner, tag, tmp / "rootfs", env=env)
            images.fix_rootfs(tmp / "rootfs", self._runner)
            shutil.rmtree(ctx)
            tmp.chmod(0o755)
            tmp.rename(self.images_dir / version.name)
        except BaseException:
            self._untag(tag, env)
            raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    # ---------------------------------------------------------------------------------------------- pruning

    def mark_used(self, image: str | Path) -> None:
        """Note that a server starts on ``image`` (a rootfs path) now: :meth:`prune` keeps an image started on
        within its ``keep_used_within``, whoever started it (another nbhosting sharing the folder included)."""
        folder = Path(image).parent
        if folder.parent != self.images_dir:
            return
        marks = self.images_dir / USED_MARKS
        try:
            marks.mkdir(mode=0o755, exist_ok=True)
            (marks / folder.name).touch()  # made, or its time set to now
        except OSError as exc:  # a read-only folder of images (a host's own layout): nothing is pruned early anyway
            log.debug("images: cannot mark %s as used: %s", folder.name, exc)

    def recently_used(self, within: float) -> set[str]:
        """The image folders a server started on, or that were published, in the last ``within`` seconds."""
        if within <= 0:
            return set()
        since = time.time() - within
        recent = set()
        for name in self.folders():
            for path in (self.images_dir / USED_MARKS / name, self.images_dir / name):
                try:
                    if path.stat().st_mtime >= since:
                        recent.add(name)
                        break
                except FileNotFoundError:
                    continue
        return recent

    def prune(
        self,
        *,
        in_use: Iterable[str],
        in_service: Iterable[Path],
        dry_run: bool = False,
        keep_used_within: float = 0,
    ) -> Pruned:
        """Remove the image folders no server uses, with their podman tags; see :func:`imageversions.prunable`.

        ``in_use``: every server's image (a rootfs path), running or stopped. ``in_service``: images new servers
        may get besides each course's newest version (the default image). A default image built after one in
        service is kept too: it is no one's past, but another nbhosting's present (a newer version of it, or a
        branch sharing the folder). ``keep_used_within``: seconds; an image published or started on more recently
        is kept too (see :meth:`mark_used`). With ``dry_run``, only say.
        """
        used = {Path(image).parent.name for image in in_use if Path(image).parent.parent == self.images_dir}
        used |= self.recently_used(keep_used_within)
        service = {p.parent.name for p in in_service}
        service |= self._defaults_built_after(
            min((p.parent.stat().st_mtime for p in in_service if p.exists()), default=None)
        )
        doomed = prunable(self.folders(), in_use=used, in_service=service)
        freed = 0
        tags = [tag_of(name) for name in doomed]
        env = images.podman_env(self._settings.containers_conf)
        for name in doomed:
            folder = self.images_dir / name
            freed += disk_usage(folder)
            if dry_run:
                continue
            trash = self.images_dir / f".trash-{name}"
            try:
                folder.rename(trash)  # gone from every listing at once; the space comes back below
            except FileNotFoundError:
                continue  # another prune took it
            shutil.rmtree(trash, ignore_errors=True)
            with contextlib.suppress(FileNotFoundError):
                (self.images_dir / USED_MARKS / name).unlink()
            self._untag(tag_of(name), env)
        return Pruned(doomed, tags, freed, dry_run)

    # ------------------------------------------------------------------------------------------- internals

    def _defaults_built_after(self, when: float | None) -> set[str]:
        if when is None:
            return set()
        return {
            name
            for name in self.folders()
            if name.startswith("default-") and (self.images_dir / name).stat().st_mtime > when
        }

    def _logs_dir(self, course: str) -> Path:
        return self.images_dir / "logs" / f"course-{course}"

    def _untag(self, tag: str, env: dict[str, str]) -> None:
        """Remove ``tag`` from root's podman; an image others were built FROM keeps its layers (untagged)."""
        if not images.image_exists(self._runner, tag, env):
            return
        try:
            self._runner.run(["podman", "rmi", tag], env=env, timeout=120)
        except CommandFailed:
            with contextlib.suppress(CommandFailed):
                self._runner.run(["podman", "untag", tag, tag], env=env, timeout=120)


def tail_of_file(path: Path, max_bytes: int) -> tuple[str, float, bool] | None:
    """(the end of the regular file ``path``, at most ``max_bytes`` bytes from its first whole line, as
    :func:`~nbhosting_core.serveradmin.log_tail` gives it; its modification time; whether it was cut), or None when
    there is no such regular file. A symlink is never followed; at most ``max_bytes`` + 1 bytes are read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:  # ELOOP: a symlink
        log.warning("build log %s not read: %s", path, exc)
        return None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            return None
        start = max(0, info.st_size - max_bytes - 1)  # one byte more: whether the kept end starts a line
        file.seek(start)
        data = file.read(max_bytes + 1)
    return log_tail([data], max_bytes), info.st_mtime, info.st_size > max_bytes


def disk_usage(path: Path) -> int:
    """Bytes ``path`` occupies on disk (every file once, hard links counted once, symlinks not followed)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            try:
                info = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if (info.st_dev, info.st_ino) not in seen:
                seen.add((info.st_dev, info.st_ino))
                total += info.st_blocks * 512
    return total
