"""A tiny HTTP client over a Unix socket, bounded in time and size: how nbhosting asks a Jupyter server.

The server on the other end runs the student's code: it may answer slowly on purpose, or without end. Every
exchange has ONE deadline for everything (connect, send, every read) and a cap on the bytes read, so that no
probe can be held open by a student.
"""

from __future__ import annotations

import select
import socket
import time
from dataclasses import dataclass
from pathlib import Path

MAX_BYTES = 256 * 1024


@dataclass(frozen=True)
class Answer:
    """An HTTP status and body (complete, or cut at the size cap)."""

    status: int
    body: bytes


def get(
    path: Path, url: str, headers: dict[str, str], *, deadline: float = 2.0, max_bytes: int = MAX_BYTES
) -> Answer | None:
    """GET ``url`` on the Unix socket ``path`` within ``deadline`` seconds overall, reading at most
    ``max_bytes``; None if nothing answers properly in time.

    HTTP/1.0 with ``Connection: close``: the server ends the body by closing (no chunking to parse).
    """
    return request(path, "GET", url, headers, deadline=deadline, max_bytes=max_bytes)


def request(
    path: Path,
    method: str,
    url: str,
    headers: dict[str, str],
    body: bytes | None = None,
    *,
    deadline: float = 2.0,
    max_bytes: int = MAX_BYTES,
) -> Answer | None:
    """``method`` ``url`` with ``body`` on the Unix socket ``path``, bounded as :func:`get` is."""
    end = time.monotonic() + deadline
    lines = [f"{method} {url} HTTP/1.0", "Host: localhost", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.settimeout(max(0.001, end - time.monotonic()))
        sock.connect(str(path))
        sock.sendall(request)
        sock.setblocking(False)
        raw = _read_until_closed(sock, end, max_bytes)
    except OSError:
        return None
    finally:
        sock.close()
    return _parse(raw) if raw is not None else None


def _read_until_closed(sock: socket.socket, end: float, max_bytes: int) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while size < max_bytes:
        remaining = end - time.monotonic()
        if remaining <= 0:
            return None
        readable, _, _ = select.select([sock], [], [], remaining)
        if not readable:
            return None
        chunk = sock.recv(min(65536, max_bytes - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _parse(raw: bytes) -> Answer | None:
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        return None
    status_line = head.split(b"\r\n", 1)[0].split()
    if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/") or not status_line[1].isdigit():
        return None
    return Answer(status=int(status_line[1]), body=body)
