"""The demo courses that `nbh serve --demo` installs: a few real notebooks, made with nbformat.

``demo`` runs the default image; ``datascience`` has an image of its own (the default one plus numpy, pandas and
matplotlib, built from its ``.nbhosting/Containerfile``), whose first notebook draws a plot.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from nbhosting_core import NbhostingError, Settings
from nbhosting_core.system.courseimages import Built, CourseImages

DEMO_COURSE = "demo"
DEMO_STUDENT = "demo-student"
DEMO_PLATFORM = "demo"
DATASCIENCE_COURSE = "datascience"
DATASCIENCE_NOTEBOOK = "01-plot.ipynb"
#: the data-science course's image: its build context, in the course's .nbhosting/ folder
DATASCIENCE_CONTEXT = {
    "course.toml": '# the image this course runs: "default", "course" (.nbhosting/Containerfile) or a course\'s name\n'
    'image = "course"\n',
    "requirements.txt": "# downloaded as wheels on the host by nbhosting (the build has no network)\n"
    "numpy>=2,<3\npandas>=2.2,<3\nmatplotlib>=3.9,<4\n",
    "Containerfile": """\
# The datascience demo course's image: nbhosting's default image, plus numpy, pandas and matplotlib.
# nbhosting passes BASE_IMAGE (its default image, e.g. localhost/nbhosting-default:<hash>) and offers the wheels
# of requirements.txt in wheels/: the build has no network.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN --mount=type=bind,source=wheels,target=/nbhosting-wheels \\
    --mount=type=bind,source=requirements.txt,target=/nbhosting-requirements.txt \\
    /opt/jupyter/bin/pip install --no-cache-dir --disable-pip-version-check --no-index \\
        --find-links /nbhosting-wheels -r /nbhosting-requirements.txt
""",
}


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


def _datascience_notebooks() -> dict[str, nbformat.NotebookNode]:
    plot = new_notebook(
        cells=[
            new_markdown_cell(
                "# A course with its own image\n\nThis course's servers run an image built from the course's "
                "`.nbhosting/Containerfile`: nbhosting's image plus numpy, pandas and matplotlib."
            ),
            new_code_cell(
                "import numpy as np, pandas as pd, matplotlib\n"
                "import matplotlib.pyplot as plt\n"
                "print('numpy', np.__version__, '| pandas', pd.__version__, '| matplotlib', matplotlib.__version__)"
            ),
            new_code_cell(
                "x = np.linspace(0, 4 * np.pi, 200)\n"
                "df = pd.DataFrame({'x': x, 'sin': np.sin(x), 'cos': np.cos(x)})\n"
                "df.plot(x='x', title='Drawn in this course\\'s own image')\n"
                "plt.show()"
            ),
            new_code_cell("df.describe()"),
        ]
    )
    plot.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return {DATASCIENCE_NOTEBOOK: plot}


def ensure_datascience_course(courses_dir: Path) -> Path:
    """Create the data-science demo course (notebooks and image context) under ``courses_dir`` (files already
    there are left alone); build its image with :meth:`nbhosting_core.system.courseimages.CourseImages.build`."""
    root = courses_dir / DATASCIENCE_COURSE
    for name, notebook in _datascience_notebooks().items():
        if not (root / name).exists():
            root.mkdir(parents=True, exist_ok=True)
            nbformat.write(notebook, str(root / name))
    (root / ".nbhosting").mkdir(parents=True, exist_ok=True)
    for name, text in DATASCIENCE_CONTEXT.items():
        if not (root / ".nbhosting" / name).exists():
            (root / ".nbhosting" / name).write_text(text)
    return root


def build_datascience_image(settings: Settings, *, log: Callable[[str], None]) -> Built | None:
    """Build the data-science course's image if its context changed (cached like the default image: a few
    seconds to find it up to date). A failure is logged, not raised: the course then runs the default image."""
    try:
        built = CourseImages(settings).build(DATASCIENCE_COURSE, log=log)
    except NbhostingError as exc:
        log(f"the {DATASCIENCE_COURSE} course's image was not built: {exc}; its servers get the default image")
        return None
    if built.built:
        log(f"the {DATASCIENCE_COURSE} course's image built in {built.seconds:.0f} s (cached from now on)")
    return built


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
        f'courses = ["{DEMO_COURSE}", "{DATASCIENCE_COURSE}"]\n'
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
