from nbhosting_core.activity import ActivityLog

KEY = "a" * 40


class Clock:
    now = 1_000_000.0

    def __call__(self):
        return self.now


def test_requests_are_written_at_most_once_per_flush_interval_and_shared_through_the_disk(tmp_path):
    clock = Clock()
    worker1 = ActivityLog(tmp_path, flush=30, clock=clock)
    worker2 = ActivityLog(tmp_path, flush=30, clock=clock)
    assert worker1.last_seen(KEY) is None
    assert worker1.touch(KEY) is True
    assert worker1.touch(KEY) is False  # within the interval: memory only
    assert worker2.last_seen(KEY) == clock.now  # another process reads it from the disk
    clock.now += 31
    assert worker1.touch(KEY) is True and worker2.last_seen(KEY) == clock.now


def test_only_keys_are_recorded_and_forgetting_removes_the_record(tmp_path):
    log = ActivityLog(tmp_path, flush=30, clock=Clock())
    assert log.touch("../../etc/passwd") is False and list(tmp_path.iterdir()) == []
    log.touch(KEY)
    log.forget(KEY)
    assert log.last_seen(KEY) is None
