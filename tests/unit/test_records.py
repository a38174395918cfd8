import os
import subprocess
import sys
from pathlib import Path

from nbhosting_core.system.records import Records, RunRecord, ServerRecord, process_start, process_uid

KEY = "b" * 40


def record(name="nbh-x-c", key=KEY, phase="created"):
    return ServerRecord(
        name=name,
        course="c",
        student_id="x",
        user="nbh-x",
        uid=os.getuid(),
        gid=os.getgid(),
        key=key,
        image="/r",
        phase=phase,
    )


def test_server_records_are_written_read_listed_and_dropped(tmp_path):
    records = Records(tmp_path / "servers", tmp_path / "running")
    assert records.server("nbh-x-c") is None and records.servers() == []
    records.put_server(record(phase="creating"))
    records.put_server(record())
    assert records.server("nbh-x-c").phase == "created" and len(records.servers()) == 1
    (tmp_path / "servers" / "junk.json").write_text("{not json")
    assert len(records.servers()) == 1  # a torn file is skipped, not fatal
    records.drop_server("nbh-x-c")
    assert records.server("nbh-x-c") is None
    assert oct((tmp_path / "servers").stat().st_mode & 0o777) == "0o700"


def test_a_run_is_alive_only_while_its_very_process_runs(tmp_path):
    records = Records(tmp_path / "servers", tmp_path / "running")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        run = RunRecord(key=KEY, name="n", pid=child.pid, pid_start=process_start(child.pid), started_at=1.0)
        records.put_run(run)
        assert records.alive(records.run(KEY), os.getuid())
        assert not records.alive(run, os.getuid() + 1)  # another uid: not ours
        reused = run.model_copy(update={"pid_start": run.pid_start + 1})
        assert not records.alive(reused, os.getuid())  # same pid, another process: not alive
    finally:
        child.kill()
        child.wait()
    assert not records.alive(run, os.getuid())
    records.drop_run(KEY)
    assert records.run(KEY) is None and records.runs() == []


def test_process_facts_come_from_proc():
    assert process_start(os.getpid()) is not None and process_uid(os.getpid()) == os.getuid()
    assert process_start(2**22 + 1) is None and process_uid(2**22 + 1) is None


def test_a_zombie_is_no_ones_process():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    import time

    for _ in range(200):  # until it has exited (and, not yet reaped, is a zombie)
        if Path(f"/proc/{child.pid}/status").read_text().find("State:\tZ") >= 0:
            break
        time.sleep(0.01)
    try:
        assert process_uid(child.pid) is None
    finally:
        child.wait()
