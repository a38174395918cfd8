"""Real git repositories made by tests: an upstream a course is cloned from, with commits made as a teacher would."""

from __future__ import annotations

import subprocess
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

GIT_ENV = {
    "GIT_AUTHOR_NAME": "Teacher",
    "GIT_AUTHOR_EMAIL": "teacher@example.org",
    "GIT_COMMITTER_NAME": "Teacher",
    "GIT_COMMITTER_EMAIL": "teacher@example.org",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_CONFIG_GLOBAL": "/dev/null",
    "PATH": "/usr/bin:/bin",
    "HOME": "/nonexistent",
}


def git(repo: Path, *argv: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *argv], check=True, capture_output=True, text=True, env=GIT_ENV
    ).stdout.strip()


def notebook_text(*sources: str) -> str:
    return nbformat.writes(new_notebook(cells=[new_markdown_cell("# notes"), *(new_code_cell(s) for s in sources)]))


class Upstream:
    """A teacher's repository (non-bare, on branch ``main``): write files, commit, force-push history."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True)
        git(path, "init", "-q", "-b", "main")

    def write(self, relative: str, text: str) -> Upstream:
        target = self.path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        return self

    def remove(self, relative: str) -> Upstream:
        git(self.path, "rm", "-q", relative)
        return self

    def commit(self, message: str) -> str:
        git(self.path, "add", "-A")
        git(self.path, "commit", "-q", "-m", message)
        return git(self.path, "rev-parse", "HEAD")

    def rewrite_history(self, message: str) -> str:
        """Replace the whole history with one new commit (what a force-push does to a remote)."""
        git(self.path, "checkout", "-q", "--orphan", "rewritten")
        git(self.path, "add", "-A")
        git(self.path, "commit", "-q", "-m", message)
        git(self.path, "branch", "-D", "main")
        git(self.path, "branch", "-m", "main")
        git(self.path, "gc", "-q", "--prune=now")
        return git(self.path, "rev-parse", "HEAD")


def course_repo(path: Path) -> Upstream:
    """An upstream with two commits: a first notebook, then a second week, data and a course.toml."""
    up = Upstream(path)
    up.write("w1/intro.ipynb", notebook_text("1 + 1")).commit("week 1")
    up.write("w2/loops.ipynb", notebook_text("for i in range(3): print(i)"))
    up.write("data/numbers.csv", "1,2,3\n")
    up.write(".nbhosting/course.toml", 'ui = "lab"\n').commit("week 2, data, configuration")
    return up
