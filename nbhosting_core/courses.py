"""The courses of a host: git checkouts under ``DATA_ROOT/courses/<name>/``, and nbhosting's metadata of each.

A course made by :meth:`Courses.create` is a clone of a repository (a URL, or a local repository); its metadata
(where it comes from, its branch, active or archived, its last pull: when, ok or failed, which commit, git's log)
is a JSON file in a root-only folder, ``DATA_ROOT/course-meta/<name>.json``, written atomically. A plain folder
under ``courses/`` (made by hand, as before) is a *local* course: no remote, never pulled, served as it is.

A pull fetches the course's branch, hard-resets the checkout to it and removes untracked files (submodules too;
ignored files stay): the course then serves the new material and nothing else. Students' copies are in their own
workspaces and are never touched by a pull. A pull that fails (a remote that does not answer or has gone, a branch
that vanished: said in plain words) is recorded with git's log, and the course keeps serving its current checkout.
Every operation is logged (logger ``nbhosting_core.courses``) with what it did and how long it took.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from .courseconfig import CourseConfig, load_course_config
from .coursemodels import Course, CourseState, CourseView, DeletePlan, PullResult
from .coursework import CourseWork
from .errors import CommandFailed, CourseArchived, InvalidConfig, InvalidInput, NbhostingError, NotFound
from .naming import is_course_name, validate_course
from .settings import Settings
from .system.git import Git, check_branch, check_remote, local_path
from .system.locks import file_lock
from .system.records import Records
from .system.runner import CommandRunner, SubprocessRunner
from .system.tree import readable_by_all

log = logging.getLogger(__name__)
#: what a pull runs after its reset, in the checkout and in each submodule: untracked files and folders go (a
#: removed submodule's folder, a file left by hand), so that the course serves its commit and nothing else;
#: ``-ff`` removes a folder that is a repository of its own, and ignored files stay (no ``-x``: a teacher's
#: generated data, listed in .gitignore). Nothing of nbhosting's lives in a checkout: its metadata is in
#: ``course-meta/``, an image's build copies ``.nbhosting/`` (tracked) elsewhere, clones start beside it.
CLEAN = ("clean", "-ffd", "--quiet")
#: what git (LC_ALL=C) says when the branch a course follows no longer exists on its remote
GONE_BRANCH = "couldn't find remote ref"
#: how much of git's output a pull keeps (its end)
MAX_LOG = 20_000
Progress = Callable[[str], None]
__all__ = ["Course", "CourseState", "CourseView", "Courses", "DeletePlan", "PullResult"]


class Courses:
    """The host's courses: create from git, list, show, pull, archive, delete.

    Args:
        settings: where courses (``courses_dir``), their metadata and students' workspaces are.
        runner: runs git; default the real one.
        clock: seconds since the epoch; tests pass a fake.
        servers: the names of the servers of a course (a deletion refuses while there are any); default: the
            podman backend's records.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        runner: CommandRunner | None = None,
        clock: Callable[[], float] = time.time,
        servers: Callable[[str], list[str]] | None = None,
    ) -> None:
        self.settings = settings
        self.git = Git(runner or SubprocessRunner())
        self._clock = clock
        self._servers = servers or self._recorded_servers
        self._work = CourseWork(settings)

    # ------------------------------------------------------------------------------------------ reading

    def path(self, name: str) -> Path:
        """The checkout (or folder) of course ``name``; the name is validated, the folder need not exist."""
        return self.settings.courses_dir / validate_course(name)

    def meta(self, name: str) -> Course | None:
        """The metadata of ``name``, or None (a local folder, or no such course)."""
        try:
            return Course.model_validate_json((self._meta_dir / f"{validate_course(name)}.json").read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValidationError) as exc:
            log.error("course %s: its metadata cannot be read (%s): taken as a local course", name, exc)
            return None

    def is_archived(self, name: str) -> bool:
        """True if ``name`` is archived (its launches are refused); one small file read."""
        meta = self.meta(name)
        return meta is not None and meta.state is CourseState.ARCHIVED

    def show(self, name: str) -> CourseView:
        """Course ``name``: metadata, commit, configuration (or why it is refused).

        Raises:
            InvalidInput: not a course name.
            NotFound: no such course.
        """
        meta = self.meta(name)
        path = self.path(name)
        if meta is None and not path.is_dir():
            raise NotFound(f"There is no course named {name!r} on this server.")
        return self._view(meta or Course(name=name), path)

    def list_courses(self, *, archived: bool = False) -> list[CourseView]:
        """Every course, sorted by name; archived ones only with ``archived``."""
        names = set()
        if self.settings.courses_dir.is_dir():
            for entry in self.settings.courses_dir.iterdir():
                if entry.is_dir() and not entry.is_symlink() and is_course_name(entry.name):
                    names.add(entry.name)
        if self._meta_dir.is_dir():
            names |= {p.stem for p in self._meta_dir.glob("*.json") if is_course_name(p.stem)}
        views = [self.show(name) for name in sorted(names)]
        return [v for v in views if archived or v.course.state is CourseState.ACTIVE]

    def config(self, name: str) -> CourseConfig:
        """The configuration course ``name`` is served with: its file's, or the defaults when it is refused."""
        try:
            return load_course_config(self.path(name))
        except InvalidConfig as exc:
            log.debug("course %s: %s; served with the defaults", name, exc.message)  # a pull recorded it
            return CourseConfig()

    # ------------------------------------------------------------------------------------------ changing

    def create(
        self, name: str, remote: str, *, branch: str | None = None, progress: Progress | None = None
    ) -> CourseView:
        """Clone ``remote`` (on ``branch``, default its own) as course ``name``, and record it.

        The clone is made beside the courses under a hidden name, then renamed: a course is never half there.

        Raises:
            InvalidInput: a refused name, remote or branch; a course of that name exists; a local path that is not
                a git repository.
            CommandFailed: git could not clone (its output says why); nothing is left behind.
        """
        started, at = time.monotonic(), self._clock()
        name = validate_course(name)
        remote = check_remote(remote)
        branch = check_branch(branch) if branch is not None else None
        target = self.path(name)
        local = local_path(remote)
        if local is not None:
            self.git.check_repository(local)
        with self._lock(name):
            if target.exists() or target.is_symlink() or self.meta(name) is not None:
                raise InvalidInput(f"A course named {name!r} exists already (`nbh course delete {name}` first).")
            self.settings.courses_dir.mkdir(parents=True, exist_ok=True)
            for stale in self.settings.courses_dir.glob(f".clone-{name}-*"):  # a clone a crash cut (under this lock)
                shutil.rmtree(stale, ignore_errors=True)
            scratch = self.settings.courses_dir / f".clone-{name}-{secrets.token_hex(4)}"
            lines: list[str] = []
            argv = ["clone", "--progress", "--recurse-submodules", "--no-hardlinks"]
            argv += ["--branch", branch] if branch else []
            try:
                self.git.run([*argv, "--", remote, str(scratch)], progress=_collect(lines, progress))
                branch = branch or self.git.current_branch(scratch)
                readable_by_all(scratch)
                os.rename(scratch, target)
            except BaseException:
                shutil.rmtree(scratch, ignore_errors=True)
                log.warning(
                    "course %s: cloning %s failed (by %s) in %.1fs", name, remote, _who(), time.monotonic() - started
                )
                raise
            pull = self._result(name, target, at=at, started=started, ok=True, lines=lines)
            course = Course(name=name, remote=remote, branch=branch, created_at=at, last_pull=pull)
            self._store(course)
        log.info(
            "course %s: created from %s branch=%s commit=%s (by %s) in %.1fs",
            name,
            remote,
            branch,
            (pull.commit or "-")[:12],
            _who(),
            pull.seconds,
        )
        return self._view(course, target)

    def pull(self, name: str, *, progress: Progress | None = None, by: str | None = None) -> PullResult:
        """Fetch the course's branch, hard-reset its checkout to it and remove what git does not track (but ignored
        files), submodules too; record how it went.

        A failure is not raised: it is recorded (and returned) with git's log, and the course keeps serving what
        it had. A pull that brings a refused ``course.toml`` works, and records why the file is refused (the
        course is then served with the defaults). Students' copies are never touched. ``by``: who asks, for the log
        (default: this process's uid).

        Raises:
            InvalidInput: a refused name, or a local course (no remote to pull from).
            NotFound: no such course.
            CourseArchived: the course is archived (never pulled).
        """
        meta = self.meta(name)
        if meta is None:
            self.show(name)  # NotFound, or:
            raise InvalidInput(f"Course {name!r} is a local folder: it has no remote to pull from.")
        if meta.state is CourseState.ARCHIVED:
            raise CourseArchived(f"Course {name!r} is archived: unarchive it to pull it.")
        if meta.remote is None or meta.branch is None:
            raise InvalidInput(f"Course {name!r} has no remote (or no branch) to pull from.")
        started, at = time.monotonic(), self._clock()
        checkout = self.path(name)
        lines: list[str] = []
        collect = _collect(lines, progress)
        with self._lock(name):
            before = self.git.head(checkout)
            ok = True
            try:
                self._git_in(
                    checkout,
                    "fetch",
                    "--progress",
                    "--prune",
                    "--no-tags",
                    "origin",
                    f"+refs/heads/{meta.branch}:refs/remotes/origin/{meta.branch}",
                    progress=collect,
                )
                with self.changing(name):  # no student's copy is read from a half-written file
                    self._git_in(checkout, "reset", "--hard", f"refs/remotes/origin/{meta.branch}", progress=collect)
                    self._git_in(checkout, *CLEAN, progress=collect)
                    self._git_in(checkout, "submodule", "sync", "--recursive", progress=collect)
                    self._git_in(checkout, "submodule", "update", "--init", "--recursive", "--force", progress=collect)
                    self._git_in(
                        checkout, "submodule", "--quiet", "foreach", "--recursive", "git", *CLEAN, progress=collect
                    )
                    readable_by_all(checkout)
            except CommandFailed as exc:
                ok = False
                if not lines or exc.stderr.strip() not in "\n".join(lines):
                    lines.append(exc.stderr.strip())
                lines.append(f"(failed: {' '.join(exc.argv)} exited {exc.returncode})")
                if GONE_BRANCH in exc.stderr or GONE_BRANCH in "\n".join(lines):
                    lines.append(
                        f"branch {meta.branch!r} is gone from the remote: the course keeps serving commit "
                        f"{(before or '-')[:12]} (restore the branch upstream, or recreate the course on another)"
                    )
            result = self._result(name, checkout, at=at, started=started, ok=ok, lines=lines)
            self._store(meta.model_copy(update={"last_pull": result}))
        level = logging.INFO if ok else logging.WARNING
        log.log(
            level,
            "course %s: pull %s, %s -> %s%s (by %s) in %.1fs",
            name,
            "ok" if ok else "FAILED (still serving the previous checkout)",
            (before or "-")[:12],
            (result.commit or "-")[:12],
            f"; configuration refused: {result.config_error}" if result.config_error else "",
            by or _who(),
            result.seconds,
        )
        return result

    def pull_all(self, *, progress: Progress | None = None, by: str | None = None) -> list[PullResult]:
        """Pull every active course that has a remote (what the automatic pull runs); failures are in the results.

        A course that cannot be pulled at all meanwhile (archived or deleted since it was listed) is skipped.
        """
        results = []
        for view in self.list_courses():
            if view.course.remote is not None:
                try:
                    results.append(self.pull(view.course.name, progress=progress, by=by))
                except NbhostingError as exc:
                    log.info("course %s: not pulled: %s", view.course.name, exc)
        return results

    def archive(self, name: str) -> CourseView:
        """Archive ``name``: hidden from lists, never pulled, its launches refused; its files and students' kept.

        Raises:
            InvalidInput, NotFound: as :meth:`show`.
        """
        return self._set_state(name, CourseState.ARCHIVED)

    def unarchive(self, name: str) -> CourseView:
        """Put ``name`` back in service.

        Raises:
            InvalidInput, NotFound: as :meth:`show`.
        """
        return self._set_state(name, CourseState.ACTIVE)

    def delete(self, name: str, *, yes: bool = False, students: bool = False) -> DeletePlan:
        """What deleting ``name`` removes and keeps; carried out only with ``yes`` (a dry run otherwise).

        Removes the course's checkout and its metadata. Students' work of the course (their workspaces, their
        backups of its notebooks, the pages they shared of them: the links then answer 404) is kept unless
        ``students``. Refused (nothing removed) while servers of the course exist: ``nbh rm`` them first.

        Raises:
            InvalidInput, NotFound: as :meth:`show`.
        """
        self.show(name)
        started = time.monotonic()
        checkout, meta_file = self.path(name), self._meta_dir / f"{name}.json"
        work = self._work.find(name)
        removes = [str(p) for p in (checkout, meta_file) if p.exists() or p.is_symlink()]
        keeps: list[str] = []
        (removes if students else keeps).extend(work.describe(self.settings))
        if self.settings.quota_mode != "off" and self.settings.quota_dir.is_dir():
            images = sorted(self.settings.quota_dir.glob("*.ext4"))
            if images:
                keeps.append(
                    f"{len(images)} students' disk images in {self.settings.quota_dir}: copies and backups inside "
                    "images that are not mounted now are not opened"
                )
        servers = self._servers(name)
        plan = DeletePlan(course=name, done=False, removes=removes, keeps=keeps, servers=servers)
        if not yes or servers:
            return plan
        with self._lock(name), self.changing(name):
            if checkout.is_symlink() or not checkout.is_dir():
                checkout.unlink(missing_ok=True)
            else:
                shutil.rmtree(checkout)
            meta_file.unlink(missing_ok=True)
            if students:
                self._work.remove(work)
        log.info(
            "course %s: deleted (%d students' workspaces, %d backups folders, %d shares %s) (by %s) in %.1fs",
            name,
            len(work.workspaces),
            len(work.backups),
            len(work.shares),
            "removed" if students else "kept",
            _who(),
            time.monotonic() - started,
        )
        return plan.model_copy(update={"done": True})

    # ------------------------------------------------------------------------------------------ internals

    @property
    def _meta_dir(self) -> Path:
        return self.settings.course_meta_dir

    def _view(self, course: Course, path: Path) -> CourseView:
        error = None
        try:
            config = load_course_config(path)
        except InvalidConfig as exc:
            config, error = CourseConfig(), exc.message
        commit = self.git.head(path) if (path / ".git").exists() else None
        return CourseView(course=course, path=path, commit=commit, config=config, config_error=error)

    def _result(
        self, name: str, checkout: Path, *, at: float, started: float, ok: bool, lines: list[str]
    ) -> PullResult:
        """What a clone or a pull of ``name`` into ``checkout`` gave: its commit, log and configuration's state."""
        return PullResult(
            course=name,
            at=at,
            seconds=time.monotonic() - started,
            ok=ok,
            commit=self.git.head(checkout),
            log=_tail(lines),
            config_error=self._config_error(checkout),
        )

    def _config_error(self, checkout: Path) -> str | None:
        try:
            load_course_config(checkout)
        except InvalidConfig as exc:
            return exc.message
        return None

    def _set_state(self, name: str, state: CourseState) -> CourseView:
        started = time.monotonic()
        view = self.show(name)
        with self._lock(name):
            course = (self.meta(name) or view.course).model_copy(update={"state": state})
            self._store(course)
        log.info("course %s: %s (by %s) in %.3fs", name, state.value, _who(), time.monotonic() - started)
        return view.model_copy(update={"course": course})

    def reading(self, name: str) -> contextlib.AbstractContextManager[None]:
        """Held while a course file is read for a student's copy: a pull's reset waits for it (a shared lock)."""
        return file_lock(self._checkout_lock(name), shared=True)

    def changing(self, name: str) -> contextlib.AbstractContextManager[None]:
        """Held while a pull changes the checkout's files: copies wait until it is whole again (exclusive)."""
        return file_lock(self._checkout_lock(name))

    def _checkout_lock(self, name: str) -> Path:
        return self.settings.locks_dir / f"course-{validate_course(name)}.checkout.lock"

    def _git_in(self, checkout: Path, *argv: str, progress: Progress) -> str:
        return self.git.run(["-C", str(checkout), *argv], progress=progress)

    def _store(self, course: Course) -> None:
        """Write the metadata of ``course`` atomically (a reader sees the old file or the new, never half)."""
        self._meta_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self._meta_dir / f"{course.name}.json"
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(course.model_dump_json(indent=2).encode())
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)

    def _lock(self, name: str) -> contextlib.AbstractContextManager[None]:
        return file_lock(self.settings.locks_dir / f"course-{name}.lock")

    def _recorded_servers(self, name: str) -> list[str]:
        records = Records(self.settings.servers_dir, self.settings.running_dir)
        return sorted(r.name for r in records.servers() if r.course == name)


def _who() -> str:
    """Who acts, for the log: this process's user (root for the CLI and the helper)."""
    return f"uid {os.geteuid()}"


def _collect(lines: list[str], progress: Progress | None) -> Progress:
    def on_line(line: str) -> None:
        lines.append(line)
        if progress is not None:
            progress(line)

    return on_line


def _tail(lines: list[str]) -> str:
    text = "\n".join(line.rstrip() for line in lines if line.strip())
    return text[-MAX_LOG:]
