"""The course platform the server tests launch from: one that signs its launch URLs."""

from pathlib import Path
from typing import Any

import nbformat
from nbformat.v4 import new_notebook

from nbhosting_core import Settings
from nbhosting_core.launches import signed_launch_path
from nbhosting_core.platforms import parse_platforms

PLATFORMS = """
[[platform]]
name = "test"
origins = ["https://course.example.org"]
courses = ["*"]
methods = ["signed"]
secret = "0123456789abcdef0123456789abcdef"
"""
TEST = parse_platforms(PLATFORMS).get("test")


def signed_url(
    now: float,
    student: str = "alice",
    notebook: str = "a.ipynb",
    course: str = "demo",
    prefix: str = "notebookLazyCopy",
    expires: int | None = None,
) -> str:
    """A launch URL signed by the test platform (as the platform's own code makes them), valid 10 minutes."""
    assert TEST is not None
    return signed_launch_path(TEST, course, notebook, student, expires or int(now) + 600, prefix=prefix)


def demo_settings(tmp_path: Path, **extra: Any) -> Settings:
    """An installation in ``tmp_path`` (a 30 s start, room for 100 servers, ``extra``) whose platform is the test
    one, with a course ``demo`` holding an empty ``a.ipynb``."""
    settings = Settings(
        data_root=tmp_path / "data", run_dir=tmp_path / "run", start_timeout=30, max_running=100, **extra
    )
    settings.data_root.mkdir(parents=True)
    settings.effective_platforms_file.write_text(PLATFORMS)
    (settings.courses_dir / "demo").mkdir(parents=True)
    nbformat.write(new_notebook(), str(settings.courses_dir / "demo" / "a.ipynb"))
    return settings
