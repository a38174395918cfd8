"""The nonce store, as a spec: a nonce is accepted once, by one process of many, and forgotten after its window."""

import multiprocessing
import os
import stat

from nbhosting_core.system.nonces import BUCKET, NonceStore

NOW = 1_000_000.0


class Clock:
    def __init__(self, now=NOW):
        self.now = now

    def __call__(self):
        return self.now


def test_a_nonce_is_accepted_once(tmp_path):
    store = NonceStore(tmp_path / "nonces", keep=300, clock=Clock())
    assert store.claim("lti11:key", NOW, "n-1") is True
    assert store.claim("lti11:key", NOW, "n-1") is False  # the replay
    assert store.claim("lti11:key", NOW, "n-2") is True
    assert store.claim("lti11:other-key", NOW, "n-1") is True  # another consumer's nonce space
    assert store.claim("lti11:key", NOW + 1, "n-1") is True  # another (signed) time: another request


def test_the_store_is_private_and_names_are_hashes(tmp_path):
    store = NonceStore(tmp_path / "nonces", keep=300, clock=Clock())
    store.claim("lti11:key", NOW, "../../etc/passwd")
    assert stat.S_IMODE(os.stat(tmp_path / "nonces").st_mode) == 0o700
    (folder,) = (tmp_path / "nonces").iterdir()
    (name,) = folder.iterdir()
    assert len(name.name) == 64 and all(c in "0123456789abcdef" for c in name.name)


def test_nonces_are_forgotten_once_their_time_has_left_the_window(tmp_path):
    clock = Clock()
    store = NonceStore(tmp_path / "nonces", keep=300, clock=clock)
    store.claim("s", NOW, "old")
    clock.now = NOW + 300  # still inside the window: kept
    assert store.sweep(force=True) == 0 and store.claim("s", NOW, "old") is False
    clock.now = NOW + 300 + 2 * BUCKET
    assert store.sweep(force=True) == 1
    assert not any((tmp_path / "nonces").iterdir())


def test_sweeping_runs_at_most_once_a_minute_per_process(tmp_path):
    clock = Clock()
    store = NonceStore(tmp_path / "nonces", keep=60, clock=clock)
    store.claim("s", NOW, "a")  # sweeps (nothing)
    clock.now += 10 * BUCKET
    assert store.sweep(force=True) == 1
    store.claim("s", clock.now, "b")
    clock.now += 10 * BUCKET
    assert store.sweep() == 1
    store.claim("s", clock.now, "c")
    clock.now += 10 * BUCKET
    assert store.sweep() == 1
    assert store.sweep() == 0  # within the minute: not again


def _claim(root, barrier, results, index):
    barrier.wait()
    results[index] = NonceStore(root, keep=300, clock=lambda: NOW).claim("lti11:key", NOW, "raced")


def test_of_many_processes_claiming_one_nonce_at_once_exactly_one_wins(tmp_path):
    context = multiprocessing.get_context("fork")
    count = 8
    barrier = context.Barrier(count)
    results = context.Array("b", count)
    processes = [context.Process(target=_claim, args=(tmp_path / "nonces", barrier, results, i)) for i in range(count)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(30)
    assert all(process.exitcode == 0 for process in processes)
    assert sum(results) == 1, f"{sum(results)} processes accepted the same nonce"
