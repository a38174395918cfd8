"""The course platform the server tests launch from: one that signs its launch URLs."""

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
