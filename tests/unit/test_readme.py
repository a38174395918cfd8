"""What the README tells platforms to do works: its signing snippet makes URLs the door lets in."""

import re
import time
import urllib.parse
from pathlib import Path

from nbhosting_core.launches import admit
from nbhosting_core.platforms import parse_platforms

README = Path(__file__).resolve().parents[2] / "README.md"
SECRET = "0123456789abcdef0123456789abcdef"


def test_the_readmes_signing_snippet_makes_urls_the_door_lets_in():
    snippet = re.search(r"in any language; in Python:\n\n```python\n(.*?)```", README.read_text(), re.S)
    assert snippet, "the README lost its signing snippet"
    namespace: dict[str, object] = {}
    exec(snippet.group(1), namespace)  # noqa: S102 - our own README
    make = namespace["nbhosting_url"]
    url = make("nb.example.org", "edx", SECRET, "python101", "w1/intro.ipynb", "4f8a")  # type: ignore[operator]
    parts = urllib.parse.urlsplit(url)
    prefix, course, *notebook, student = parts.path.strip("/").split("/")
    assert (parts.netloc, prefix) == ("nb.example.org", "notebookLazyCopy")
    platforms = parse_platforms(
        f'[[platform]]\nname = "edx"\ncourses = ["*"]\nmethods = ["signed"]\nsecret = "{SECRET}"\n'
    )
    query = dict(urllib.parse.parse_qsl(parts.query))
    admission = admit(
        platforms,
        course,
        urllib.parse.unquote("/".join(notebook)),
        urllib.parse.unquote(student),
        query,
        now=time.time(),
        max_ttl=24 * 3600,
    )
    assert admission.student_id == "edx:4f8a"
