"""A course's table of contents: tracks of sections of notebooks, from its configuration or from its folders.

:func:`course_tracks` decides (pure); :func:`notebook_files` lists what a checkout holds (a read-only walk that
never follows a symlink).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from .courseconfig import CourseConfig, Section, Track, load_course_config
from .errors import InvalidConfig

#: what a course notebook file ends with (``.md`` and ``.py`` only when Jupytext marks them: see notebook_files)
TEXT_NOTEBOOK_SUFFIXES = (".md", ".py")
#: how much of a text file is read to find Jupytext's header
_HEAD = 4096


def course_tracks(course: str, config: CourseConfig, notebooks: Iterable[PurePosixPath]) -> list[Track]:
    """The tracks of ``course`` (pure): those of its configuration, else one track derived from its folders.

    Derived: notebooks at the top of the course form a first section named after the course, then one section per
    top folder (sorted by name) with every notebook below it (sorted by path). A course with no notebook has no
    track.
    """
    if config.tracks:
        return list(config.tracks)
    top: list[str] = []
    folders: dict[str, list[str]] = {}
    for path in sorted(set(notebooks), key=lambda p: p.parts):
        if len(path.parts) == 1:
            top.append(str(path))
        else:
            folders.setdefault(path.parts[0], []).append(str(path))
    sections = [Section(name=course, notebooks=top)] if top else []
    sections += [Section(name=name, notebooks=folders[name]) for name in sorted(folders)]
    return [Track(name=course, sections=sections)] if sections else []


def notebook_files(checkout: Path, *, skip: Iterable[PurePosixPath] = ()) -> list[PurePosixPath]:
    """The notebooks of a checkout, relative to it: every ``.ipynb``, and every ``.md`` or ``.py`` file that starts
    with a Jupytext header. Hidden files and folders, symlinks, and the folders in ``skip`` (read-only data, the
    Python modules folder) are left out."""
    skipped = {str(p) for p in skip}
    found: list[PurePosixPath] = []
    for folder, dirs, files in os.walk(checkout, followlinks=False):
        relative = PurePosixPath(Path(folder).relative_to(checkout).as_posix())
        dirs[:] = sorted(
            d for d in dirs if not d.startswith(".") and str(relative / d).removeprefix("./") not in skipped
        )
        for name in files:
            path = Path(folder) / name
            if name.startswith(".") or path.is_symlink():
                continue
            rel = PurePosixPath(str(relative / name).removeprefix("./"))
            if name.endswith(".ipynb") or (name.endswith(TEXT_NOTEBOOK_SUFFIXES) and has_jupytext_header(path)):
                found.append(rel)
    return sorted(found, key=lambda p: p.parts)


def has_jupytext_header(path: Path) -> bool:
    """True if the text file starts with a Jupytext header (what ``jupytext --set-formats`` writes)."""
    try:
        with path.open("rb") as f:
            head = f.read(_HEAD).decode("utf-8", "replace")
    except OSError:
        return False
    return "jupytext:" in head and ("text_representation" in head or "formats:" in head)


def tracks_of(course: str, checkout: Path) -> list[Track]:
    """The tracks of the course checked out at ``checkout``: its configuration's (the defaults when its file is
    refused), else derived from its notebooks, leaving out its read-only and Python modules folders."""
    try:
        config = load_course_config(checkout)
    except InvalidConfig:
        config = CourseConfig()
    if config.tracks:
        return list(config.tracks)
    mounts = config.mounts(checkout)
    skip = [*mounts.readonly, *([mounts.pythonpath] if mounts.pythonpath else [])]
    return course_tracks(course, config, notebook_files(checkout, skip=skip))
