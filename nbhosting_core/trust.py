"""Trusted copies: a notebook nbhosting copied from the course opens as trusted for its student.

Jupyter trusts a notebook whose signature (an HMAC of its content with the notary's secret) is in its signature
store; a copy made by nbhosting was signed by no one, so Notebook 7 says "Not Trusted" on every copy. Root never
writes into a student's files, so it signs nothing there. Instead, before each start of a server, root writes into
the server's configuration folder (root's, read-only for the student: see :mod:`nbhosting_core.system.sockets`):

* ``notary-secret``: the course's notary secret, derived from the server's secret and the course (the same at
  every start, so that the student's own signatures stay good; the same for every student of the course, so that
  the course's notebooks are signed once per process, not once per student: 3.6 ms a notebook). Sharing it gives
  nothing to another student: a signature counts only in the store of the student whose server checks it (their
  own, in their workspace) or in the course's list, which root writes;
* ``trusted-digests``: the signatures, with that secret, of the course's notebooks as nbhosting copies them (a
  Jupytext ``.md`` or ``.py`` notebook: the ``.ipynb`` made of it, see :mod:`nbhosting_core.notebooks`).

The image's Jupyter configuration (``containerfiles/default/nbhosting_trust.py``) takes both: a copy still as the
course made it is trusted; the student's own saves are signed by Jupyter itself, into a store in their workspace,
as usual. A copy the student changed outside Jupyter is not trusted, as Jupyter would have it.

A course changes while servers run (a pull), so root also vouches for each copy it makes into a running server's
workspace (a first copy, a reset: :class:`CopyTrust`): the copy's signature is added to that server's
``trusted-digests`` (:func:`with_signature`), which is replaced whole (a rename), and the image's store reads the
list again whenever the file changed. Nothing is ever taken out of a running server's list: a copy of an older
version of the course, made before the pull, stays trusted until the server stops.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import stat
import threading
import time
from pathlib import Path
from typing import Protocol, runtime_checkable

import nbformat
from nbformat.sign import NotebookNotary

from .errors import InvalidNotebook
from .models import Account
from .notebooks import notebook_bytes
from .tracks import TEXT_NOTEBOOK_SUFFIXES, has_jupytext_header

log = logging.getLogger(__name__)
#: the algorithm of Jupyter's notary (its default)
ALGORITHM = "sha256"
#: course notebooks larger than this are not hashed (they open untrusted, as any notebook would)
MAX_BYTES = 16 * 2**20
#: at most this many notebooks of a course are hashed
MAX_NOTEBOOKS = 5000
#: a server's ``trusted-digests`` grows to at most this (the image reads as much: ``nbhosting_trust.py``); 5000
#: notebooks make 360 KB
MAX_DIGESTS_BYTES = 2 * 2**20


@runtime_checkable
class CopyTrust(Protocol):
    """Vouches for a course notebook root just copied into a student's workspace, to their running server."""

    def trust_copy(self, account: Account, course: str, notebook: str, content: bytes) -> bool:
        """Make ``content`` (the course's ``notebook`` as copied for ``account``) open trusted in their server of
        ``course``: now if it runs, and at its later starts, whatever the course has become by then; True if the
        running server's list changed. Never raises for a server that stops meanwhile."""
        ...


def signature_line(signature: str) -> bytes:
    """A line of ``trusted-digests`` (pure)."""
    return f"{ALGORITHM} {signature}".encode()


def merged(course: bytes, vouched: bytes, limit: int) -> bytes:
    """``trusted-digests`` for a start (pure): the ``course``'s lines, then the ``vouched`` ones not among them (root's
    record of its earlier copies: see :mod:`nbhosting_core.system.vouched`), whole lines up to ``limit`` bytes."""
    seen = set(course.splitlines())
    out = bytearray(course)
    for line in vouched.splitlines():
        if not line or line in seen:
            continue
        if len(out) + len(line) + 1 > limit:
            break
        seen.add(line)
        out += line + b"\n"
    return bytes(out)


