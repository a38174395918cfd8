import sys

import pytest

from nbhosting_core import CommandFailed, ImageBuildError, SubprocessRunner


def test_run_returns_stdout_and_fails_with_the_command_and_its_stderr():
    runner = SubprocessRunner()
    assert runner.run([sys.executable, "-c", "print('hi')"]) == "hi\n"
    with pytest.raises(CommandFailed) as failed:
        runner.run([sys.executable, "-c", "import sys; sys.stderr.write('bad thing\\n'); sys.exit(3)"])
    assert failed.value.returncode == 3 and "bad thing" in str(failed.value)
    assert "bad thing" not in failed.value.message  # the student never sees an admin's detail


def test_a_missing_program_or_a_timeout_is_a_command_failure():
    runner = SubprocessRunner()
    with pytest.raises(CommandFailed):
        runner.run(["/nonexistent/tool"])
    with pytest.raises(CommandFailed):
        runner.run([sys.executable, "-c", "import time; time.sleep(5)"], timeout=0.2)


def test_stream_passes_every_line_as_it_comes_and_fails_with_the_callers_error():
    runner = SubprocessRunner()
    lines = []
    code = "import sys\nfor i in range(3): print(i, flush=True)\nsys.stderr.write('err\\n')"
    assert runner.stream([sys.executable, "-c", code], on_line=lines.append) == "0\n1\n2\nerr\n"
    assert lines == ["0", "1", "2", "err"]
    with pytest.raises(ImageBuildError) as failed:
        runner.stream(
            [sys.executable, "-c", "print('step 3 failed'); raise SystemExit(1)"],
            on_line=lines.append,
            failure=ImageBuildError,
        )
    assert "step 3 failed" in failed.value.log_detail and failed.value.reason == "image-build-failed"


def test_stream_kills_a_command_that_outlives_its_timeout():
    with pytest.raises(CommandFailed) as failed:
        SubprocessRunner().stream([sys.executable, "-c", "import time; time.sleep(10)"], on_line=print, timeout=0.3)
    assert "killed after" in failed.value.stderr
