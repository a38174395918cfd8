"""The demo course that `nbh serve --demo` installs: a few real notebooks, made with nbformat."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

DEMO_COURSE = "demo"
DEMO_STUDENT = "demo-student"
DEMO_PLATFORM = "demo"


def _notebooks() -> dict[str, nbformat.NotebookNode]:
    welcome = new_notebook(
        cells=[
            new_markdown_cell(
                "# Welcome to nbhosting\n\nThis notebook is **your own copy**: change it, run it, "
                "save it. Coming back later, you will find your version, not the original."
            ),
            new_code_cell("6 * 7"),
            new_code_cell(
                "import sys, getpass, os\nprint(sys.version)\nprint('running as', getpass.getuser(), 'in', os.getcwd())"
            ),
        ]
    )
    loops = new_notebook(
        cells=[
            new_markdown_cell(
                "# Loops and lists\n\nA second notebook of the same course: it opens in the same "
                "notebook server as the first one."
            ),
            new_code_cell("squares = [n * n for n in range(10)]\nsquares"),
            new_code_cell("sum(squares)"),
        ]
    )
    files = new_notebook(
        cells=[
            new_markdown_cell("# Files\n\nFiles you write live in your private workspace for this course."),
            new_code_cell(
                "with open('hello.txt', 'w') as f:\n    f.write('hello from my notebook\\n')\nopen('hello.txt').read()"
            ),
        ]
    )
    for nb in (welcome, loops, files):
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return {"01-welcome.ipynb": welcome, "02-loops.ipynb": loops, "more/03-files.ipynb": files}


def ensure_demo_course(courses_dir: Path) -> Path:
    """Create the demo course under ``courses_dir`` (files already there are left alone)."""
    root = courses_dir / DEMO_COURSE
    for name, notebook in _notebooks().items():
        path = root / name
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            nbformat.write(notebook, str(path))
    return root


def ensure_demo_platform(platforms_file: Path) -> bool:
    """Make a platforms file with one platform, ``demo``, that may sign launches of the demo course.

    Only when there is no platforms file yet (an admin's file is never touched); True if one was made. The
    secret is random, and the file (which holds it) is readable by root only.
    """
    if platforms_file.exists():
        return False
    platforms_file.parent.mkdir(parents=True, exist_ok=True)
    text = (
        '# The platforms nbhosting trusts: who may send students in, and how (see the README, "Platforms").\n'
        "# Made by `nbh serve --demo`: it signs launch URLs of the demo course (`nbh sign` prints one).\n"
        "[[platform]]\n"
        f'name = "{DEMO_PLATFORM}"\n'
        "origins = []\n"
        f'courses = ["{DEMO_COURSE}"]\n'
        'methods = ["signed"]\n'
        f'secret = "{secrets.token_urlsafe(32)}"\n'
    )
    # a name of its own: two threads (or processes) may make the file at the same time, one link wins
    tmp = platforms_file.with_name(f".{platforms_file.name}.{os.getpid()}.{secrets.token_hex(8)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    try:
        os.link(tmp, platforms_file)  # never replaces a file someone made meanwhile
    except FileExistsError:
        return False
    finally:
        tmp.unlink()
    return True
