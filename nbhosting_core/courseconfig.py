"""A course's own configuration: ``.nbhosting/course.toml`` in its repository, validated with pydantic.

::

    # .nbhosting/course.toml
    image = "default"            # "default" (nbhosting's image), "course" (the course's own Containerfile),
                                 # or another course's name (share its image); default: its own if it has a
                                 # .nbhosting/Containerfile, else "default"
    ui = "lab"                   # "notebook" (Notebook 7) or "lab" (JupyterLab); default: the host's NBH_UI
    readonly = ["data", "media"] # folders of the repository offered read-only to notebooks
    pythonpath = "lib"           # a folder of Python modules on PYTHONPATH (read-only); default none

    [[tracks]]                   # the table of contents; default: one section per top folder
    name = "Python basics"
    [[tracks.sections]]
    name = "Week 1"
    notebooks = ["w1/intro", "w1/loops.md"]

Every key is optional: a course without the file gets the defaults. A file that does not validate is refused with
its line and the reason (:class:`~nbhosting_core.errors.InvalidConfig`); nothing in it is ever run.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from .errors import InvalidConfig, InvalidInput
from .naming import validate_course, validate_notebook_path
from .tomlmodels import parse_toml_model

CONFIG_DIR = ".nbhosting"
CONFIG_NAME = "course.toml"
#: the folders offered read-only when the file does not say, those of them the repository has
DEFAULT_READONLY = ("data", "media")
MAX_CONFIG_BYTES = 256 * 1024
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _folder(value: str) -> str:
    """A folder of the repository: relative, inside it, not hidden."""
    parts = value.strip("/").split("/")
    if value.startswith("/") or any(p in ("", ".", "..") or p.startswith(".") for p in parts):
        raise ValueError(f"{value!r} is not a folder of the course (relative, no '..', not hidden)")
    return "/".join(parts)


class Section(_Strict):
    """One section of a track: a name and its notebooks, in order."""

    name: str = Field(min_length=1, max_length=200, description="What the course page shows.")
    notebooks: list[str] = Field(default_factory=list, description="Notebook paths, with or without extension.")

    @field_validator("notebooks")
    @classmethod
    def _paths(cls, values: list[str]) -> list[str]:
        for value in values:
            try:
                validate_notebook_path(value)
            except InvalidInput as exc:
                raise ValueError(exc.message) from exc
        return values


class Track(_Strict):
    """One track of a course: a named sequence of sections."""

    name: str = Field(min_length=1, max_length=200, description="What the course page shows.")
    sections: list[Section] = Field(default_factory=list)


class CourseConfig(_Strict):
    """What ``.nbhosting/course.toml`` may say; every field has a default."""

    image: str | None = Field(
        None,
        description='"default": nbhosting\'s image; "course": the course\'s own (.nbhosting/Containerfile); or the '
        "name of another course whose image this one shares. None: the course's own if it has a Containerfile, "
        "else the default (see nbhosting_core.system.courseimages).",
    )
    ui: Literal["notebook", "lab"] | None = Field(None, description="The UI notebooks open in; None: the host's.")
    readonly: list[str] | None = Field(
        None, description="Folders offered read-only to notebooks; None: data/ and media/ where they exist."
    )
    pythonpath: str | None = Field(None, description="A folder of Python modules on PYTHONPATH (read-only).")
    tracks: list[Track] = Field(default_factory=list, description="The table of contents; empty: from folders.")

    @field_validator("image")
    @classmethod
    def _image(cls, value: str | None) -> str | None:
        if value is None or value in ("default", "course"):
            return value
        try:
            return validate_course(value)
        except InvalidInput as exc:
            raise ValueError(f'"default", "course" or a course name: {exc.message}') from exc

    @field_validator("readonly")
    @classmethod
    def _readonly(cls, values: list[str] | None) -> list[str] | None:
        return None if values is None else [_folder(v) for v in values]

    @field_validator("pythonpath")
    @classmethod
    def _pythonpath(cls, value: str | None) -> str | None:
        return None if value is None else _folder(value)

    def ui_or(self, default: Literal["notebook", "lab"]) -> Literal["notebook", "lab"]:
        """The UI to open: the course's, else ``default`` (the host's setting)."""
        return self.ui or default

    def mounts(self, checkout: Path) -> CourseMounts:
        """What of the course checked out at ``checkout`` its notebook servers see, read-only."""
        python = PurePosixPath(self.pythonpath) if self.pythonpath else None
        return CourseMounts(
            checkout=checkout,
            readonly=self.readonly_folders(checkout),
            pythonpath=python if python is not None and _plain_folder(checkout, python) else None,
        )

    def readonly_folders(self, checkout: Path) -> list[PurePosixPath]:
        """The read-only folders offered to notebooks: those the file names, or data/ and media/ where the
        repository has them; only plain folders (never a symlink), inside ``checkout``."""
        wanted = self.readonly if self.readonly is not None else list(DEFAULT_READONLY)
        return [PurePosixPath(f) for f in wanted if _plain_folder(checkout, PurePosixPath(f))]


class CourseMounts(_Strict):
    """The folders of a course checkout its notebook servers see, read-only, at the same place in the workspace
    (``data/`` of the repository is ``data/`` beside the student's notebooks), and the one on ``PYTHONPATH``."""

    checkout: Path
    readonly: list[PurePosixPath] = []
    pythonpath: PurePosixPath | None = None


def _plain_folder(checkout: Path, folder: PurePosixPath) -> bool:
    """True if ``folder`` is a folder of ``checkout`` reached without following any symlink."""
    try:
        fd = os.open(checkout, _DIR_FLAGS)
    except OSError:
        return False
    try:
        for part in folder.parts:
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError:
                return False
            os.close(fd)
            fd = child
        return True
    finally:
        os.close(fd)


def parse_course_config(text: str, *, source: str = f"{CONFIG_DIR}/{CONFIG_NAME}") -> CourseConfig:
    """The configuration of a ``course.toml`` text (pure).

    Raises:
        InvalidConfig: not valid TOML, an unknown key, or a refused value; says which line and why.
    """
    return parse_toml_model(text, CourseConfig, source=source, line_of=line_of, what="course")


def load_course_config(checkout: Path) -> CourseConfig:
    """The configuration of the course checked out at ``checkout``: its ``.nbhosting/course.toml``, or the defaults.

    Read by descriptor with ``O_NOFOLLOW`` at every step: a symlink in the repository never makes root read a file
    outside it.

    Raises:
        InvalidConfig: the file is refused (line and reason), is not a plain file, or is too large.
    """
    source = f"{CONFIG_DIR}/{CONFIG_NAME}"
    try:
        top = os.open(checkout, _DIR_FLAGS)
    except FileNotFoundError:
        return CourseConfig()
    fd = -1
    try:
        try:
            folder = os.open(CONFIG_DIR, _DIR_FLAGS, dir_fd=top)
        except FileNotFoundError:
            return CourseConfig()
        except OSError as exc:
            raise InvalidConfig(f"{CONFIG_DIR}: not a plain folder", log_detail=str(exc)) from exc
        try:
            fd = os.open(CONFIG_NAME, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, dir_fd=folder)
        except FileNotFoundError:
            return CourseConfig()
        except OSError as exc:
            raise InvalidConfig(f"{source}: not a plain file", log_detail=str(exc)) from exc
        finally:
            os.close(folder)
        with os.fdopen(fd, "rb") as f:
            fd = -1
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise InvalidConfig(f"{source}: not a plain file")
            raw = f.read(MAX_CONFIG_BYTES + 1)
    finally:
        if fd >= 0:
            os.close(fd)
        os.close(top)
    if len(raw) > MAX_CONFIG_BYTES:
        raise InvalidConfig(f"{source}: larger than {MAX_CONFIG_BYTES // 1024} KiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidConfig(f"{source}: not UTF-8 text", log_detail=str(exc)) from exc
    return parse_course_config(text, source=source)


def line_of(text: str, loc: tuple[int | str, ...]) -> int | None:
    """The line (1-based) in a TOML text that holds the value at ``loc`` (e.g. ``("tracks", 0, "sections", 1,
    "notebooks", 2)``): the line of its key, else of its nearest enclosing table; None if nothing matches.

    Follows table headers (``[a.b]``, ``[[a.b]]``, counting each array of tables) and ``key =`` lines; values
    written inline (``notebooks = [...]`` on several lines) are reported at their key's line.
    """
    counts: dict[tuple[str, ...], int] = {}
    table: tuple[int | str, ...] = ()
    best: tuple[int, int] | None = None  # (length of the matching prefix, line)
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("[["):
            names = tuple(p.strip() for p in stripped.strip("[]").split("."))
            counts[names] = counts.get(names, -1) + 1
            for inner in [k for k in counts if len(k) > len(names) and k[: len(names)] == names]:
                del counts[inner]  # a new [[tracks]] starts its own [[tracks.sections]] from 0
            table = _indexed(names, counts)
            candidate: tuple[int | str, ...] = table
        elif stripped.startswith("["):
            names = tuple(p.strip() for p in stripped.strip("[]").split("."))
            table = _indexed(names, counts)
            candidate = table
        elif "=" in stripped and not stripped.startswith("#"):
            key = stripped.split("=", 1)[0].strip().strip('"')
            candidate = (*table, key)
        else:
            continue
        matched = _prefix(candidate, loc)
        if matched == len(candidate) and (best is None or matched > best[0]):
            best = (matched, number)
    return best[1] if best else None


def _indexed(names: tuple[str, ...], counts: dict[tuple[str, ...], int]) -> tuple[int | str, ...]:
    """A table header's path with the index of every array of tables along it (``tracks.sections`` ->
    ``("tracks", 0, "sections", 2)``)."""
    path: list[int | str] = []
    for n in range(1, len(names) + 1):
        path.append(names[n - 1])
        if names[:n] in counts:
            path.append(counts[names[:n]])
    return tuple(path)


def _prefix(candidate: tuple[int | str, ...], loc: tuple[int | str, ...]) -> int:
    n = 0
    for a, b in zip(candidate, loc, strict=False):
        if a != b:
            break
        n += 1
    return n