def with_signature(lines: bytes, signature: str) -> bytes | None:
    """``trusted-digests`` ``lines`` with ``signature`` added (pure); None if it is there already."""
    line = signature_line(signature)
    if line in lines.splitlines():
        return None
    return lines + (b"" if not lines or lines.endswith(b"\n") else b"\n") + line + b"\n"


def notary_secret(secret: bytes, course: str) -> bytes:
    """The notary secret of the servers of ``course`` (pure): 64 hex characters, the same at every start."""
    return hmac.new(secret, b"nbhosting-notary:" + course.encode(), hashlib.sha256).hexdigest().encode()


def notebook_signature(secret: bytes, content: bytes) -> str | None:
    """The signature Jupyter's notary computes for the notebook ``content`` with ``secret``; None if it is not a
    notebook nbformat reads (pure)."""
    try:
        notebook = nbformat.reads(content.decode("utf-8"), as_version=4)  # type: ignore[no-untyped-call]
    except (ValueError, UnicodeDecodeError, nbformat.reader.NotJSONError) as exc:
        log.debug("not a notebook: %s", exc)
        return None
    notary = NotebookNotary(secret=secret, algorithm=ALGORITHM)  # type: ignore[no-untyped-call]
    signature: str = notary.compute_signature(notebook)  # type: ignore[no-untyped-call]
    return signature


class CourseSignatures:
    """Signatures of a course's notebooks with its notary secret, remembered while their files do not change (a
    course of 100 notebooks is signed once per process: 0.36 s, then 1.5 ms a start)."""

    def __init__(self) -> None:
        self._cache: dict[tuple[bytes, str, int, int], str | None] = {}
        self._lock = threading.Lock()

    def lines(self, course_dir: Path, secret: bytes) -> bytes:
        """``trusted-digests``: one ``<algorithm> <signature>`` line per notebook of the course."""
        started = time.monotonic()
        signatures = sorted({s for s in self._signatures(course_dir, secret) if s is not None})
        log.info(
            "trust: %d notebooks of %s signed for a start in %.3fs",
            len(signatures),
            course_dir.name,
            time.monotonic() - started,
        )
        return b"".join(f"{ALGORITHM} {s}\n".encode() for s in signatures)

    def _signatures(self, course_dir: Path, secret: bytes) -> list[str | None]:
        found = []
        for path in notebooks_of(course_dir)[:MAX_NOTEBOOKS]:
            signature = self._signature(path, secret)
            found.append(signature)
        return found

    def _signature(self, path: Path, secret: bytes) -> str | None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError:
            return None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_BYTES:
                return None
            key = (secret, str(path), info.st_size, info.st_mtime_ns)
            with self._lock:
                if key in self._cache:
                    return self._cache[key]
            content = os.read(fd, MAX_BYTES + 1)
        finally:
            os.close(fd)
        if path.suffix in TEXT_NOTEBOOK_SUFFIXES:  # a Jupytext notebook: the student's copy is what it makes
            try:
                content = notebook_bytes(content, suffix=path.suffix, name=path.name)
            except InvalidNotebook:
                content = b""
        signature = notebook_signature(secret, content)
        with self._lock:
            if len(self._cache) > 50_000:
                self._cache.clear()
            self._cache[key] = signature
        return signature


def notebooks_of(course_dir: Path) -> list[Path]:
    """The ``.ipynb`` files of a course, and its ``.md``/``.py`` files with a Jupytext header, sorted; hidden folders
    and symlinks left out (never followed)."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(course_dir, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if name.startswith(".") or path.is_symlink():
                continue
            if name.endswith(".ipynb") or (name.endswith(TEXT_NOTEBOOK_SUFFIXES) and has_jupytext_header(path)):
                found.append(path)
        if len(found) > MAX_NOTEBOOKS:
            break
    return found
