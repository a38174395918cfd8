"""The probe that asks a student's Jupyter: one deadline for everything, a cap on what it reads."""

import socket
import threading
import time

import pytest

from nbhosting_core.system.unixhttp import get, request


@pytest.fixture
def serve(tmp_path):
    """Run ``handler(conn)`` for each connection on a Unix socket; yields its path."""
    servers = []

    def start(handler):
        path = tmp_path / f"s{len(servers)}.sock"
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(str(path))
        listener.listen()
        servers.append(listener)

        def loop():
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                threading.Thread(target=handler, args=(conn,), daemon=True).start()

        threading.Thread(target=loop, daemon=True).start()
        return path

    yield start
    for listener in servers:
        listener.close()


def answer(body: bytes):
    def handler(conn):
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n" + body)
        conn.close()

    return handler


def test_a_normal_answer_is_read(serve):
    got = get(serve(answer(b'{"ok": true}')), "/api/status", {"Authorization": "token t"})
    assert got.status == 200 and got.body == b'{"ok": true}'


def test_a_server_that_answers_one_byte_a_second_cannot_hold_the_probe(serve):
    def trickle(conn):
        conn.recv(65536)
        try:
            for byte in b"HTTP/1.1 200 OK\r\n\r\n" + b"x" * 100:
                conn.sendall(bytes([byte]))
                time.sleep(1)
        except OSError:
            pass

    started = time.monotonic()
    assert get(serve(trickle), "/api/status", {}, deadline=1.5) is None
    assert time.monotonic() - started < 2.5


def test_a_server_that_never_stops_talking_is_cut_at_the_cap(serve):
    def flood(conn):
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\n\r\n")
        try:
            while True:
                conn.sendall(b"y" * 65536)
        except OSError:
            pass

    got = get(serve(flood), "/x", {}, deadline=5, max_bytes=100_000)
    assert got is not None and len(got.body) < 100_000


def test_nothing_listening_or_no_http_is_no_answer(serve, tmp_path):
    assert get(tmp_path / "absent.sock", "/", {}) is None

    def garbage(conn):
        conn.recv(100)
        conn.sendall(b"SSH-2.0-OpenSSH\r\n")
        conn.close()

    assert get(serve(garbage), "/", {}) is None


def test_a_post_sends_its_body_with_its_length(serve):
    seen = []

    def echo(conn):
        data = b""
        while b"\r\n\r\n" not in data or not data.endswith(b"}"):
            data += conn.recv(65536)
        seen.append(data)
        conn.sendall(b"HTTP/1.1 201 Created\r\n\r\ncreated")
        conn.close()

    got = request(serve(echo), "POST", "/api/sessions", {"Content-Type": "application/json"}, b'{"a": 1}')
    assert got is not None and got.status == 201 and got.body == b"created"
    head, _, body = seen[0].partition(b"\r\n\r\n")
    assert head.startswith(b"POST /api/sessions HTTP/1.0\r\n") and b"\r\nContent-Length: 8" in head
    assert body == b'{"a": 1}'
