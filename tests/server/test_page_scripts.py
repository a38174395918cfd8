"""The pages' scripts, run in Node with a stand-in browser (page_scripts.js): what they fetch, show and open, when.

The progress page follows a start; told the host is busy (503), it says so and asks again after the delay it was
given, at the same URL. The busy page launches again by itself after its delay, query string included.
"""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from nbhosting_server import pages

NODE = shutil.which("node")
HARNESS = Path(__file__).with_name("page_scripts.js")
FOLLOW = "/notebookLazyCopy/demo/a.ipynb/alice?poll=test.1600.abc"
BUSY = {"state": "busy", "reason": "busy", "message": "All notebook servers are in use right now."}

pytestmark = pytest.mark.skipif(NODE is None, reason="needs node (apt-get install nodejs)")


def run(page_html: str, replies: list[dict[str, object]], until_ms: int, tmp_path: Path) -> dict[str, object]:
    script = re.search(r"<script>(.*?)</script>", page_html, re.S).group(1)
    path = tmp_path / "script.js"
    path.write_text(script)
    out = subprocess.run(
        [NODE, str(HARNESS), str(path), json.dumps(replies), str(until_ms)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(out.stdout)


def progress(timeout: float = 60) -> str:
    return pages.progress_page(FOLLOW, "a.ipynb", "demo", timeout).body.decode()


def fetches(result):
    return [(e["t"], e["fetch"]) for e in result["events"] if "fetch" in e]


def failed(result):
    return result["elements"].get("main", {}).get("className") == "error"


def test_a_start_is_followed_until_ready_then_the_notebook_opens(tmp_path):
    replies = [
        {"status": 200, "body": {"state": "starting"}},
        {"status": 200, "body": {"state": "ready", "url": "/nb/k/"}},
    ]
    result = run(progress(), replies, 10_000, tmp_path)
    assert fetches(result) == [(0, FOLLOW + "&status=1"), (150, FOLLOW + "&status=1")]
    assert result["events"][-1] == {"t": 150, "replace": "/nb/k/"}


def test_told_the_host_is_busy_the_page_says_so_and_asks_again_after_the_delay_at_the_same_url(tmp_path):
    replies = [
        {"status": 503, "body": {**BUSY, "retry_after": 7}, "headers": {"Retry-After": "7"}},
        {"status": 200, "body": {"state": "starting"}},
        {"status": 200, "body": {"state": "ready", "url": "/nb/k/"}},
    ]
    result = run(progress(), replies, 60_000, tmp_path)
    assert fetches(result) == [(0, FOLLOW + "&status=1"), (7000, FOLLOW + "&status=1"), (7150, FOLLOW + "&status=1")]
    assert result["events"][-1] == {"t": 7150, "replace": "/nb/k/"}
    assert result["elements"]["note"]["hidden"] is True  # the notice went once the host took the launch


def test_the_busy_notice_stays_up_while_waiting(tmp_path):
    replies = [{"status": 503, "body": {**BUSY, "retry_after": 30}, "headers": {"Retry-After": "30"}}]
    result = run(progress(), replies, 20_000, tmp_path)
    assert fetches(result) == [(0, FOLLOW + "&status=1")]  # nothing before the delay
    note = result["elements"]["note"]
    assert not note["hidden"] and "All notebook servers are in use" in note["text"] and "30 s" in note["text"]
    assert not failed(result)


def test_the_retry_after_header_serves_when_the_body_says_no_delay(tmp_path):
    replies = [{"status": 503, "body": BUSY, "headers": {"Retry-After": "5"}}]
    result = run(progress(), replies, 6_000, tmp_path)
    assert [t for t, _ in fetches(result)][:3] == [0, 5000, 5150]


def test_time_spent_waiting_for_the_busy_host_does_not_count_against_the_start(tmp_path):
    replies = [{"status": 503, "body": {**BUSY, "retry_after": 90}}] + [
        {"status": 200, "body": {"state": "starting"}}
    ] * 5
    result = run(progress(timeout=30), replies, 92_000, tmp_path)
    assert not failed(result)  # 92 s after the first poll, 2 s into the start
    assert fetches(result)[1][0] == 90_000


def test_a_real_failure_still_shows_the_error_with_a_retry(tmp_path):
    replies = [{"status": 503, "body": {"state": "failed", "reason": "start-failed", "message": "It stopped."}}]
    result = run(progress(), replies, 5_000, tmp_path)
    assert failed(result)
    assert result["elements"]["status"]["children"] == ["It stopped.", "Try again"]


def test_the_busy_page_launches_again_after_its_delay_with_the_query_string(tmp_path):
    launch = "/notebookLazyCopy/demo/a.ipynb/alice?platform=edx&expires=99&signature=abc"
    page = pages.busy_page(launch, "Too many notebooks are being opened from here right now.", 12)
    assert page.status_code == 503 and page.headers["retry-after"] == "12"
    result = run(page.body.decode(), [], 60_000, tmp_path)
    assert result["events"] == [{"t": 12_000, "replace": launch}]
    assert result["elements"]["left"]["text"] == "1 s"  # counted down meanwhile
