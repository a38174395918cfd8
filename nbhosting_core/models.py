"""The data nbhosting passes around: plain, immutable pydantic models."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

from pydantic import BaseModel, ConfigDict


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)


class Account(_Frozen):
    """A student's Linux account."""

    student_id: str
    user: str
    uid: int
    gid: int
    home: Path


class ContainerStatus(str, Enum):
    """What podman says of a container, folded into what nbhosting acts on."""

    RUNNING = "running"
    STOPPED = "stopped"  # created, exited, stopped: startable
    BROKEN = "broken"  # anything else: replace it


class ContainerRecord(_Frozen):
    """A student's notebook container as read back from podman (labels are the source of truth)."""

    name: str
    course: str
    student_id: str
    user: str
    key: str
    rootfs: str
    status: ContainerStatus
    started_at: float | None = None


class LaunchState(str, Enum):
    """Where a launch stands."""

    READY = "ready"
    STARTING = "starting"


class Launch(_Frozen):
    """The answer to "open this notebook for this student": who, which container, where to go."""

    course: str
    notebook: str
    student_id: str
    user: str
    uid: int
    container: str
    key: str
    url: str
    state: LaunchState
    created: bool = False
    copied: bool = False
