"""Versions of notebook images, as pure decisions: their names, the newest of a course, what may be pruned.

Every image nbhosting serves is a folder of ``images_dir`` holding a read-only root filesystem:

* ``default-<hash12>``: the default image (one per content hash of its build context);
* ``course-<course>-<n>-<hash12>``: version ``n`` (1, 2, ...) of a course's own image, ``hash12`` the content hash
  of its build context and base image. A course's versions only grow: a rebuild of a changed Containerfile is
  version ``n + 1``, and the newest version is what new servers of that course get.

Nothing here touches the filesystem: :mod:`nbhosting_core.system.courseimages` lists the folders and acts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath

COURSE_PREFIX = "course-"
_HASH = r"[0-9a-f]{12}"
_VERSION_RE = re.compile(rf"^{COURSE_PREFIX}(?P<course>.+)-(?P<number>[1-9][0-9]*)-(?P<digest>{_HASH})$")
_DEFAULT_RE = re.compile(rf"^default-{_HASH}$")


@dataclass(frozen=True, order=True)
class ImageVersion:
    """Version ``number`` of ``course``'s own image, built from a context whose content hash is ``digest``."""

    course: str
    number: int
    digest: str

    @property
    def name(self) -> str:
        """Its folder's name in ``images_dir``: ``course-<course>-<number>-<digest>``."""
        return f"{COURSE_PREFIX}{self.course}-{self.number}-{self.digest}"


def parse_version(name: str) -> ImageVersion | None:
    """The course image version a folder's ``name`` stands for, or None if it is not one."""
    found = _VERSION_RE.match(name)
    if found is None:
        return None
    return ImageVersion(found["course"], int(found["number"]), found["digest"])


def image_label(image: str) -> str:
    """A server's image (its rootfs path) as people read it: ``<course> v<n>``, ``default <hash6>``, else the name
    of its folder."""
    folder = PurePosixPath(image).parent.name
    version = parse_version(folder)
    if version is not None:
        return f"{version.course} v{version.number}"
    if folder.startswith("default-"):
        return f"default {folder.removeprefix('default-')[:6]}"
    return folder or image


def versions_of(names: Iterable[str], course: str) -> list[ImageVersion]:
    """The versions of ``course`` among folder ``names``, oldest first."""
    return sorted(v for v in map(parse_version, names) if v is not None and v.course == course)


def newest(names: Iterable[str], course: str) -> ImageVersion | None:
    """The newest version of ``course`` among folder ``names`` (the highest number), or None."""
    found = versions_of(names, course)
    return found[-1] if found else None


def next_version(names: Iterable[str], course: str, digest: str) -> ImageVersion:
    """The version a build of ``course`` with content hash ``digest`` publishes: one more than the newest."""
    last = newest(names, course)
    return ImageVersion(course, 1 if last is None else last.number + 1, digest)


def is_up_to_date(names: Iterable[str], course: str, digest: str) -> bool:
    """True if the newest version of ``course`` was built from the same content (nothing to build)."""
    last = newest(names, course)
    return last is not None and last.digest == digest


def prunable(names: Iterable[str], *, in_use: Iterable[str], in_service: Iterable[str]) -> list[str]:
    """The image folders among ``names`` that may be removed, sorted.

    An image folder (``default-<hash>`` or a course version) may go when no server uses it (``in_use``: the
    folder names of every server's image, running or stopped), it is not the newest version of its course, and
    it is not an image in service (``in_service``: e.g. the default image new servers get). Any other folder
    (wheels, build caches, half-made temporaries) is never a candidate.
    """
    names = list(names)
    keep = set(in_use) | set(in_service)
    courses = {v.course for v in map(parse_version, names) if v is not None}
    keep |= {last.name for course in courses if (last := newest(names, course)) is not None}
    candidates = (n for n in names if _DEFAULT_RE.match(n) or parse_version(n) is not None)
    return sorted(n for n in candidates if n not in keep)
