import json

from nbhosting_core.clock import parse_time
from nbhosting_core.jupyterapi import has_session, kernel_name, new_session, parse_activity

STATUS = json.dumps(
    {
        "connections": 1,
        "kernels": 2,
        "last_activity": "2026-11-25T10:00:00.000000Z",
        "started": "2026-11-25T09:00:00.000000Z",
    }
).encode()


def test_activity_is_the_latest_of_the_server_and_its_kernels_and_busy_kernels_are_counted():
    kernels = json.dumps(
        [
            {"id": "1", "execution_state": "busy", "last_activity": "2026-11-25T10:05:00Z", "connections": 1},
            {"id": "2", "execution_state": "idle", "last_activity": "2026-11-25T09:30:00Z", "connections": 0},
        ]
    ).encode()
    activity = parse_activity(STATUS, kernels)
    assert activity.last_activity == parse_time("2026-11-25T10:05:00Z")
    assert (activity.kernels, activity.busy_kernels, activity.connections) == (2, 1, 1)


def test_without_the_kernel_list_the_status_alone_is_used():
    activity = parse_activity(STATUS, None)
    assert activity.last_activity == parse_time("2026-11-25T10:00:00Z") and activity.busy_kernels == 0


def test_garbage_is_no_activity_rather_than_an_error():
    assert parse_activity(b"<html>", None) is None
    assert parse_activity(b"[]", b"{}") is None
    assert parse_activity(b'{"last_activity": 5}', b'["x", 3]').last_activity is None


def test_times_parse_with_nanoseconds_and_zones_and_podmans_zero_time_is_none():
    assert parse_time("2026-11-25T21:08:02.123456789Z") == parse_time("2026-11-25T21:08:02.123456+00:00")
    assert parse_time("0001-01-01T00:00:00Z") is None
    assert parse_time("2026-11-25T21:08:02") is None  # no zone: ambiguous
    assert parse_time("nonsense") is None and parse_time(None) is None


def test_the_kernel_a_notebook_asks_for_is_its_kernelspecs_name_or_none():
    def notebook(metadata: object) -> bytes:
        return json.dumps({"cells": [], "metadata": metadata, "nbformat": 4, "nbformat_minor": 5}).encode()

    assert kernel_name(notebook({"kernelspec": {"name": "ir", "display_name": "R"}})) == "ir"
    for metadata in ({}, {"kernelspec": {}}, {"kernelspec": {"name": ""}}, {"kernelspec": "python3"}, []):
        assert kernel_name(notebook(metadata)) is None
    assert kernel_name(b"not json") is None


def test_a_notebook_has_a_session_when_jupyter_lists_one_for_its_path():
    sessions = [{"id": "s1", "path": "w1/intro.ipynb", "kernel": {"id": "k1"}}, "garbage"]
    assert has_session(json.dumps(sessions).encode(), "w1/intro.ipynb") is True
    assert has_session(json.dumps(sessions).encode(), "intro.ipynb") is False
    assert has_session(b"[]", "intro.ipynb") is False
    assert has_session(b"<html>", "intro.ipynb") is None  # unreadable: no session started on a guess


def test_a_new_session_is_what_the_uis_ask_for():
    assert json.loads(new_session("w1/intro.ipynb", "python3")) == {
        "path": "w1/intro.ipynb",
        "name": "intro.ipynb",
        "type": "notebook",
        "kernel": {"name": "python3"},
    }
    assert json.loads(new_session("intro.ipynb", None))["kernel"] == {}  # Jupyter's default kernel


def test_a_kernel_no_client_has_talked_to_is_not_busy():
    # Jupyter says "starting" until a client asks the kernel something: the kernel started for a launch that the
    # student never used must not keep their server from being culled
    kernels = [{"id": "k1", "execution_state": "starting", "last_activity": "2024-05-01T10:00:00Z"}]
    activity = parse_activity(b'{"last_activity": "2024-05-01T10:00:00Z"}', json.dumps(kernels).encode())
    assert activity is not None and activity.kernels == 1 and activity.busy_kernels == 0
