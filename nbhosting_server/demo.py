"""The demo course that `nbh serve --demo` installs: a few real notebooks, made with nbformat."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

DEMO_COURSE = "demo"
DEMO_STUDENT = "demo-student"


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
