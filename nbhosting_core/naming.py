"""Pure rules: what a valid course, notebook path and student id are, and the names derived from them.

Nothing here touches the system. Every name that reaches a shell, a path or podman is built here from
validated parts, so the same inputs always give the same user, workspace and container.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import PurePosixPath

from .errors import InvalidInput

COURSE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
#: what a notebook file of a course ends with, in the order a name without extension is looked up (Jupytext's
#: text notebooks after Jupyter's own)
NOTEBOOK_SUFFIXES = (".ipynb", ".md", ".py")
MAX_PATH = 1024
MAX_COMPONENT = 255
MAX_STUDENT_ID = 300  # a platform's name, ':', and its id (LTI 1.3's sub may have 255)
USER_PREFIX = "nbh-"
USER_PREFIX_RE = re.compile(r"^[a-z][a-z0-9]{0,5}-$")
KEY_RE = re.compile(r"^[0-9a-f]{40}$")


def validate_course(course: str) -> str:
    """Return ``course`` if it is a short slug (letters, digits, ``_ . -``, at most 64), else raise.

    Raises:
        InvalidInput: with a message that says what a course name may be.
    """
    if not COURSE_RE.match(course) or ".." in course:
        raise InvalidInput(
            f"Invalid course name {course[:80]!r}: use 1 to 64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit."
        )
    return course


#: a staff member's user name: letters, digits, ``. _ @ -``, at most 64, starting with a letter or digit
STAFF_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


def validate_staff_name(name: str) -> str:
    """``name`` if it may name a staff member (letters, digits, ``. _ @ -``, at most 64), else raise.

    Raises:
        InvalidInput: saying what a staff member's name may be.
    """
    if not STAFF_NAME_RE.match(name):
        raise InvalidInput(f"Invalid user name {name[:80]!r}: letters, digits, '.', '_', '@', '-', at most 64.")
    return name


def is_course_name(name: str) -> bool:
    """True if ``name`` is a course's name (see :func:`validate_course`; pure)."""
    return bool(COURSE_RE.match(name)) and ".." not in name


def validate_notebook_path(path: str) -> PurePosixPath:
    """Return ``path`` as a relative POSIX path that stays inside its course, else raise.

    A path is refused when it is absolute, has an empty, ``.``, ``..`` or hidden component, holds a
    backslash or control character, is too long, or ends neither in ``.ipynb``, ``.md`` or ``.py`` nor in a name
    without extension (``w1/intro``: see :func:`notebook_candidates`).

    Raises:
        InvalidInput: saying which rule the path breaks.
    """
    shown = path[:120]
    if not path or len(path) > MAX_PATH:
        raise InvalidInput(f"Invalid notebook path {shown!r}: empty or longer than {MAX_PATH} characters.")
    if any(ord(c) < 32 or ord(c) == 127 for c in path) or "\\" in path:
        raise InvalidInput(f"Invalid notebook path {shown!r}: control characters and '\\' are not allowed.")
    if path.startswith("/"):
        raise InvalidInput(f"Invalid notebook path {shown!r}: it must be relative to the course.")
    parts = path.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise InvalidInput(f"Invalid notebook path {shown!r}: empty, '.' or '..' components are refused.")
        if part.startswith("."):
            raise InvalidInput(f"Invalid notebook path {shown!r}: hidden files are not notebooks.")
        if len(part.encode()) > MAX_COMPONENT:
            raise InvalidInput(f"Invalid notebook path {shown!r}: a component is too long.")
    if not parts[-1].endswith(NOTEBOOK_SUFFIXES) and "." in parts[-1]:
        raise InvalidInput(
            f"Invalid notebook path {shown!r}: only {', '.join(NOTEBOOK_SUFFIXES)} files (or a name without "
            "extension) open."
        )
    return PurePosixPath(path)


def notebook_stem(notebook: PurePosixPath) -> PurePosixPath:
    """``notebook`` without its notebook extension (``w1/intro.md`` -> ``w1/intro``; ``w1/intro`` stays) (pure)."""
    suffix = next((s for s in NOTEBOOK_SUFFIXES if notebook.name.endswith(s)), "")
    return notebook.with_name(notebook.name[: len(notebook.name) - len(suffix)]) if suffix else notebook


def notebook_candidates(notebook: PurePosixPath) -> list[PurePosixPath]:
    """The course files a launch of ``notebook`` may open, in order (pure): the file itself when it has a notebook
    extension, then ``<name>.ipynb``, ``<name>.md``, ``<name>.py`` (``<name>``: the path without its extension)."""
    stem = notebook_stem(notebook)
    candidates = [notebook] if stem != notebook else []
    candidates += [stem.with_name(stem.name + suffix) for suffix in NOTEBOOK_SUFFIXES]
    return list(dict.fromkeys(candidates))


def student_copy_path(notebook: PurePosixPath) -> PurePosixPath:
    """Where a student's copy of ``notebook`` is in their workspace: always an ``.ipynb`` (pure).

    A Jupytext notebook (``w1/intro.md``) and a name without extension (``w1/intro``) both give ``w1/intro.ipynb``.
    """
    stem = notebook_stem(notebook)
    return stem.with_name(stem.name + ".ipynb")


def validate_student_id(student_id: str) -> str:
    """Return the platform's opaque student id if acceptable, else raise.

    Any printable ASCII except space, ``/`` and ``\\`` is accepted (edX sends a hex hash, LTI a
    ``sub``), 1 to 128 characters. The id is never used raw in a path or a command: see :func:`user_name`.

    Raises:
        InvalidInput: saying what a student id may be.
    """
    ok = 0 < len(student_id) <= MAX_STUDENT_ID and all(33 <= ord(c) <= 126 and c not in "/\\" for c in student_id)
    if not ok:
        raise InvalidInput(
            f"Invalid student id {student_id[:40]!r}: use 1 to {MAX_STUDENT_ID} printable ASCII characters, "
            "without spaces, '/' or '\\'."
        )
    return student_id


def user_name(student_id: str, prefix: str = USER_PREFIX) -> str:
    """The Linux user of a student: ``prefix`` + 96 bits of SHA-256 of the id (28 characters).

    Deterministic, valid for ``useradd`` whatever the id, and never the raw id.
    """
    if not USER_PREFIX_RE.match(prefix):
        raise ValueError(f"invalid user prefix {prefix!r}")
    return prefix + hashlib.sha256(validate_student_id(student_id).encode()).hexdigest()[:24]


def container_name(user: str, course: str) -> str:
    """The container of one (course, student): ``<user>-<course>``, unique on the host."""
    return f"{user}-{validate_course(course)}"


def subid_range(uid: int, *, uid_min: int, subid_base: int, subid_count: int) -> tuple[int, int]:
    """The (first, count) subuid/subgid range of the student with ``uid``: disjoint for every uid."""
    if uid < uid_min:
        raise ValueError(f"uid {uid} is below the students' range starting at {uid_min}")
    return subid_base + (uid - uid_min) * subid_count, subid_count


def is_key(value: str) -> bool:
    """True if ``value`` has the shape of a container access key (160 random bits, hex)."""
    return bool(KEY_RE.match(value))


def short_key(key: str) -> str:
    """Enough of a key to follow a server through the logs, not enough to reach it."""
    return key[:8]
