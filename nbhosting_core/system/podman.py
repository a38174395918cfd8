"""The rootless Podman :class:`~nbhosting_core.backend.NotebookBackend`: one container per (course, student).

Each student's containers run under their own Linux user, from ONE shared read-only root filesystem, with
Jupyter on a Unix socket in the server's socket folder (:mod:`.sockets`). Podman is reached through each
student's own API service (:mod:`.userpodman`). The backend keeps records of what exists and what runs
(:mod:`.records`) so that warm launches, listings and the culler never wait on podman, and re-checks them
against podman's labels in :meth:`PodmanBackend.reconcile`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pwd
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from ..containers import (
    CONFIG_NAME,
    NOTARY_SECRET,
    OVERRIDES_NAME,
    TRUSTED_DIGESTS,
    container_spec,
    jupyter_config,
    lab_overrides,
    plan,
    server_from_inspect,
)
from ..courses import Courses
from ..errors import CommandFailed, LimitsNotApplied, RuntimeUnavailable, StartFailed
from ..jupyterapi import KERNELS_PATH, SESSIONS_PATH, STATUS_PATH, has_session, new_session, parse_activity
from ..models import Account, Action, Ensured, ReconcileReport, Server, ServerActivity, ServerState, Usage
from ..naming import container_name, is_key, short_key, subid_range
from ..origins import frame_ancestors
from ..platforms import PlatformsFile
from ..settings import Settings
from ..tokens import jupyter_token, new_key
from ..trust import (
    MAX_DIGESTS_BYTES,
    CourseSignatures,
    merged,
    notary_secret,
    notebook_signature,
    signature_line,
    with_signature,
)
from .cgroups import Limiter, limiter_for
from .locks import file_lock
from .records import (
    Records,
    RunRecord,
    ServerRecord,
    process_start,
    processes_of,
    running_conmons,
    server_of,
    stop_processes,
)
from .runner import CommandRunner, SubprocessRunner
from .services import service_group
from .sockets import SocketDirs
from .studentexec import render_html
from .subids import SubordinateIds
from .unixhttp import get, request
from .userpodman import UserPodman
from .vouched import VouchedCopies

log = logging.getLogger(__name__)
PROBE_DEADLINE = 2.0
#: how long a kernel's start may take when the hub starts one for a launch (Jupyter answers once it runs: ~0.4 s)
KERNEL_DEADLINE = 10.0
#: Jupyter servers starting at once on this host (a start is ~1 s of CPU): beyond, a start waits its turn. A
#: hundred starting together share the cores and all answer late, past the start timeout; in turns, each answers
#: in a second or two and the first students work while the last wait
STARTS_AT_ONCE = max(2, 2 * (os.cpu_count() or 1))
#: at most this long a start holds its turn, waiting for its Jupyter to answer
START_TURN = 15.0
_turns = threading.BoundedSemaphore(STARTS_AT_ONCE)


class PodmanBackend:
    """Rootless podman, one Linux user per student.

    Args:
        settings: paths, image, limits.
        secret: the server's secret (Jupyter tokens are derived from it).
        runner: runs host commands (mount, umount).
        limiter: enforces memory/processes/CPU limits; default the one this host supports.
    """

    def __init__(
        self, settings: Settings, *, secret: bytes, runner: CommandRunner | None = None, limiter: Limiter | None = None
    ) -> None:
        self._settings = settings
        self._secret = secret
        self._signatures = CourseSignatures()  # the course notebooks' signatures, kept while they do not change
        self._vouched = VouchedCopies(settings.trust_dir)  # the copies root vouched for, for later starts
        self._runner = runner or SubprocessRunner()
        self._records = Records(settings.servers_dir, settings.running_dir)
        self._sockets = SocketDirs(
            settings.jupyter_sockets_dir,
            self._runner,
            size=settings.socket_dir_size,
            dial_group=service_group(settings.caddy_user),
        )
        self._limiter = limiter or limiter_for(settings)
        self._subids = SubordinateIds(settings)
        self._platforms = PlatformsFile(settings.effective_platforms_file)  # who may frame notebooks

    # ----------------------------------------------------------------------------------- the contract

    def ensure_running(self, account: Account, course: str, workspace: Path, image: str | None = None) -> Ensured:
        """See :meth:`NotebookBackend.ensure_running`: ``image`` is a rootfs (default ``settings.image_rootfs``)."""
        rootfs = Path(image) if image is not None else self._settings.image_rootfs
        if rootfs is None:
            raise StartFailed(
                "Notebooks are not available: no notebook image is configured.",
                log_detail="settings.image_rootfs is not set",
            )
        name = container_name(account.user, course)
        running = self._running(self._records.server(name))
        if running is not None:  # the warm path: no lock, no podman call
            return Ensured(server=running, action=Action.REUSE)
        with file_lock(self._settings.locks_dir / f"container-{name}.lock"):
            running = self._running(self._records.server(name))
            if running is not None:
                return Ensured(server=running, action=Action.REUSE)
            engine = UserPodman(self._settings, account)
            data = engine.inspect(name)
            current = server_from_inspect(data, account.uid) if data is not None else None
            action = plan(current, str(rootfs))
            if action is Action.REUSE and current is not None:
                if self._sockets.link(current.key).parent.is_dir() and data is not None:
                    return Ensured(server=self._adopt(account, current, data), action=Action.REUSE)
                action = Action.REPLACE  # running, but its socket folder is gone: unreachable
                log.warning("replacing %s: it runs but its socket folder is gone", name)
            with self._turn() as started:
                if action is Action.START and current is not None:
                    try:
                        return Ensured(server=started(self._start(engine, account, current)), action=Action.START)
                    except RuntimeUnavailable as exc:
                        log.warning("replacing %s: it would not start again: %s", name, exc)
                        action = Action.REPLACE
                if current is not None:
                    self._remove(engine, current)
                return Ensured(server=started(self._create(engine, account, course, workspace, rootfs)), action=action)

    def get(self, account: Account, course: str) -> Server | None:
        """See :meth:`NotebookBackend.get`."""
        name = container_name(account.user, course)
        running = self._running(self._records.server(name))
        if running is not None:
            return running
        data = UserPodman(self._settings, account).inspect(name)
        return server_from_inspect(data, account.uid) if data is not None else None

    def find(self, key: str) -> Server | None:
        """See :meth:`NotebookBackend.find`: servers started since boot, from the run records."""
        return self._records.find(key)

    def is_ready(self, server: Server) -> bool:
        """See :meth:`NotebookBackend.is_ready`: Jupyter answers ``/api/status`` (bounded probe)."""
        answer = self._probe(server, STATUS_PATH)
        return answer is not None and answer[0] == 200

    def activity(self, server: Server) -> ServerActivity | None:
        """See :meth:`NotebookBackend.activity`."""
        status = self._probe(server, STATUS_PATH)
        if status is None or status[0] != 200:
            return None
        kernels = self._probe(server, KERNELS_PATH)
        return parse_activity(status[1], kernels[1] if kernels is not None and kernels[0] == 200 else None)

    def start_kernel(self, server: Server, notebook: str, kernel: str | None) -> bool:
        """See :meth:`NotebookBackend.start_kernel`: Jupyter's sessions API, through root's verified socket link."""
        link = self._sockets.verify_and_link(server.key, server.uid)
        if link is None:
            return False
        url = f"/{self._settings.url_prefix}/{server.key}/{SESSIONS_PATH}"
        auth = {"Authorization": f"token {jupyter_token(self._secret, server.key)}"}
        listed = get(link, url, auth, deadline=PROBE_DEADLINE)
        if listed is None or listed.status != 200 or has_session(listed.body, notebook) is not False:
            return False
        headers = {**auth, "Content-Type": "application/json"}
        answer = request(link, "POST", url, headers, new_session(notebook, kernel), deadline=KERNEL_DEADLINE)
        return answer is not None and answer.status == 201

    def trust_copy(self, account: Account, course: str, notebook: str, content: bytes) -> bool:
        """See :class:`~nbhosting_core.trust.CopyTrust`: the copy's signature recorded for the server's later starts
        (:class:`~nbhosting_core.system.vouched.VouchedCopies`) and added to its ``trusted-digests`` if it runs
        (root's file in its socket folder, replaced whole), under the server's lock."""
        started = time.monotonic()
        name = container_name(account.user, course)
        signature = notebook_signature(notary_secret(self._secret, course), content)
        with file_lock(self._settings.locks_dir / f"container-{name}.lock"):  # never beside a start's new folder
            if signature is None:
                recorded, outcome = False, "not a notebook"
            else:
                recorded = self._vouched.add(name, signature_line(signature))
                server = self._running(self._records.server(name))
                if server is None:
                    outcome = "not running (its next start lists it)"
                else:
                    outcome = self._add_signature(server.key, signature)
        log.info(
            "trust: copy user=%s course=%s notebook=%s -> %s%s in %.3fs",
            account.user,
            course,
            notebook,
            outcome,
            ", recorded" if recorded else "",
            time.monotonic() - started,
        )
        return outcome == "added"

    def _add_signature(self, key: str, signature: str) -> str:
        """Add ``signature`` to the ``trusted-digests`` of running server ``key``; what was done."""
        try:
            lines = self._sockets.read_config(key, TRUSTED_DIGESTS, MAX_DIGESTS_BYTES + 1)
            updated = with_signature(lines, signature)
            if updated is None:
                return "listed already"
            if len(updated) > MAX_DIGESTS_BYTES:
                return f"not added: the list is full ({len(lines)} bytes)"
            self._sockets.replace_config(key, TRUSTED_DIGESTS, updated)
        except OSError as exc:  # it stopped meanwhile (its folder gone), or a folder not root's: nothing written
            log.warning("trust: could not update the list of server %s: %s", short_key(key), exc)
            return "not added"
        return "added"

    def stop(self, server: Server) -> None:
        """See :meth:`NotebookBackend.stop`."""
        account = self._account(server)
        with file_lock(self._settings.locks_dir / f"container-{server.name}.lock"):
            UserPodman(self._settings, account).stop(server.name)
            self._after_stop(server.name, server.key)

    def remove(self, server: Server) -> None:
        """See :meth:`NotebookBackend.remove`."""
        account = self._account(server)
        with file_lock(self._settings.locks_dir / f"container-{server.name}.lock"):
            self._remove(UserPodman(self._settings, account), server)

    def list_servers(self) -> list[Server]:
        """See :meth:`NotebookBackend.list_servers`: from the records, with liveness read from /proc."""
        servers = []
        for record in self._records.servers():
            run = self._records.run(record.key)
            if run is not None and self._records.alive(run, record.uid):
                servers.append(server_of(record, ServerState.RUNNING, run.started_at))
            else:
                servers.append(server_of(record, ServerState.STOPPED, None))
        return servers

    def list_running(self) -> list[Server]:
        """See :meth:`NotebookBackend.list_running`: the run records (RUN_DIR), each checked in /proc.

        One run record per server started since boot and not stopped: the servers that do not run cost nothing.
        """
        return self._records.running()

    def usage(self, server: Server) -> Usage:
        """See :meth:`NotebookBackend.usage`."""
        return self._limiter.usage(server.name)

    def logs(self, server: Server, tail: int = 50) -> str:
        """See :meth:`NotebookBackend.logs`: through the student's own podman (it reads its container's log file,
        as them: root never opens a path of theirs), at most ``MAX_LOG_BYTES``."""
        return UserPodman(self._settings, self._account(server)).logs(server.name, tail)

    def release(self, user: str) -> bool:
        """See :meth:`NotebookBackend.release`: the student's podman processes (API service, the pause process
        that holds their user namespace) are stopped, their runtime folder emptied, their subordinate ids revoked.

        Their next launch starts it all again (~0.1 s). A server of theirs that still runs: nothing is done.
        """
        uid = self._uid_of(user)
        if uid is None or any(s.user == user and s.state is ServerState.RUNNING for s in self.list_servers()):
            return False
        s = self._settings
        first, count = subid_range(uid, uid_min=s.uid_min, subid_base=s.subid_base, subid_count=s.subid_count)
        stopped: list[int] = []
        for _ in range(3):  # a process may have started one more (a podman helper) while the others were stopped
            alive = set(processes_of({uid})) | set(processes_of(range(first, first + count)))
            if not alive:
                break
            stopped += stop_processes(alive)
        runtime = s.users_run_dir / str(uid)
        try:
            if runtime.is_dir():
                shutil.rmtree(runtime)  # by descriptor, never following a link the student made
        except OSError as exc:  # something of theirs still wrote there: podman copes with a stale runtime folder
            log.warning("release of user=%s: their runtime folder stays: %s", user, exc)
        (s.run_dir / "podman" / f"{user}.sock").unlink(missing_ok=True)
        revoked = self._subids.revoke([user])
        if stopped or revoked:
            log.info(
                "released user=%s: %d podman processes stopped, subordinate ids %s",
                user,
                len(stopped),
                "revoked" if revoked else "already gone",
            )
        return bool(stopped or revoked)

    def render_html(self, server: Server, notebook: str, *, timeout: float, max_bytes: int) -> bytes:
        """See :class:`~nbhosting_core.studentwork.HtmlRenderer`: nbconvert in the server's container, as its
        student, through their podman (:mod:`.render`)."""
        engine = UserPodman(self._settings, self._account(server))
        return render_html(engine, server, notebook, timeout=timeout, max_bytes=max_bytes)

    def held(self) -> list[str]:
        """See :meth:`NotebookBackend.held`: this installation's students with subordinate ids granted.

        (/etc/subuid is the host's: another installation's students, whose homes are elsewhere, are not ours.)
        """
        return [user for user in self._subids.granted() if (self._settings.students_dir / user).is_dir()]

    def _uid_of(self, user: str) -> int | None:
        """The uid of this installation's student ``user`` (None for anyone else)."""
        record = next((r for r in self._records.servers() if r.user == user), None)
        if record is not None:
            return record.uid
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            return None
        return entry.pw_uid if Path(entry.pw_dir) == self._settings.students_dir / user else None

    def reconcile(self) -> ReconcileReport:
        """See :meth:`NotebookBackend.reconcile`.

        Every record is checked against podman only where the records and /proc cannot settle it (a creation
        that never finished, a container whose conmon runs without a live run record); running servers with a
        live run record are left alone, and a created server with no process at all is stopped (after a
        reboot: every one of them) without starting its student's podman. Socket folders, links and run
        records of servers that do not run are cleared. Safe on a live host: each server is judged under the
        lock its launches take.
        """
        adopted: list[str] = []
        removed: list[str] = []
        cleared: list[str] = []
        for orphan in self._orphans():
            with file_lock(self._settings.locks_dir / f"container-{orphan.name}.lock"):
                if self._records.server(orphan.name) is None:
                    self._records.put_server(orphan)
                    log.info("reconcile: %s runs without a record; recorded", orphan.name)
        records = self._records.servers()
        conmons = {name for _, name in running_conmons(self._settings.uid_min, self._settings.uid_max)}
        for record in records:
            with file_lock(self._settings.locks_dir / f"container-{record.name}.lock"):
                fresh = self._records.server(record.name)  # a launch may have changed it while we waited
                outcome = self._reconcile_one(fresh, conmons) if fresh is not None else "gone"
            if outcome == "adopted":
                adopted.append(record.name)
            elif outcome == "removed":
                removed.append(record.name)
        # Runtime files of servers that do not run. Each is judged under its server's lock: a launch may be
        # creating or starting that server right now (its socket folder is made before it runs).
        for run in self._records.runs():
            with file_lock(self._settings.locks_dir / f"container-{run.name}.lock"):
                if self._runs(run.name, run.key):
                    continue
                self._records.drop_run(run.key)
            cleared.append(f"run record {run.name}")
            log.info("reconcile: run record of %s cleared: its processes are gone", run.name)
        keys = sorted(set(self._sockets.keys()) | self._sockets.mounted_keys())
        owners = {r.key: r.name for r in self._records.servers()}  # read after the folders: records come first
        for key in keys:
            owner = owners.get(key)
            with file_lock(self._settings.locks_dir / f"container-{owner}.lock") if owner else contextlib.nullcontext():
                if owner is not None and self._runs(owner, key):
                    continue
                self._sockets.release(key)
            cleared.append(f"socket folder {key[:8]}")
            log.info("reconcile: socket folder %s cleared: no running server has that key", key[:8])
        for name in sorted(self._limiter.groups()):  # a server that stopped by itself left its groups
            with file_lock(self._settings.locks_dir / f"container-{name}.lock"):
                if self._running(self._records.server(name)) is None and self._limiter.release(name):
                    cleared.append(f"limit groups {name}")
        return ReconcileReport(adopted=adopted, removed=removed, cleared=cleared, checked=len(records))

    # ------------------------------------------------------------------------------------ internals

    @contextlib.contextmanager
    def _turn(self) -> Iterator[Callable[[Server], Server]]:
        """Take one of the host's :data:`STARTS_AT_ONCE` turns to start a server; what it yields hands the turn to
        the started server, which gives it back once its Jupyter answers (in a thread: the launch does not wait for
        its own server, only for its turn). A start that fails gives it back at once."""
        waited = time.monotonic()
        _turns.acquire()
        if time.monotonic() - waited > 1:
            log.info("a start waited %.1fs for its turn (%d at once)", time.monotonic() - waited, STARTS_AT_ONCE)
        handed = False

        def started(server: Server) -> Server:
            nonlocal handed
            handed = True

            def answering() -> None:
                try:
                    self._answering(server)
                finally:
                    _turns.release()

            threading.Thread(target=answering, name=f"start-{server.name}", daemon=True).start()
            return server

        try:
            yield started
        finally:
            if not handed:
                _turns.release()

    def _answering(self, server: Server) -> Server:
        """``server``, once its Jupyter answers, or :data:`START_TURN` s have passed (its turn is then given up: the
        launch's polls follow it), or it stopped."""
        deadline = time.monotonic() + START_TURN
        while time.monotonic() < deadline and not self.is_ready(server):
            if self._running(self._records.server(server.name)) is None:
                break
            time.sleep(self._settings.ready_poll_interval)
        return server

    def _reconcile_one(self, record: ServerRecord, conmons: set[str]) -> str:
        run = self._records.run(record.key)
        if run is not None and self._records.alive(run, record.uid) and record.phase == "created":
            return "ok"
        if record.phase == "created" and record.name not in conmons:
            # nothing of it runs: stopped (if podman lost it meanwhile, the next launch sees so and creates it)
            self._after_stop(record.name, record.key)
            log.info("reconcile: %s is stopped; its student's next click starts it again", record.name)
            return "stopped"
        account = self._account(server_of(record, ServerState.STOPPED, None))
        engine = UserPodman(self._settings, account)
        data = engine.inspect(record.name)
        current = server_from_inspect(data, record.uid) if data is not None else None
        if current is None or current.key != record.key:
            self._records.drop_server(record.name)
            self._after_stop(record.name, record.key)
            if current is not None:  # a container by that name, not the recorded one: record it instead
                self._records.put_server(_record_of(current, record.gid))
            log.info("reconcile: %s is not in podman any more; record dropped", record.name)
            return "removed"
        if current.state is ServerState.RUNNING and data is not None:
            self._records.put_server(record.model_copy(update={"phase": "created"}))
            if self._sockets.link(record.key).parent.is_dir():
                self._adopt(account, current, data)
                log.info("reconcile: %s runs; adopted", record.name)
                return "adopted"
            self._remove(engine, current)
            log.info("reconcile: %s ran without its socket folder; removed (files kept)", record.name)
            return "removed"
        if record.phase == "creating" or current.state is ServerState.BROKEN:
            self._remove(engine, current)
            log.info("reconcile: %s was half-made or broken; removed (files kept)", record.name)
            return "removed"
        self._after_stop(record.name, record.key)  # stopped: nothing runs, nothing to keep at runtime
        log.info("reconcile: %s is stopped; its student's next click starts it again", record.name)
        return "stopped"

    def _orphans(self) -> list[ServerRecord]:
        """Running nbhosting containers with no record (made before records existed, or records lost).

        Only this installation's students are asked (their home is in ``students_dir``): asking another's
        would start a podman service for them here, with the wrong storage.
        """
        found = []
        known = {r.name for r in self._records.servers()}
        s = self._settings
        for uid, name in running_conmons(s.uid_min, s.uid_max):
            if name in known:
                continue
            try:
                entry = pwd.getpwuid(uid)
            except KeyError:
                continue
            if Path(entry.pw_dir) != s.students_dir / entry.pw_name:
                continue  # another installation's student (same uid range): its podman is not ours to ask
            account = Account(student_id="", user=entry.pw_name, uid=uid, gid=entry.pw_gid, home=Path(entry.pw_dir))
            data = UserPodman(s, account).inspect(name)
            server = server_from_inspect(data, uid) if data is not None else None
            if server is not None and is_key(server.key) and server.user == entry.pw_name:
                found.append(_record_of(server, entry.pw_gid))
        return found

    def _runs(self, name: str, key: str) -> bool:
        """True if server ``name`` runs now with ``key`` (from the records and /proc)."""
        running = self._running(self._records.server(name))
        return running is not None and running.key == key

    def _running(self, record: ServerRecord | None) -> Server | None:
        if record is None or record.phase != "created":
            return None
        run = self._records.run(record.key)
        if run is None or not self._records.alive(run, record.uid):
            return None
        return server_of(record, ServerState.RUNNING, run.started_at)

    def _create(self, engine: UserPodman, account: Account, course: str, workspace: Path, rootfs: Path) -> Server:
        key = new_key()
        record = ServerRecord(
            name=container_name(account.user, course),
            course=course,
            student_id=account.student_id,
            user=account.user,
            uid=account.uid,
            gid=account.gid,
            key=key,
            image=str(rootfs),
            phase="creating",
        )
        self._records.put_server(record)  # first: a crash from here on is found by reconcile()
        socket_dir = self._prepare_sockets(key, account, course)
        spec = container_spec(
            self._settings,
            account,
            course,
            key,
            jupyter_token(self._secret, key),
            workspace,
            socket_dir,
            rootfs,
            self._limiter.spec_limits(),
            course_mounts=Courses(self._settings).config(course).mounts(self._settings.courses_dir / course),
        )
        engine.create(spec)
        engine.start(record.name)
        data = engine.inspect(record.name)
        if data is None:
            raise StartFailed(
                "Your notebook server could not be created.",
                log_detail=f"{record.name} vanished right after its creation",
            )
        server = server_from_inspect(data, account.uid)
        self._records.put_server(record.model_copy(update={"phase": "created"}))
        return self._adopt(account, server, data)

    def _prepare_sockets(self, key: str, account: Account, course: str) -> Path:
        """A fresh socket folder for the server ``key``, with Jupyter's configuration for this start in it, and
        what makes the course's notebooks open trusted (see :mod:`nbhosting_core.trust`)."""
        folder = self._sockets.prepare(key, account.uid, account.gid)
        ancestors = frame_ancestors(self._settings, self._platforms.current().origins())
        config = jupyter_config(self._settings, key, ancestors)
        self._sockets.write_config(key, CONFIG_NAME, json.dumps(config, indent=1).encode())
        overrides = lab_overrides(self._settings, key)  # the UIs' "My work" menu
        self._sockets.write_config(key, OVERRIDES_NAME, json.dumps(overrides).encode())
        notary = notary_secret(self._secret, course)
        self._sockets.write_config(key, NOTARY_SECRET, notary)
        course_dir = self._settings.courses_dir / course
        vouched = self._vouched.lines(container_name(account.user, course))  # copies of versions since replaced
        digests = merged(self._signatures.lines(course_dir, notary), vouched, MAX_DIGESTS_BYTES)
        self._sockets.write_config(key, TRUSTED_DIGESTS, digests)
        return folder

    def _start(self, engine: UserPodman, account: Account, server: Server) -> Server:
        self._prepare_sockets(server.key, account, server.course)
        engine.start(server.name)
        data = engine.inspect(server.name)
        if data is None:
            raise RuntimeUnavailable("Your notebook server vanished.", log_detail=f"{server.name} after start")
        return self._adopt(account, server_from_inspect(data, account.uid), data)

    def _adopt(self, account: Account, server: Server, data: dict[str, object]) -> Server:
        """Record a running ``server`` (and its processes) and put them under its limits.

        Its server record is written again if it is missing: a container found without one (podman finished a
        creation after a crash and a reconcile) would otherwise run unlisted, and refused at the proxy.
        """
        record = self._records.server(server.name)
        if record is None or record.key != server.key or record.phase != "created":
            self._records.put_server(_record_of(server, account.gid))
            log.info("%s runs without its record; recorded again", server.name)
        state = data.get("State")
        pid = state.get("Pid") if isinstance(state, dict) else None
        pid_start = process_start(pid) if isinstance(pid, int) and pid > 0 else None
        if not isinstance(pid, int) or pid_start is None:
            return server  # it exited meanwhile: the next launch or poll sees it stopped
        started_at = server.started_at or time.time()
        self._records.put_run(
            RunRecord(key=server.key, name=server.name, pid=pid, pid_start=pid_start, started_at=started_at)
        )
        try:
            self._limiter.apply(server.name, pid, account.uid)
        except LimitsNotApplied as exc:
            log.error("stopping %s: it could not be put under its limits: %s", server.name, exc.log_detail)
            UserPodman(self._settings, account).stop(server.name)
            self._after_stop(server.name, server.key)
            raise
        return server.model_copy(update={"started_at": started_at})

    def _remove(self, engine: UserPodman, server: Server) -> None:
        engine.remove(server.name)
        self._records.drop_server(server.name)
        self._after_stop(server.name, server.key)

    def _after_stop(self, name: str, key: str) -> None:
        self._records.drop_run(key)
        self._limiter.release(name)
        with contextlib.suppress(ValueError):  # a key that is not one: there is no folder to clear
            try:
                self._sockets.release(key)
            except CommandFailed as exc:
                log.warning("could not clear the socket folder of %s: %s", name, exc)

    def _probe(self, server: Server, path: str) -> tuple[int, bytes] | None:
        link = self._sockets.verify_and_link(server.key, server.uid)
        if link is None:
            return None
        answer = get(
            link,
            f"/{self._settings.url_prefix}/{server.key}/{path}",
            {"Authorization": f"token {jupyter_token(self._secret, server.key)}"},
            deadline=PROBE_DEADLINE,
        )
        return None if answer is None else (answer.status, answer.body)

    def _account(self, server: Server) -> Account:
        record = self._records.server(server.name)
        gid = record.gid if record is not None else server.uid
        return Account(
            student_id=server.student_id,
            user=server.user,
            uid=server.uid,
            gid=gid,
            home=self._settings.students_dir / server.user,
        )


def _record_of(server: Server, gid: int) -> ServerRecord:
    return ServerRecord(**server.model_dump(exclude={"state", "started_at"}), gid=gid, phase="created")
